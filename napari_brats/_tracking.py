"""Which voxels the user edited, read from the labels layer's public events only.

napari emits ``paint`` for brush, fill and polygon strokes and ``set_data`` for undo, redo and
refreshes. :class:`EditTracker` keeps a snapshot of the working labels and compares after each:

- after a stroke, every voxel that changed becomes a hand edit (an override that new settings
  and new model runs keep). The voxels come from the stroke's history item carried by the
  ``paint`` event (napari emits it before writing the data for programmatic edits);
- after an undo of the last stroke, the voxels that the stroke made hand edits go back to the
  proposal: they take its current value (napari restores the one from before the stroke, which
  a slider may have changed since) and follow it again; a redo makes them hand edits again;
- after any other outside change, a changed voxel is a hand edit exactly when it now differs
  from the AI proposal.

The engine's own proposal updates write only non-edited voxels to the proposal's value, so the
``set_data`` of the following refresh leaves the edits as they are.

An approved review is read-only (its layer is not editable); a change that still reaches its
labels (a script writing into the layer) is undone from the snapshot.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from ._state import ViewerState

logger = logging.getLogger(__name__)


#: Strokes remembered for undo (napari keeps fewer).
MAX_STROKES = 200


@dataclass
class _Stroke:
    """One paint stroke as flat indices into the working labels."""

    voxels: np.ndarray  # voxels the stroke changed
    fresh: np.ndarray  # those of them that were no hand edit before it
    after: np.ndarray  # the values the stroke gave ``voxels``


class EditTracker:
    """Keeps :attr:`ReviewSession.overrides` in line with what was done to one labels layer."""

    def __init__(self, state: ViewerState, layer: Any) -> None:
        self.state = state
        self.layer = layer
        self.snapshot: np.ndarray | None = None
        self.last_ms = 0.0
        self.strokes: list[_Stroke] = []
        self.undone: list[_Stroke] = []
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
        if session is None or not session.approved or self.state.layer is not self.layer:
            return False
        if self.snapshot is not None and self.snapshot.shape == session.labels.shape:
            changed = session.labels != self.snapshot
            if changed.any():
                logger.warning(
                    "%s is %s: %d changed voxels undone (reopen it to edit)",
                    session.case.case_id,
                    session.approval.line(),
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
        overrides = session.overrides.reshape(-1)
        fresh = voxels[~overrides[voxels]]
        overrides[voxels] = True
        self.snapshot.reshape(-1)[voxels] = after  # the stroke's values, written now or just after
        self.strokes.append(_Stroke(voxels, fresh, after.copy()))
        del self.strokes[:-MAX_STROKES]
        self.undone.clear()
        self._commit(session, np.zeros(session.labels.shape, dtype=bool), start)

    def _on_set_data(self, _event: Any = None) -> None:
        if self._refused():
            return
        start = time.perf_counter()
        hit = self._changed()
        if hit is None:
            return
        session, changed = hit
        labels, flat_changed = session.labels.reshape(-1), changed.reshape(-1)
        overrides, proposal = session.overrides.reshape(-1), session.proposal.reshape(-1)
        last = self.strokes[-1] if self.strokes else None
        again = self.undone[-1] if self.undone else None
        if (
            last is not None
            and flat_changed[last.voxels].any()
            and (labels[last.voxels] != last.after).all()
        ):
            self.undone.append(self.strokes.pop())  # an undo of the last stroke
            session.overrides[changed] = session.labels[changed] != session.proposal[changed]
            overrides[last.fresh] = False  # its own voxels follow the proposal again
            labels[last.fresh] = proposal[last.fresh]
        elif (
            again is not None
            and flat_changed[again.voxels].any()
            and (labels[again.voxels] == again.after).all()
        ):
            self.strokes.append(self.undone.pop())  # a redo: its voxels are hand edits again
            session.overrides[changed] = session.labels[changed] != session.proposal[changed]
            overrides[again.voxels] = True
        else:
            session.overrides[changed] = session.labels[changed] != session.proposal[changed]
            last = None
        self._commit(session, changed, start)
        if last is not None and last.fresh.size:
            self.layer.refresh()  # show the proposal's values (the nested event finds no change)

    def _commit(self, session: Any, changed: np.ndarray, start: float) -> None:
        assert self.snapshot is not None
        np.copyto(self.snapshot, session.labels, where=changed)
        self.last_ms = (time.perf_counter() - start) * 1000.0
        self.state.labels_changed.emit()
        self.state.schedule_save()
