"""Per-case review session shared by the docks of one viewer.

A :class:`CaseSession` holds, for the case being reviewed, everything the docks need without
re-running the model: the cached region probabilities, the current AI proposal (probabilities →
labels under the current postprocessing settings), the working label map shown and edited in the
labels layer, and the mask of voxels the user edited (overrides). Moving a postprocessing slider
recomputes the proposal and writes it into the working map everywhere *except* the overrides, so
manual corrections survive.

All arrays are in engine order (X, Y, Z); the labels layer holds a transposed view of
:attr:`CaseSession.labels`, so paint strokes land directly in it.
"""

from __future__ import annotations

import logging
import time
import weakref
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from psygnal import Signal

from bratseg.labels import LABEL_VALUES

logger = logging.getLogger(__name__)


@dataclass
class ModelInfo:
    """What produced an AI proposal (for the report and the export provenance)."""

    names: list[str]
    paths: list[str]
    sha256: list[str]
    device: str = ""
    seconds: float = 0.0
    tta: int = 0


@dataclass
class CaseSession:
    """Review state of one case.

    Attributes:
        case: The :class:`bratseg.io.Case` under review.
        convention: Label convention of :attr:`labels` and :attr:`proposal`.
        region_probs: float16 (3, X, Y, Z) WT/TC/ET probabilities, or None before segmentation.
        config: The :class:`bratseg.postprocess.PostprocessConfig` in force.
        proposal: uint8 (X, Y, Z) AI proposal under :attr:`config`.
        labels: uint8 (X, Y, Z) working map (AI proposal + manual corrections); the layer's memory.
        overrides: bool (X, Y, Z) voxels edited by hand; they keep their value when settings move.
        model: Which model(s) produced the probabilities.
        class_probs: float16 (4, X, Y, Z) class probabilities when the model outputs classes
            (needed for the ``argmax`` mode), else None.
        layer: The napari labels layer showing :attr:`labels` (set by the Segment dock).
    """

    case: Any
    convention: str
    region_probs: np.ndarray
    config: Any
    proposal: np.ndarray
    labels: np.ndarray
    overrides: np.ndarray
    model: ModelInfo
    class_probs: np.ndarray | None = None
    layer: Any = None
    created: float = field(default_factory=time.time)
    last_update_ms: float = 0.0

    @classmethod
    def from_prediction(cls, case: Any, prediction: Any, model: ModelInfo) -> CaseSession:
        """Session from a :class:`bratseg.inference.Prediction` of ``case``."""
        labels = np.ascontiguousarray(prediction.labels, dtype=np.uint8)
        return cls(
            case=case,
            convention=str(prediction.convention),
            region_probs=prediction.region_probs,
            config=prediction.postprocess,
            proposal=labels.copy(),
            labels=labels,
            overrides=np.zeros(labels.shape, dtype=bool),
            model=model,
            class_probs=getattr(prediction, "class_probs", None),
        )

    def record_edits(self, indices: tuple[np.ndarray, ...] | None = None) -> int:
        """Mark hand-edited voxels as overrides.

        Args:
            indices: Engine-order index arrays of painted voxels (from a paint event), or None to
                only diff the working map against the proposal (catches every edit path).

        Returns:
            Number of override voxels after the update.
        """
        if indices is not None:
            self.overrides[indices] = True
        np.logical_or(self.overrides, self.labels != self.proposal, out=self.overrides)
        return int(self.overrides.sum())

    def apply_config(self, config: Any) -> float:
        """Recompute the proposal under ``config`` and merge it into :attr:`labels` in place.

        Override voxels keep their current (hand-edited) value.

        Returns:
            Milliseconds the update took.
        """
        from bratseg.postprocess import postprocess

        start = time.perf_counter()
        self.record_edits()
        proposal = postprocess(
            self.region_probs, config, convention=self.convention, class_probs=self.class_probs
        )
        self.config = config
        self.proposal = np.asarray(proposal, dtype=np.uint8)
        np.copyto(self.labels, self.proposal, where=~self.overrides)
        self.last_update_ms = (time.perf_counter() - start) * 1000.0
        return self.last_update_ms

    def clear_overrides(self) -> None:
        """Discard all manual corrections: the working map becomes the AI proposal again."""
        self.overrides[:] = False
        np.copyto(self.labels, self.proposal)

    def edited_voxels(self) -> dict[str, dict[str, int]]:
        """Voxels changed by hand per tissue: ``{tissue: {"added": n, "removed": m}}``.

        "added" counts voxels now labelled ``tissue`` that the AI labelled otherwise, "removed"
        the reverse; background is reported too.
        """
        changed = self.labels != self.proposal
        now = self.labels[changed]
        before = self.proposal[changed]
        values = {"background": 0, **LABEL_VALUES[self.convention]}
        return {
            tissue: {"added": int((now == v).sum()), "removed": int((before == v).sum())}
            for tissue, v in values.items()
        }


class ViewerState:
    """The session of one viewer plus signals the docks listen to."""

    #: Emitted with the new :class:`CaseSession` (or None) when a case is segmented or closed.
    session_changed = Signal(object)
    #: Emitted after the working labels changed (postprocessing update or edit).
    labels_changed = Signal()
    #: Emitted when the set of available models may have changed (after training).
    models_changed = Signal()

    def __init__(self) -> None:
        self.session: CaseSession | None = None

    def set_session(self, session: CaseSession | None) -> None:
        """Replace the current session and notify the docks."""
        self.session = session
        self.session_changed.emit(session)


_STATES: weakref.WeakKeyDictionary[Any, ViewerState] = weakref.WeakKeyDictionary()
_GLOBAL_KEY = object()
_GLOBAL = ViewerState()


def viewer_state(viewer: Any) -> ViewerState:
    """The :class:`ViewerState` of ``viewer`` (created on first use)."""
    if viewer is None:
        return _GLOBAL
    try:
        state = _STATES.get(viewer)
    except TypeError:  # viewer not weak-referenceable
        return _GLOBAL
    if state is None:
        state = ViewerState()
        _STATES[viewer] = state
    return state
