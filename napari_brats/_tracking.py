"""What the user did to a labels layer, read from its public events and told to the session.

napari emits ``paint`` for brush, fill and polygon strokes and ``set_data`` for undo, redo and
refreshes. :class:`EditTracker` turns them into the voxels concerned and hands them to the
engine, which owns the rules (:mod:`bratseg.review.strokes`):

- a stroke goes to :meth:`ReviewSession.apply_stroke`. Its voxels come from the stroke's history
  item carried by the ``paint`` event (napari emits it before writing the data for programmatic
  edits), else from a comparison with a snapshot of the working labels;
- any other change (napari's undo or redo, a script) is found by that comparison and goes to
  :meth:`ReviewSession.settle_change`, which recognises an undo or redo of a stroke.

Changes the docks make through the session (a slider, a new run, discarding edits) reach the
layer through :meth:`ViewerState.commit`, which refreshes it without asking the tracker.

An approved review is read-only (its layer is not editable); a change that still reaches its
labels (a script writing into the layer) is undone from the snapshot.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import numpy as np

from ._state import ViewerState

logger = logging.getLogger(__name__)


class EditTracker:
    """Reports what was done to one labels layer to the viewer's :class:`ReviewSession`."""

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

    def _stroke_voxels(
        self, event: Any, labels: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray] | None:
        """Flat indices into ``labels`` and new values of the stroke in a ``paint`` event, from its
        history atoms (napari's masked paint atoms or ``(indices, old, new)`` tuples) mapped
        through the layer's view of ``labels``; None when they cannot be read."""
        data = self.layer.data
        if (
            not isinstance(data, np.ndarray)
            or not labels.flags.c_contiguous
            or not np.shares_memory(data, labels)
        ):
            return None
        origin = (
            data.__array_interface__["data"][0] - labels.__array_interface__["data"][0]
        ) // labels.itemsize
        strides = np.asarray(data.strides, dtype=np.intp)[:, None] // labels.itemsize
        voxels, values = [], []
        for atom in getattr(event, "value", None) or []:
            if hasattr(atom, "slice_key") and hasattr(atom, "new_value"):
                box = atom.slice_key
                idx = (
                    np.indices([s.stop - s.start for s in box]).reshape(len(box), -1)
                    if atom.mask is None
                    else np.array(np.nonzero(atom.mask))
                )
                idx = idx + np.array([s.start for s in box], dtype=np.intp)[:, None]
                new = np.full(idx.shape[1], atom.new_value)
            elif isinstance(atom, tuple) and len(atom) == 3 and len(atom[0]) == data.ndim:
                idx = np.array([np.asarray(i).ravel() for i in atom[0]], dtype=np.intp)
                new = np.broadcast_to(np.asarray(atom[2]), idx.shape[1:])
            else:
                return None
            voxels.append(origin + (idx * strides).sum(0))
            values.append(new)
        if not voxels:
            return None
        return np.concatenate(voxels).astype(np.intp), np.concatenate(values).astype(labels.dtype)

    def _refused(self) -> bool:
        """True for an approved review: any change to its labels is undone from the snapshot."""
        session = self.state.session
        approval = session.approval if session is not None else None
        if session is None or approval is None or self.state.layer is not self.layer:
            return False
        if self.snapshot is not None and self.snapshot.shape == session.labels.shape:
            changed = session.labels != self.snapshot
            if changed.any():
                logger.warning(
                    "%s is %s: %d changed voxels undone (reopen it to edit)",
                    session.case.case_id,
                    approval.line(),
                    int(changed.sum()),
                )
                np.copyto(session.labels, self.snapshot, where=changed)
                self.layer.refresh()
        return True

    def _on_paint(self, event: Any = None) -> None:
        if self._refused():
            return
        start = time.perf_counter()
        session = self.state.session
        stroke = None
        if session is not None and self.state.layer is self.layer:
            self._changed()  # (re)takes the snapshot when there was none
            stroke = self._stroke_voxels(event, session.labels)
        if stroke is None or self.snapshot is None:
            hit = self._changed()  # unreadable atoms: the stroke is what differs from the snapshot
            if hit is None:
                return
            session, changed = hit
            voxels = np.flatnonzero(changed)
            stroke = (voxels, session.labels.reshape(-1)[voxels])
        voxels, after = stroke
        if session is None:  # a stroke always has its session; this narrows the type
            return
        assert self.snapshot is not None
        snapshot = self.snapshot.reshape(-1)
        session.apply_stroke(voxels, after, before=snapshot[voxels])
        snapshot[voxels] = after  # the stroke's values, written now or just after
        self._commit(start, refresh=False)

    def _on_set_data(self, _event: Any = None) -> None:
        if self.state.committing:  # the session's own change, shown by ViewerState.commit
            return
        if self._refused():
            return
        start = time.perf_counter()
        hit = self._changed()
        if hit is None:
            return
        session, changed = hit
        last = session.strokes.done[-1] if session.strokes.done else None
        kind = session.settle_change(changed)
        assert self.snapshot is not None
        np.copyto(self.snapshot, session.labels, where=changed)
        # an undo gave the stroke's fresh voxels the proposal's value: show it
        released = last.fresh if kind == "undo" and last is not None else None
        if released is not None and released.size:
            self.snapshot.reshape(-1)[released] = session.labels.reshape(-1)[released]
        self._commit(start, refresh=released is not None and released.size > 0)

    def _commit(self, start: float, refresh: bool) -> None:
        """The session changed through this layer: one notification and autosave."""
        self.last_ms = (time.perf_counter() - start) * 1000.0
        self.state.commit(refresh=refresh)
