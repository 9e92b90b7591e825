"""Two viewers of one case (probe 5.24 in the GUI): the viewer whose autosave would replace the
other's newer save is asked, and nothing is replaced unless the user says so."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("napari")
pytest.importorskip("pytestqt")

BLOCK_ONE = (slice(40, 46), slice(100, 106), slice(40, 44))
BLOCK_TWO = (slice(180, 186), slice(100, 106), slice(40, 44))


def test_a_refused_autosave_asks_and_replaces_nothing_unless_told(
    brats2018_case_dir, tmp_path, qtbot, monkeypatch
) -> None:
    from expert_review import expert_session
    from qtpy.QtWidgets import QMessageBox

    from bratseg.io import load_case
    from bratseg.review import SessionStore
    from napari_brats._state import ViewerState

    monkeypatch.setenv("BRATSEG_SESSIONS", str(tmp_path / "sessions"))
    case = load_case(brats2018_case_dir)
    key = SessionStore().save(expert_session(case)).key
    one, two = ViewerState(), ViewerState()
    for state in (one, two):  # both viewers restored the same saved review
        state.set_session(state.store.restore(state.store.get(key), case))
    one.session.labels[BLOCK_ONE] = 1
    assert one.save_now() is not None
    asked: list[str] = []
    answer = QMessageBox.StandardButton.No

    def question(_parent, _title, text, *args, **kwargs):
        asked.append(text)
        return answer

    monkeypatch.setattr(QMessageBox, "question", question)
    two.session.labels[BLOCK_TWO] = 4
    assert two.save_now() is None  # "No": the other viewer's save stays
    assert len(asked) == 1 and "NOT saved" in asked[0] and not two.autosave_enabled
    labels = two.store.load_arrays(two.store.get(key))[0]
    assert (labels[BLOCK_ONE] == 1).all() and not (labels[BLOCK_TWO] == 4).any()

    answer = QMessageBox.StandardButton.Yes
    assert two.save_now() is not None and two.autosave_enabled  # "Yes": this viewer's edits
    labels = two.store.load_arrays(two.store.get(key))[0]
    assert (labels[BLOCK_TWO] == 4).all() and not (labels[BLOCK_ONE] == 1).any()
    answer = QMessageBox.StandardButton.No
    one.session.labels[0, 0, 0] = 2
    assert one.save_now() is None and len(asked) == 3  # and the first viewer is asked in turn
    assert np.array_equal(two.store.load_arrays(two.store.get(key))[0], labels)
    for state in (one, two):
        state.set_session(None)
