"""Correcting a segmentation in the real viewer: Undo after a slider move, Revert all edits, and
the Report dock's numbers, on a real case segmented by the deterministic stand-in model.

Every expectation is computed outside the docks: the proposal by
:func:`bratseg.postprocess.postprocess` of the session's probabilities, Dice by
:func:`bratseg.metrics.dice`, volumes from voxel counts, lesions by ``scipy.ndimage.label``.
"""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("napari")
pytest.importorskip("pytestqt")

from gui_case import NEEDS_SAMPLE, SAMPLE_CASE, WORKER_TIMEOUT_MS  # noqa: E402

pytestmark = [
    NEEDS_SAMPLE,
    pytest.mark.gui,
    pytest.mark.usefixtures("own_home"),
]


@pytest.fixture
def review(make_napari_viewer, qtbot, checkpoint):
    """A viewer with the case segmented by the stand-in and the Postprocessing, Correction and
    Report docks: ``(viewer, docks, state)``."""
    from napari_brats._state import viewer_state
    from napari_brats._widgets.correction import CorrectionWidget
    from napari_brats._widgets.postprocess import PostprocessWidget
    from napari_brats._widgets.report import ReportWidget
    from napari_brats._widgets.segment import SegmentWidget

    viewer = make_napari_viewer()
    docks = {
        "segment": SegmentWidget(viewer),
        "post": PostprocessWidget(viewer),
        "correction": CorrectionWidget(viewer),
        "report": ReportWidget(viewer),
    }
    for name, widget in docks.items():
        viewer.window.add_dock_widget(widget, name=name)
    assert viewer.open(str(SAMPLE_CASE), plugin="napari-brats")
    segment = docks["segment"]
    segment.set_only_checked([checkpoint])
    segment.device_combo.setCurrentText("cpu")
    assert segment.run() is not None
    qtbot.waitUntil(lambda: segment.worker is None, timeout=WORKER_TIMEOUT_MS)
    assert segment.last_error is None, segment.last_error
    state = viewer_state(viewer)
    assert state.session is not None
    return viewer, docks, state


def _layer(viewer):
    return viewer.layers[f"{SAMPLE_CASE.name} segmentation"]


def _button(widget, text: str):
    from qtpy.QtWidgets import QPushButton

    (button,) = [b for b in widget.findChildren(QPushButton) if b.text().startswith(text)]
    return button


def _set_threshold(post, qtbot, session, name: str, value: float) -> None:
    post.controls[name].value = value
    post.apply_now()
    assert getattr(session.config, name) == pytest.approx(value)


def _expected(session) -> np.ndarray:
    from bratseg.postprocess import postprocess

    return postprocess(session.region_probs, session.config, convention=session.convention)


