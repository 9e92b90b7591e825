"""Worklist dock in the real viewer on real BraTS 2018 cases with the stand-in model: open a folder,
segment all in the background, open a case with its saved review, edit, approve (the labels layer
becomes read-only and the docks say so), reopen, next case, cancel a batch, export the approved."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("napari")
pytest.importorskip("pytestqt")

from gui_case import WORKER_TIMEOUT_MS  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / ".." / "shared" / "data" / "brats2018"
CASES = ("Brats18_2013_2_1", "Brats18_2013_3_1", "Brats18_CBICA_ABM_1")
pytestmark = [
    pytest.mark.skipif(not DATA.is_dir(), reason="shared BraTS data (../shared/data) absent"),
    pytest.mark.gui,
]


@pytest.fixture(autouse=True)
def _own_sessions(monkeypatch, tmp_path):
    import torch

    torch.set_num_threads(1)
    monkeypatch.setenv("BRATSEG_SESSIONS", str(tmp_path / "sessions"))


def _folder(tmp_path: Path, name: str, cases=CASES) -> Path:
    root = tmp_path / name
    for case in cases:
        (root / case).mkdir(parents=True)
        for f in (DATA / case).iterdir():
            os.symlink(f, root / case / f.name)
    return root


def _status(dock, row: int) -> str:
    return dock.table.item(row, 1).text()


def test_worklist_segment_all_open_approve_reopen_export(
    make_napari_viewer, qtbot, standin, tmp_path
):
    from napari_brats._state import viewer_state
    from napari_brats._widgets.correction import CorrectionWidget
    from napari_brats._widgets.postprocess import PostprocessWidget
    from napari_brats._widgets.segment import SegmentWidget

    model = standin.save_standin(tmp_path / "standin-regions.pt")
    viewer = make_napari_viewer()
    _, dock = viewer.window.add_plugin_dock_widget("napari-brats", "Worklist")
    correction, post, segment = (
        CorrectionWidget(viewer),
        PostprocessWidget(viewer),
        SegmentWidget(viewer),
    )
    state = viewer_state(viewer)
    assert dock.set_folder(_folder(tmp_path, "cases"))
    assert dock.table.rowCount() == 3 and [_status(dock, i) for i in range(3)] == ["new"] * 3
    assert dock.table.horizontalHeaderItem(4).text() == "WT mL"

    dock.model_list.add_checkpoint(model)
    dock.model_list.set_only_checked([model])
    dock.device_combo.setCurrentText("cpu")
    assert dock.segment_all() is not None
    assert (
        not dock.segment_button.isEnabled() and dock.cancel_button.isEnabled()
    )  # the viewer stays live
    qtbot.waitUntil(lambda: dock.worker is None, timeout=WORKER_TIMEOUT_MS)
    assert dock.last_error is None, dock.last_error
    assert [_status(dock, i) for i in range(3)] == ["segmented"] * 3
    assert (
        dock.table.item(0, 2).text() == "standin-regions"
        and float(dock.table.item(0, 4).text()) > 0
    )

    assert dock.open_row(0)
    session, layer = state.session, state.layer
    assert session.case.case_id == CASES[0] and layer.editable and "FLAIR" in viewer.layers
    grid = np.indices((6, 6, 6))
    layer.data_setitem(
        tuple((grid[a] + s).ravel() for a, s in enumerate((20, 30, 30))), 1
    )  # a stroke
    qtbot.waitUntil(lambda: _status(dock, 0) == "edited", timeout=10_000)  # via the autosave
    assert dock.table.item(0, 3).text() == "216"

    dock.reviewer_edit.setText("dr.ana")
    approval = dock.approve()
    assert approval.reviewer == "dr.ana" and session.approved
    assert not layer.editable and layer.mode == "pan_zoom"  # read-only
    assert _status(dock, 0) == "approved" and "approved by dr.ana" in dock.table.item(0, 8).text()
    assert not correction.isEnabled() and "read-only" in correction.edits_label.text()
    assert "read-only" in post.timing_label.text()
    segment.set_only_checked([model])
    assert (
        segment.run() is None and "reopen it" in segment.last_error
    )  # no new run over an approval
    assert not dock.approve_button.isEnabled() and dock.reopen_button.isEnabled()
    saved = state.store.get(state.key)
    assert saved.status == "approved" and saved.signoffs[-1].reviewer == "dr.ana"
    approved_labels = session.labels.copy()
    layer.data_setitem(
        tuple((grid[a] + s).ravel() for a, s in enumerate((60, 60, 60))), 2
    )  # a script's write
    assert np.array_equal(session.labels, approved_labels) and session.n_edited == 216  # undone

    assert dock.reopen().action == "reopen"
    assert layer.editable and correction.isEnabled() and _status(dock, 0) == "edited"
    assert dock.approve().action == "approve"

    assert dock.step(1)  # Next: the second case, the first one's layers gone
    assert state.session.case.case_id == CASES[1] and state.layer.editable
    assert (
        f"{CASES[0]} segmentation" not in viewer.layers
        and f"{CASES[1]} segmentation" in viewer.layers
    )
    assert dock.step(-1) and not state.layer.editable  # back: restored approved, still read-only

    out = tmp_path / "approved"
    assert dock.export_approved(out, overwrite=False) is not None
    qtbot.waitUntil(lambda: dock.worker is None, timeout=WORKER_TIMEOUT_MS)
    assert [p.name for p in dock.last_export] == [CASES[0]], dock.status.text()
    provenance = json.loads((out / CASES[0] / f"{CASES[0]}_provenance.json").read_text())
    assert (
        provenance["approval"]["reviewer"] == "dr.ana" and provenance["edited_voxels_total"] == 216
    )
    assert [h["action"] for h in provenance["signoff_history"]] == ["approve", "reopen", "approve"]


def test_worklist_batch_cancels_and_resumes(make_napari_viewer, qtbot, standin, tmp_path):
    from napari_brats._state import viewer_state

    model = standin.save_standin(tmp_path / "standin-regions.pt")
    viewer = make_napari_viewer()
    from napari_brats._widgets.worklist import WorklistWidget

    dock = WorklistWidget(viewer)
    assert dock.set_folder(_folder(tmp_path, "cases", CASES[:2]))
    assert dock.open_row(1) and viewer_state(viewer).session is None  # a new case: images only
    dock.model_list.add_checkpoint(model)
    dock.model_list.set_only_checked([model])
    dock.device_combo.setCurrentText("cpu")
    worker = dock.segment_all()
    worker.yielded.connect(lambda event: dock.cancel() if event.kind == "done" else None)
    qtbot.waitUntil(lambda: dock.worker is None, timeout=WORKER_TIMEOUT_MS)
    assert [_status(dock, i) for i in range(2)] == ["segmented", "new"]
    assert dock.segment_button.isEnabled()
    dock.segment_all()  # resumes: the first case is skipped
    qtbot.waitUntil(lambda: dock.worker is None, timeout=WORKER_TIMEOUT_MS)
    assert [_status(dock, i) for i in range(2)] == ["segmented", "segmented"]
    assert dock.status.text().startswith("1 segmented, 1 skipped")
    state = viewer_state(viewer)  # the open case's new review is shown, editable
    assert (
        state.session is not None
        and state.session.case.case_id == CASES[1]
        and state.layer.editable
    )


def test_view_opens_the_worklist_dock_on_a_folder(tmp_path, make_napari_viewer):
    from napari_brats._view_command import open_viewer

    folder = _folder(tmp_path, "cases", CASES[:2])
    viewer, docks = open_viewer(
        str(folder / CASES[0]), show=False, worklist=str(folder), viewer=make_napari_viewer()
    )
    assert docks["Worklist"].table.rowCount() == 2 and _status(docks["Worklist"], 0) == "new"
    assert docks["Worklist"].folder_edit.text() == str(folder)
