"""Which voxels the user edited, read from the labels layer's public events only.

napari emits ``paint`` for brush, fill and polygon strokes and ``set_data`` for undo, redo and
refreshes. :class:`EditTracker` keeps a snapshot of the working labels and compares after each:

- after a stroke, every voxel that changed becomes a hand edit (an override that new settings
  and new model runs keep);
- after an undo or redo (or any other outside change), a changed voxel is a hand edit exactly
  when it now differs from the AI proposal, so an undone stroke follows the proposal again.

The engine's own proposal updates write only non-edited voxels to the proposal's value, so the
``set_data`` of the following refresh leaves the edits as they are.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import numpy as np

from ._state import ViewerState

logger = logging.getLogger(__name__)


class EditTracker:
    """Keeps :attr:`ReviewSession.overrides` in line with what was done to one labels layer."""

    def __init__(self, state: ViewerState, layer: Any) -> None:
        self.state = state
        self.layer = layer
        self.snapshot: np.ndarray | None = None
        self.last_ms = 0.0
        self.resync()
        layer.events.paint.connect(self._on_paint)
        layer.events.set_data.connect(self._on_set_data)

    def resync(self) -> None:
        """Take the current working labels as the reference (after loading a session)."""
        session = self.state.session
        self.snapshot = session.labels.copy() if session is not None else None

    def _changed(self) -> tuple[Any, np.ndarray] | None:
        session = self.state.session
        if session is None or self.state.layer is not self.layer:
            return None
        if self.snapshot is None or self.snapshot.shape != session.labels.shape:
            self.snapshot = session.labels.copy()
            return None
        changed = session.labels != self.snapshot
        return (session, changed) if changed.any() else None

    def _on_paint(self, _event: Any = None) -> None:
        start = time.perf_counter()
        hit = self._changed()
        if hit is None:
            return
        session, changed = hit
        session.overrides |= changed
        self._commit(session, changed, start)

    def _on_set_data(self, _event: Any = None) -> None:
        start = time.perf_counter()
        hit = self._changed()
        if hit is None:
            return
        session, changed = hit
        session.overrides[changed] = session.labels[changed] != session.proposal[changed]
        self._commit(session, changed, start)

    def _commit(self, session: Any, changed: np.ndarray, start: float) -> None:
        assert self.snapshot is not None
        np.copyto(self.snapshot, session.labels, where=changed)
        self.last_ms = (time.perf_counter() - start) * 1000.0
        self.state.labels_changed.emit()
        self.state.schedule_save()