def _unsure_voxels(session, n: int = 200) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Engine-order indices of voxels that are background at WT >= 0.5 and ED at WT >= 0.2."""
    p = session.region_probs.astype(np.float32)
    unsure = (p[0] >= 0.25) & (p[0] < 0.45) & (p[1] < 0.3) & (p[2] < 0.3)
    idx = np.nonzero(unsure)
    assert idx[0].size >= n
    return tuple(a[:n] for a in idx)


def test_undo_after_a_slider_move_gives_the_voxels_back_to_the_proposal(review, qtbot):
    viewer, docks, state = review
    session, layer, post = state.session, _layer(viewer), docks["post"]
    voxels = _unsure_voxels(session)
    assert (session.proposal[voxels] == 0).all()
    docks["correction"].paint_tissue("et")
    layer.data_setitem(voxels[::-1], 4)  # a stroke of ET (layer axes are Z, Y, X)
    assert (session.labels[voxels] == 4).all() and session.overrides[voxels].all()

    _set_threshold(post, qtbot, session, "wt_threshold", 0.2)  # the AI now calls them ED
    assert (session.proposal[voxels] == 2).all()
    assert (session.labels[voxels] == 4).all()  # the stroke survives the slider

    _button(docks["correction"], "Undo").click()  # the dock's own Undo button
    assert (layer.data.transpose(2, 1, 0)[voxels] != 4).all()
    # an undone stroke is no hand edit any more: the voxels follow the proposal again ...
    _set_threshold(post, qtbot, session, "wt_threshold", 0.3)
    assert not session.overrides.any()
    np.testing.assert_array_equal(session.labels, _expected(session))
    np.testing.assert_array_equal(layer.data, session.labels.transpose(2, 1, 0))
    # ... at this threshold as at any other
    _set_threshold(post, qtbot, session, "wt_threshold", 0.2)
    assert (session.labels[voxels] == 2).all()
    np.testing.assert_array_equal(session.labels, _expected(session))

    _button(docks["correction"], "Redo").click()  # redo brings the stroke back as an edit
    assert (session.labels[voxels] == 4).all()
    _set_threshold(post, qtbot, session, "wt_threshold", 0.5)
    assert (session.labels[voxels] == 4).all() and session.overrides[voxels].all()


def test_each_change_notifies_the_docks_once(review, qtbot):
    """A slider move, a stroke, an undo and Revert each emit ``labels_changed`` once (a slider
    move used to emit it twice: once from the layer refresh, once from the dock)."""
    viewer, docks, state = review
    session, layer, post = state.session, _layer(viewer), docks["post"]
    emitted: list[int] = []
    state.labels_changed.connect(lambda: emitted.append(1))

    _set_threshold(post, qtbot, session, "wt_threshold", 0.3)
    assert len(emitted) == 1
    np.testing.assert_array_equal(layer.data, session.labels.transpose(2, 1, 0))

    voxels = _unsure_voxels(session, 50)
    layer.data_setitem(voxels[::-1], 1)  # a stroke
    assert len(emitted) == 2 and session.overrides[voxels].all()
    layer.undo()
    assert len(emitted) == 3 and not session.overrides.any()
    _button(docks["correction"], "Redo").click()  # the dock's button: still once
    assert len(emitted) == 4 and session.overrides[voxels].all()
    assert docks["correction"].revert_edits(confirm=True)
    assert len(emitted) == 5
    np.testing.assert_array_equal(session.labels, _expected(session))


def test_revert_all_edits_restores_the_proposal(review, qtbot):
    viewer, docks, state = review
    session, layer, post = state.session, _layer(viewer), docks["post"]
    layer.data_setitem((np.arange(70, 80), np.full(10, 120), np.full(10, 120)), 1)
    _set_threshold(post, qtbot, session, "et_threshold", 0.7)
    assert session.overrides.sum() > 0 and not np.array_equal(session.labels, session.proposal)

    assert not docks["correction"].revert_edits(confirm=False)  # "No" keeps the edits
    assert session.overrides.sum() > 0
    assert docks["correction"].revert_edits(confirm=True)
    assert not session.overrides.any()
    np.testing.assert_array_equal(session.labels, session.proposal)
    np.testing.assert_array_equal(session.labels, _expected(session))
    np.testing.assert_array_equal(layer.data, session.labels.transpose(2, 1, 0))
    _set_threshold(post, qtbot, session, "et_threshold", 0.5)  # and the map follows the sliders
    np.testing.assert_array_equal(session.labels, _expected(session))
    assert docks["report"].refresh()["edited_voxels"] == 0


def test_report_numbers_are_dice_and_volumes_of_the_masks(review, qtbot):
    from scipy import ndimage

    from bratseg.labels import convert_labels
    from bratseg.metrics import dice

    viewer, docks, state = review
    session, layer = state.session, _layer(viewer)
    zz, yy, xx = np.meshgrid(
        np.arange(70, 76), np.arange(100, 106), np.arange(100, 106), indexing="ij"
    )
    layer.data_setitem((zz.ravel(), yy.ravel(), xx.ravel()), 4)  # a 6x6x6 block of ET, by hand
    report = docks["report"].refresh()
    assert report["edited_voxels"] == int(np.count_nonzero(session.labels != session.proposal)) > 0
    voxel_ml = float(np.prod(session.case.spacing)) / 1000.0
    reference = convert_labels(session.case.seg, session.case.seg_convention, session.convention)
    values = {"ncr": (1,), "ed": (2,), "et": (4,), "tc": (1, 4), "wt": (1, 2, 4)}
    for key, labels in values.items():
        ai, corrected, ref = (
            np.isin(m, labels) for m in (session.proposal, session.labels, reference)
        )
        row = report["rows"][key]
        assert row["ai_ml"] == pytest.approx(np.count_nonzero(ai) * voxel_ml, abs=1e-4)
        assert row["corrected_ml"] == pytest.approx(
            np.count_nonzero(corrected) * voxel_ml, abs=1e-4
        )
        assert row["delta_ml"] == pytest.approx(row["corrected_ml"] - row["ai_ml"], abs=2e-4)
        assert row["dice_ai_vs_corrected"] == pytest.approx(dice(ai, corrected), abs=1e-6)
        assert row["dice_vs_reference"] == pytest.approx(dice(corrected, ref), abs=1e-6)
        assert row["lesions"] == ndimage.label(corrected, structure=np.ones((3, 3, 3)))[1]
    assert report["rows"]["et"]["delta_ml"] > 0
    # the stand-in's ET overlaps the expert's: a real Dice, far from 0 and from 1
    assert 0.4 < report["rows"]["et"]["dice_vs_reference"] < 0.95
