"""Raw clinical scans in the viewer (issue 25): a raw case that the input check refuses gets a
dialog offering *Prepare raw scans…*; the series picker lists the series with the engine's
pre-selection and makes the user choose where two series look alike; ``prepare`` runs in the
Segment dock's worker (progress, Cancel leaves nothing) and the prepared case opens with its QC
(brain-mask outline, brain volume and registration lines).

On the real raw case TCGA-FG-6692, decimated 2x in-plane (as tests/engine/prepare) and prepared
without N4 to stay fast."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("napari")
pytest.importorskip("pytestqt")
pytest.importorskip("SimpleITK")
pytest.importorskip("deepbet", reason="brain extraction needs deepbet (napari-brats[prepare])")

from raw_scans import decimated, write_dicom_study  # noqa: E402

pytestmark = [pytest.mark.gui, pytest.mark.slow, pytest.mark.usefixtures("own_home")]


@pytest.fixture(scope="module")
def raw_small(raw_clinical_map, tmp_path_factory) -> Path:
    """The four raw series decimated 2x in-plane, with their original names."""
    folder = tmp_path_factory.mktemp("raw") / "TCGA-FG-6692"
    folder.mkdir()
    for path in raw_clinical_map.values():
        decimated(path, folder / path.name.replace(".nii.gz", ".nii"))
    return folder


@pytest.fixture(scope="module")
def raw_named(raw_small, tmp_path_factory) -> Path:
    """The same series under BraTS-style names: it opens as a case (and is refused as raw)."""
    folder = tmp_path_factory.mktemp("named") / "raw-case"
    folder.mkdir()
    ends = {"_t1.nii": "t1", "_t1c.nii": "t1ce", "_t2.nii": "t2", "_fla.nii": "flair"}
    for path in raw_small.iterdir():
        key = next(v for k, v in ends.items() if path.name.endswith(k))
        (folder / f"raw_{key}.nii").symlink_to(path)
    return folder


@pytest.fixture()
def dock(make_napari_viewer):
    from napari_brats._widgets.segment import SegmentWidget

    viewer = make_napari_viewer()
    segment = SegmentWidget(viewer)
    viewer.window.add_dock_widget(segment, name="Segment")
    return viewer, segment


def test_picker_makes_the_user_choose_between_two_t1(dock, raw_clinical_map, tmp_path):
    study = write_dicom_study(raw_clinical_map, tmp_path / "study", step=4)
    _, segment = dock
    picker = segment.choose_series(study)
    assert picker.table.rowCount() == 7
    assert picker.table.item(0, 1).text() == "s01" and picker.table.item(0, 6).text() == "—"
    assert picker.table.cellWidget(3, 0).pixmap() is not None  # a thumbnail
    assert {k: p.name for k, p in picker.mapping().items()} == {
        "t1ce": "s13",
        "t2": "s02",
        "flair": "s05",
    }  # T1 not guessed: s10 and s11 both look like T1
    assert "s10, s11" in picker.notes["t1"].text()
    assert not picker.prepare_button.isEnabled() and "T1" in picker.problem.text()
    picker.choose("t1", study / "s13")
    assert not picker.prepare_button.isEnabled() and "two channels" in picker.problem.text()
    picker.choose("t1", study / "s10")
    assert picker.prepare_button.isEnabled()
    assert picker.output_folder() == tmp_path / "study-prepared"
    assert picker.mapping()["t1"] == study / "s10"


def test_raw_case_is_offered_prepared_and_opened_with_qc(
    dock, raw_small, raw_named, qtbot, tmp_path
):
    viewer, segment = dock
    segment.align_combo.setCurrentText("resample")
    assert not segment.open_case(raw_small)  # scanner names: not a case folder, but series
    box = segment.readiness_box
    assert box is not None and "missing FLAIR" in box.informativeText()
    assert segment.open_case(raw_named)
    assert segment.readiness_box is not box
    box = segment.readiness_box
    assert "not BraTS-ready: not skull-stripped" in box.informativeText()
    assert "napari-brats prepare" in box.informativeText()
    prepare_button = next(b for b in box.buttons() if b.text() == "Prepare raw scans…")
    prepare_button.click()
    picker = segment.series_picker
    assert picker is not None and picker.prepare_button.isEnabled()  # four names, four channels
    assert picker.mapping()["t1ce"].name == "raw_t1ce.nii"

    # Cancel at the first step leaves nothing behind
    out = tmp_path / "cancelled"
    worker = segment.start_prepare(raw_named, picker.mapping(), out, n4=False)
    segment.cancel()
    qtbot.waitUntil(lambda: segment.worker is None, timeout=60_000)
    assert "cancelled" in segment.status.text()
    assert not out.exists() and not list(tmp_path.glob(".cancelled*"))
    del worker

    picker.output_edit.setText(str(tmp_path / "prepared"))
    picker.n4_check.setChecked(False)
    picker.accept()
    qtbot.waitUntil(lambda: segment.worker is None, timeout=120_000)
    assert segment.last_error is None, segment.last_error
    assert (tmp_path / "prepared" / "prepare.json").exists()
    from napari_brats._state import find_case
    from napari_brats._widgets._prepare_flow import BRAIN_MASK_LAYER, HEAD_LAYER

    case = find_case(viewer)
    assert case.folder == tmp_path / "prepared" and case.findings == []
    mask = viewer.layers[BRAIN_MASK_LAYER]
    assert mask.contour > 0 and not mask.editable
    brain_ml = int(mask.data.sum()) / 1000.0  # 1 mm voxels
    assert 1_300 <= brain_ml <= 2_000
    assert mask.data.shape == viewer.layers["T1Gd [1]"].data.shape
    head = viewer.layers[HEAD_LAYER]  # the outline is checked against the head, skull and all
    assert head.visible and head.data.shape == mask.data.shape
    assert float(head.data[mask.data == 0].max()) > 0  # there is skull outside the mask
    assert not viewer.layers["T1Gd [1]"].visible and not viewer.layers["FLAIR [1]"].visible
    qc = segment.qc_label.text()
    assert "mL (plausible 900-2,000 mL)" in qc and qc.count("registered to T1Gd") == 3
    assert "ready to segment" in segment.status.text()

    # a failed QC check is shown as a needs-review note beside the QC lines
    from bratseg.prepare import PrepareResult

    reason = "brain volume 650 mL is outside 900-2,000 mL: check the brain mask"
    segment.show_prepared(PrepareResult(case.folder, segment.prepared.provenance, [reason]))
    assert "needs review" in segment.qc_label.text() and reason in segment.qc_label.text()
