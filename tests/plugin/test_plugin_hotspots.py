"""Review hotspots dock in the real viewer on a real case segmented by a stand-in model: the flag
and its reasons, the hotspot list, *Go to* (slice and camera on the hotspot, radiological display
axes) and the uncertainty layer named after its measure."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("napari")
pytest.importorskip("pytestqt")

pytestmark = [pytest.mark.gui]


@pytest.fixture
def dock(case_dock, standin_prediction):
    from napari_brats._widgets.hotspots import HotspotsWidget

    prediction = standin_prediction("sample_case", target_spacing=2.0)
    return case_dock(prediction, HotspotsWidget, "Review hotspots", "sample_case")


def _display_index_of(voxel, case) -> tuple[int, int, int]:
    """Where a storage voxel lands in the layer data, found by displaying a one-voxel volume."""
    from napari_brats._layers import to_display

    probe = np.zeros(case.shape, dtype=bool)
    probe[tuple(voxel)] = True
    return tuple(int(v) for v in np.argwhere(to_display(probe, case.affine))[0])


def test_the_dock_shows_the_flag_and_hotspots_largest_first(dock):
    _viewer, widget, _layer, _session = dock
    assessment = widget.assessment
    assert assessment is not None and assessment.measure == "entropy"
    assert widget.table.rowCount() == len(assessment.hotspots) > 0
    volumes = [float(widget.table.item(r, 2).text()) for r in range(widget.table.rowCount())]
    assert volumes == sorted(volumes, reverse=True)
    assert widget.table.item(0, 0).text() == assessment.hotspots[0].kind
    text = widget.flag.text()
    assert ("Needs review" in text) == assessment.needs_review
    for reason in assessment.reasons:
        assert reason in text


def test_go_to_puts_the_slice_and_camera_on_the_hotspot(dock, qtbot):
    viewer, widget, layer, session = dock
    case = session.case
    for row in (0, widget.table.rowCount() - 1):
        spot = widget.assessment.hotspots[row]
        widget.table.cellWidget(row, 3).click()  # the row's Go to button
        index = _display_index_of(spot.centroid, case)
        slider = viewer.dims.not_displayed[0]
        assert viewer.dims.current_step[slider] == index[slider]
        assert viewer.dims.point[slider] == pytest.approx(index[slider] * layer.scale[slider])
        displayed = viewer.dims.displayed
        expected = [index[a] * layer.scale[a] for a in displayed]
        camera = getattr(getattr(viewer, "scene", None), "camera", None) or viewer.camera
        assert tuple(camera.center[-2:]) == pytest.approx(expected)
        # the slice shown holds the hotspot's centre voxel
        assert layer.data[index] == session.labels[tuple(spot.centroid)]
    widget.table.cellDoubleClicked.emit(1, 0)
    index = _display_index_of(widget.assessment.hotspots[1].centroid, case)
    assert (
        viewer.dims.current_step[viewer.dims.not_displayed[0]]
        == index[viewer.dims.not_displayed[0]]
    )


def test_the_uncertainty_layer_is_added_on_request_and_names_its_measure(dock):
    viewer, widget, layer, session = dock
    assert "uncertainty (entropy)" not in viewer.layers
    widget.layer_check.setChecked(True)
    unc = viewer.layers["uncertainty (entropy)"]
    assert unc.visible and unc.opacity <= 0.5 and unc.data.shape == layer.data.shape
    spot = widget.assessment.hotspots[0]
    index = _display_index_of(spot.centroid, session.case)
    assert unc.data[index] == widget.assessment.uncertainty[tuple(spot.centroid)]
    assert viewer.layers.selection.active is layer  # painting stays on the labels
    widget.layer_check.setChecked(False)
    assert not unc.visible
