"""Review safety in the real viewer on a real case with the bundled models: hand edits survive a
new segmentation run (and can be discarded), undo still works, and an autosaved review is offered
and restored when the case is opened again."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("napari")
pytest.importorskip("pytestqt")

from gui_case import NEEDS_SAMPLE, SAMPLE_CASE, WORKER_TIMEOUT_MS  # noqa: E402

pytestmark = [
    NEEDS_SAMPLE,
    pytest.mark.gui,
    pytest.mark.slow,
]


@pytest.fixture(autouse=True)
def _own_sessions(monkeypatch, tmp_path):
    import torch

    torch.set_num_threads(2)
    monkeypatch.setenv("BRATSEG_SESSIONS", str(tmp_path / "sessions"))


def _dock(viewer):
    from napari_brats._widgets.segment import SegmentWidget

    segment = SegmentWidget(viewer)
    viewer.window.add_dock_widget(segment, name="Segment")
    return segment


def _run(segment, qtbot, names):
    from bratseg.zoo import resolve_model

    segment.set_only_checked([resolve_model(n) for n in names])
    segment.device_combo.setCurrentText("cpu")
    assert segment.run() is not None
    qtbot.waitUntil(lambda: segment.worker is None, timeout=WORKER_TIMEOUT_MS)
    assert segment.last_error is None, segment.last_error


def _paint_block(layer, value: int) -> tuple[slice, slice, slice]:
    """Paint a 6x6x6 block (layer order Z, Y, X) far from the tumour with ``value``."""
    block = (slice(20, 26), slice(30, 36), slice(30, 36))
    grid = np.indices((6, 6, 6))
    layer.data_setitem(tuple((grid[a] + s.start).ravel() for a, s in enumerate(block)), value)
    return block


def test_edits_survive_a_new_segmentation_run_undo_and_discard(make_napari_viewer, qtbot):
    from napari_brats._state import viewer_state

    viewer = make_napari_viewer()
    segment = _dock(viewer)
    assert viewer.open(str(SAMPLE_CASE), plugin="napari-brats")
    _run(segment, qtbot, ["nnunet-small-cv44-f0"])
    state = viewer_state(viewer)
    session, layer = state.session, state.layer
    first_proposal = session.proposal.copy()
    block = _paint_block(layer, 1)  # NCR where the AI found nothing
    painted = np.zeros(layer.data.shape, bool)
    painted[block] = True
    assert (layer.data[block] == 1).all() and session.overrides.sum() == 216
    assert not first_proposal.transpose(2, 1, 0)[block].any()

    _run(segment, qtbot, ["nnunet-small-cv44-f0", "ds-unet-small"])  # another model: a new proposal
    assert state.session is session and state.layer is layer  # same review, same layer
    assert (layer.data[block] == 1).all() and session.overrides.sum() == 216
    assert session.model.names == ["nnunet-small-cv44-f0", "ds-unet-small"]
    assert not np.array_equal(session.proposal, first_proposal)
    outside = ~painted.transpose(2, 1, 0)
    assert np.array_equal(session.labels[outside], session.proposal[outside])
    assert (
        not segment.notice.isHidden()
        and "216 hand-edited voxels were kept" in segment.notice.text.text()
    )

    layer.undo()  # undo still works: the stroke is gone and the voxels follow the proposal again
    assert not layer.data[block].any() and session.overrides.sum() == 0
    assert np.array_equal(session.labels, session.proposal)

    _paint_block(layer, 2)
    _run(segment, qtbot, ["nnunet-small-cv44-f0"])
    assert (layer.data[block] == 2).all() and not segment.notice.isHidden()
    segment.notice.primary.click()  # "Discard my edits"
    assert segment.notice.isHidden()
    assert session.overrides.sum() == 0 and np.array_equal(session.labels, session.proposal)


def test_an_autosaved_review_is_offered_and_restored(make_napari_viewer, qtbot):
    from napari_brats._state import viewer_state

    viewer = make_napari_viewer()
    segment = _dock(viewer)
    assert viewer.open(str(SAMPLE_CASE), plugin="napari-brats")
    _run(segment, qtbot, ["nnunet-small-cv44-f0"])
    state = viewer_state(viewer)
    block = _paint_block(state.layer, 4)
    qtbot.waitUntil(
        lambda: (
            state.store.get(state.key) is not None and state.store.get(state.key).n_edited == 216
        ),
        timeout=10_000,
    )  # debounced autosave
    saved_labels = state.session.labels.copy()
    assert state.last_save_ms > 0
    viewer.close()  # a hidden viewer (nobody to ask) keeps the autosave

    again = make_napari_viewer()  # the next day: a new viewer opens the same case
    segment2 = _dock(again)
    assert again.open(str(SAMPLE_CASE), plugin="napari-brats")
    assert (
        not segment2.notice.isHidden() and "216 hand-edited voxels" in segment2.notice.text.text()
    )
    segment2.notice.primary.click()  # "Restore it"
    state2 = viewer_state(again)
    assert state2.session is not None and state2.session.region_probs is None
    assert np.array_equal(state2.session.labels, saved_labels)
    assert (state2.layer.data[block] == 4).all()
    _run(segment2, qtbot, ["nnunet-small-cv44-f0"])  # probabilities back, the restored edits kept
    assert state2.session.region_probs is not None and state2.session.overrides.sum() == 216
    assert (state2.layer.data[block] == 4).all()
    again.close()  # a hidden viewer (nobody to ask) keeps the autosave
    assert state2.store.get(state2.key).n_edited == 216


def _answer_when_asked(qtbot, label: str) -> list[str]:
    """Click ``label`` in the next modal question box (as the user would)."""
    from qtpy.QtCore import QTimer
    from qtpy.QtWidgets import QApplication, QMessageBox

    seen: list[str] = []

    def click() -> None:
        box = QApplication.activeModalWidget()
        if not isinstance(box, QMessageBox):
            QTimer.singleShot(50, click)
            return
        seen.append(box.text())
        next(b for b in box.buttons() if b.text().replace("&", "") == label).click()

    QTimer.singleShot(50, click)
    return seen


def test_closing_with_unexported_edits_asks_first(make_napari_viewer, qtbot):
    from napari_brats._state import viewer_state

    viewer = make_napari_viewer(show=True)
    segment = _dock(viewer)
    assert viewer.open(str(SAMPLE_CASE), plugin="napari-brats")
    _run(segment, qtbot, ["nnunet-small-cv44-f0"])
    state = viewer_state(viewer)
    window = viewer.window._qt_window
    assert not state.has_unexported_edits()  # nothing edited: closing would not ask
    _paint_block(state.layer, 2)
    assert state.has_unexported_edits()
    seen = _answer_when_asked(qtbot, "Cancel")
    window.close()
    assert (
        seen and "216 hand-edited voxels" in seen[0] and segment.close_guard.last_choice == "cancel"
    )
    assert window.isVisible() and state.session is not None  # the viewer stays open
    # opening another case asks too; "Discard edits" deletes the autosave and goes on
    state.save_now()
    assert state.store.get(state.key) is not None
    seen = _answer_when_asked(qtbot, "Discard edits")
    assert segment.open_case(SAMPLE_CASE)
    assert seen and state.store.get(state.key) is None and not state.has_unexported_edits()
    assert state.session.n_edited == 0  # discarded: the labels are the AI proposal again
    _paint_block(state.layer, 4)  # new edits: asked again; "Keep autosave" goes on and keeps them
    seen = _answer_when_asked(qtbot, "Keep autosave")
    assert segment.open_case(SAMPLE_CASE)
    assert seen and state.store.get(state.key).n_edited == 216 and not state.has_unexported_edits()
