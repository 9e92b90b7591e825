"""Hand strokes on a review's working labels, and their undo and redo: which voxels are edits.

The rules (:class:`bratseg.review.ReviewSession` applies them through :meth:`apply_stroke`,
:meth:`undo_stroke`, :meth:`redo_stroke` and :meth:`settle_change`; an editor only reports what
happened):

- a stroke makes every voxel it changed a hand edit (an override that new settings and new model
  runs keep);
- undoing it gives its voxels back their values from before the stroke; those that were no hand
  edit before it follow the proposal again and take its *current* value (a slider may have moved
  since the stroke); a redo makes them hand edits again;
- any other change (a script, an editor's own undo that is not of the last stroke) makes a
  changed voxel a hand edit exactly when it now differs from the proposal.

All voxel indices are flat (C order) indices into the (X, Y, Z) labels.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np

#: Strokes remembered for undo (napari keeps fewer).
MAX_STROKES = 200

#: What :func:`settle_change` recognised.
ChangeKind = Literal["undo", "redo", "edit"]


@dataclass
class Stroke:
    """One stroke on the working labels.

    Attributes:
        voxels: intp (N,) flat indices the stroke changed.
        fresh: intp (M,) those of them that were no hand edit before it.
        before: uint8 (N,) their values before the stroke.
        after: uint8 (N,) the values the stroke gave them.
    """

    voxels: np.ndarray
    fresh: np.ndarray
    before: np.ndarray
    after: np.ndarray


@dataclass
class StrokeHistory:
    """The strokes that can be undone (oldest first) and those undone that can be redone."""

    done: list[Stroke] = field(default_factory=list)
    undone: list[Stroke] = field(default_factory=list)
    limit: int = MAX_STROKES

    def clear(self) -> None:
        """Forget every stroke (the labels were replaced as a whole)."""
        self.done.clear()
        self.undone.clear()


def apply_stroke(
    history: StrokeHistory,
    labels: np.ndarray,
    overrides: np.ndarray,
    voxels: np.ndarray,
    values: np.ndarray,
    before: np.ndarray | None = None,
) -> Stroke:
    """Record a stroke that writes ``values`` at ``voxels``: they become hand edits.

    Args:
        history: Where the stroke is remembered (the redo list is cleared).
        labels: uint8 (X, Y, Z) working labels; ``values`` are written into them (an editor may
            have written them already).
        overrides: bool (X, Y, Z) hand-edit mask, updated in place.
        voxels: Flat indices of the stroke.
        values: The stroke's values (one per voxel, or one for all).
        before: The voxels' values before the stroke when ``labels`` already holds the stroke;
            default: read from ``labels``.

    Returns:
        The recorded :class:`Stroke`.
    """
    voxels = np.asarray(voxels, dtype=np.intp).ravel()
    flat_labels, flat_overrides = labels.reshape(-1), overrides.reshape(-1)
    after = np.broadcast_to(np.asarray(values, dtype=labels.dtype), voxels.shape).copy()
    old = flat_labels[voxels] if before is None else np.asarray(before, dtype=labels.dtype)
    stroke = Stroke(voxels, voxels[~flat_overrides[voxels]], old.copy(), after)
    flat_overrides[voxels] = True
    flat_labels[voxels] = after
    history.done.append(stroke)
    del history.done[: -history.limit]
    history.undone.clear()
    return stroke


def settle_change(
    history: StrokeHistory,
    labels: np.ndarray,
    overrides: np.ndarray,
    proposal: np.ndarray,
    changed: np.ndarray,
) -> ChangeKind:
    """Bring the hand-edit mask in line after ``labels`` changed at ``changed`` outside a stroke.

    An editor's undo of the last stroke is recognised by its voxels no longer holding the
    stroke's values, a redo of the last undone one by its voxels holding them again.

    Args:
        history: The strokes (updated when an undo or redo is recognised).
        labels: uint8 (X, Y, Z) working labels, as changed (the stroke's fresh voxels take the
            proposal's value on an undo).
        overrides: bool (X, Y, Z) hand-edit mask, updated in place.
        proposal: uint8 (X, Y, Z) AI proposal.
        changed: bool (X, Y, Z) voxels that changed.

    Returns:
        ``"undo"``, ``"redo"`` or ``"edit"`` (any other change).
    """
    flat_labels, flat_changed = labels.reshape(-1), changed.reshape(-1)
    last = history.done[-1] if history.done else None
    again = history.undone[-1] if history.undone else None
    follow_proposal(labels, overrides, proposal, changed)
    if (
        last is not None
        and flat_changed[last.voxels].any()
        and (flat_labels[last.voxels] != last.after).all()
    ):
        history.undone.append(history.done.pop())
        _release(last, labels, overrides, proposal)
        return "undo"
    if (
        again is not None
        and flat_changed[again.voxels].any()
        and (flat_labels[again.voxels] == again.after).all()
    ):
        history.done.append(history.undone.pop())
        overrides.reshape(-1)[again.voxels] = True
        return "redo"
    return "edit"


def undo_stroke(
    history: StrokeHistory, labels: np.ndarray, overrides: np.ndarray, proposal: np.ndarray
) -> Stroke | None:
    """Undo the last stroke: its voxels get their earlier values, its fresh ones the proposal's.

    Returns:
        The stroke undone, or ``None`` when there is none.
    """
    if not history.done:
        return None
    stroke = history.done.pop()
    labels.reshape(-1)[stroke.voxels] = stroke.before
    follow_proposal(labels, overrides, proposal, stroke.voxels)
    _release(stroke, labels, overrides, proposal)
    history.undone.append(stroke)
    return stroke


def redo_stroke(history: StrokeHistory, labels: np.ndarray, overrides: np.ndarray) -> Stroke | None:
    """Redo the last undone stroke: its voxels get its values and are hand edits again.

    Returns:
        The stroke redone, or ``None`` when there is none.
    """
    if not history.undone:
        return None
    stroke = history.undone.pop()
    labels.reshape(-1)[stroke.voxels] = stroke.after
    overrides.reshape(-1)[stroke.voxels] = True
    history.done.append(stroke)
    return stroke


def follow_proposal(
    labels: np.ndarray, overrides: np.ndarray, proposal: np.ndarray, where: np.ndarray
) -> None:
    """Voxels ``where`` (a bool mask or flat indices) are hand edits exactly when they differ
    from the proposal."""
    if where.dtype == bool:
        overrides[where] = labels[where] != proposal[where]
    else:
        flat = overrides.reshape(-1)
        flat[where] = labels.reshape(-1)[where] != proposal.reshape(-1)[where]


def _release(
    stroke: Stroke, labels: np.ndarray, overrides: np.ndarray, proposal: np.ndarray
) -> None:
    """The stroke's fresh voxels follow the proposal again (and take its current value)."""
    overrides.reshape(-1)[stroke.fresh] = False
    labels.reshape(-1)[stroke.fresh] = proposal.reshape(-1)[stroke.fresh]
