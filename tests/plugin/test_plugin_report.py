"""The Report dock shows the engine's clinical report of the case under review and saves it as a
one-page PDF: a real case segmented by the deterministic stand-in model, in the real viewer."""

from __future__ import annotations

import json
import re
import shutil
import subprocess

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


def _empty_box_corner(labels: np.ndarray, side: int) -> tuple[int, int, int]:
    """Corner of the first ``side``-voxel cube whose one-voxel margin holds no label either."""
    for corner in np.ndindex(*(n // side for n in labels.shape)):
        z, y, x = (max(1, c * side) for c in corner)
        if not labels[z - 1 : z + side + 1, y - 1 : y + side + 1, x - 1 : x + side + 1].any():
            return z, y, x
    raise AssertionError("no empty box in the case")


def test_report_dock_shows_the_engine_report_and_saves_a_pdf(
    make_napari_viewer, qtbot, checkpoint, tmp_path
):
    from qtpy.QtWidgets import QPushButton

    from bratseg.report import build_report as engine_build
    from napari_brats._state import viewer_state
    from napari_brats._widgets.report import ReportWidget
    from napari_brats._widgets.segment import SegmentWidget

    viewer = make_napari_viewer()
    segment, report_dock = SegmentWidget(viewer), ReportWidget(viewer)
    for name, widget in (("segment", segment), ("report", report_dock)):
        viewer.window.add_dock_widget(widget, name=name)
    assert viewer.open(str(SAMPLE_CASE), plugin="napari-brats")
    segment.set_only_checked([checkpoint])
    segment.device_combo.setCurrentText("cpu")
    assert segment.run() is not None
    qtbot.waitUntil(lambda: segment.worker is None, timeout=WORKER_TIMEOUT_MS)
    assert segment.last_error is None, segment.last_error
    session = viewer_state(viewer).session

    # paint a 12 mm ET cube by hand, apart from the tumour: a new measurable lesion
    layer = viewer.layers[f"{SAMPLE_CASE.name} segmentation"]
    z0, y0, x0 = _empty_box_corner(np.asarray(layer.data), 12)
    zz, yy, xx = np.meshgrid(
        np.arange(z0, z0 + 12), np.arange(y0, y0 + 12), np.arange(x0, x0 + 12), indexing="ij"
    )
    layer.data_setitem((zz.ravel(), yy.ravel(), xx.ravel()), 4)
    report = report_dock.refresh()

    # the dock's numbers are the engine's, computed here from the session's own arrays
    case = session.case
    expected = engine_build(
        session.labels,
        session.convention,
        case.affine,
        case.spacing,
        images=case.image,
        proposal=session.proposal,
        reference=case.seg,
        reference_convention=case.seg_convention,
    ).to_dict()
    for key in ("ncr", "ed", "et", "tc", "wt"):
        row, engine = report["rows"][key], expected["regions"][key]
        assert row["corrected_ml"] == engine["volume_ml"] and row["ai_ml"] == engine["proposal_ml"]
        assert row["dice_ai_vs_corrected"] == engine["dice_vs_proposal"]
        assert row["dice_vs_reference"] == engine["dice_vs_reference"]
    assert [lesion["volume_ml"] for lesion in report["lesions"]] == [
        lesion["volume_ml"] for lesion in expected["lesions"]
    ]
    assert report["sum_of_products_mm2"] == pytest.approx(expected["sum_of_products_mm2"])
    assert report["status"] == "edited" and report["model"]["names"] == list(session.model.names)
    # the painted cube: its own lesion, pure ET, measured 12 x 12 mm (within a voxel)
    cube = [lesion for lesion in report["lesions"] if lesion["voxels"] == 12**3]
    assert len(cube) == 1 and cube[0]["tissue_ml"]["et"] == pytest.approx(1.728)
    (enhancing,) = [e for e in report["enhancing_lesions"] if e["lesion"] == cube[0]["id"]]
    assert enhancing["rano"]["measurable"]
    assert (
        11.5
        <= enhancing["rano"]["perpendicular_mm"]
        <= enhancing["rano"]["longest_mm"]
        <= 12 * 2**0.5 + 1
    )
    # layer column (R->L) 40..51 is the patient's right of the brain's midline
    assert cube[0]["hemisphere"] == "right"

    # the lesion table and summary are shown
    assert report_dock.lesions.rowCount() == len(report["lesions"])
    sides = {report_dock.lesions.item(r, 1).text() for r in range(report_dock.lesions.rowCount())}
    assert "right" in sides
    assert "Sum of bidimensional products" in report_dock.summary.text()
    (save_pdf,) = [b for b in report_dock.findChildren(QPushButton) if b.text() == "Save PDF…"]
    assert save_pdf.isEnabled()

    pdf = report_dock.export(tmp_path / "case_report.pdf")
    assert pdf.read_bytes().startswith(b"%PDF")
    if shutil.which("pdfinfo"):
        info = subprocess.run(
            ["pdfinfo", str(pdf)],
            capture_output=True,
            encoding="utf-8",
            errors="replace",
            check=True,
        ).stdout
        assert re.search(r"^Pages:\s+1$", info, re.MULTILINE), info
    saved = json.loads(report_dock.export(tmp_path / "case_report.json").read_text())
    assert saved["rows"]["et"]["corrected_ml"] == report["rows"]["et"]["corrected_ml"]
    assert saved["lesions"] == report["lesions"]
    assert (
        sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []
    )  # no temp files
