"""The review state of one case: AI probabilities, proposal, working labels and hand edits.

A :class:`ReviewSession` holds, for the case being reviewed, everything needed without running
the model again: the region probabilities, the AI proposal (probabilities -> labels under the
current postprocessing), the working label map a user edits, and the mask of hand-edited voxels
(overrides). A new postprocessing config or a new model run recomputes the proposal and writes it
into the working map everywhere *except* the overrides, so corrections survive both.

Invariant (kept by every method): outside :attr:`ReviewSession.overrides` the working labels equal
the proposal. So the working map is fully described by the proposal plus the override voxels'
values, which is what :mod:`bratseg.review.store` saves.

An approved session (:mod:`bratseg.review.signoff`) is read-only: every method that would change
its labels or proposal raises :class:`~bratseg.review.signoff.ReviewLockedError` until
:meth:`ReviewSession.reopen`.

All arrays are in engine order (X, Y, Z), in the case's source storage.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from bratseg.labels import LABEL_VALUES, Convention, check_convention
from bratseg.review import strokes as stroke_rules
from bratseg.review.model_info import ModelInfo
from bratseg.review.signoff import APPROVE, REOPEN, ReviewLockedError, SignOff, is_approved, sign
from bratseg.review.strokes import ChangeKind, Stroke, StrokeHistory

#: ``assessment=`` value asking a session to compute its run's needs-review assessment itself.
COMPUTE = "compute"

if TYPE_CHECKING:
    from bratseg.inference import Prediction
    from bratseg.io import Case
    from bratseg.postprocess import EnhancementEvidence, PostprocessConfig, ReferenceFitCache


def _new_reference_fits() -> ReferenceFitCache:
    """An empty fit cache (imported when a session is made: the postprocessing is heavy)."""
    from bratseg.postprocess import ReferenceFitCache

    return ReferenceFitCache()


@dataclass
class ReviewSession:
    """Review state of one case.

    Attributes:
        case: The :class:`bratseg.io.Case` under review.
        convention: Label convention of :attr:`labels` and :attr:`proposal`.
        region_probs: float16 (3, X, Y, Z) WT/TC/ET probabilities (``None`` for a session
            restored from disk without them: settings then cannot move until a new run).
        config: The :class:`bratseg.postprocess.PostprocessConfig` in force.
        proposal: uint8 (X, Y, Z) AI proposal under :attr:`config`.
        labels: uint8 (X, Y, Z) working map (proposal + corrections); a viewer's layer memory.
        overrides: bool (X, Y, Z) voxels edited by hand; they keep their value when the proposal
            changes.
        model: Which model(s) produced the probabilities.
        initial_config: The config the model run started with ("Reset to model defaults").
        class_probs: float16 (4, X, Y, Z) class probabilities of class-output models (for the
            ``argmax`` mode), else None.
        created: When the session was made (epoch seconds).
        last_update_ms: Duration of the last proposal update.
        signoffs: Sign-off history (:class:`~bratseg.review.signoff.SignOff`), oldest first; the
            session is read-only while the last one is an approval.
        strokes: Hand strokes that can be undone and redone (:mod:`bratseg.review.strokes`; not
            saved).
        et_evidence: What the no-enhancement ET rule measured and decided under :attr:`config`
            (:class:`bratseg.postprocess.EnhancementEvidence`; None when off or no ET).
        saved_version: The save of :class:`bratseg.review.SessionStore` this session was
            restored from or last saved as (set by the store; None: never saved), so a save over
            another writer's newer one is refused instead of silently dropping their edits.
        reference_fits: The case's T1 -> T1Gd fit for the no-enhancement rule, reused while
            the tumour mask is unchanged, so a settings move does not refit (not saved).
    """

    case: Case
    convention: Convention
    region_probs: np.ndarray | None
    config: PostprocessConfig
    proposal: np.ndarray
    labels: np.ndarray
    overrides: np.ndarray
    model: ModelInfo
    initial_config: PostprocessConfig | None = None
    class_probs: np.ndarray | None = None
    created: float = field(default_factory=time.time)
    last_update_ms: float = 0.0
    signoffs: list[SignOff] = field(default_factory=list)
    assessment: dict[str, Any] | None = None
    et_evidence: EnhancementEvidence | None = None
    strokes: StrokeHistory = field(default_factory=StrokeHistory, repr=False, compare=False)
    saved_version: str | None = None
    reference_fits: ReferenceFitCache = field(
        default_factory=_new_reference_fits, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        if self.initial_config is None:
            self.initial_config = self.config

    @classmethod
    def from_prediction(
        cls,
        case: Case,
        prediction: Prediction,
        model: ModelInfo,
        assessment: dict[str, Any] | None | str = COMPUTE,
    ) -> ReviewSession:
        """Session from a :class:`bratseg.inference.Prediction` of ``case``.

        ``assessment``: the run's needs-review assessment
        (:func:`bratseg.review.assessment.assessment_of`), computed here unless given (a GUI
        computes it in its worker thread).
        """
        labels = np.ascontiguousarray(prediction.labels, dtype=np.uint8)
        return cls(
            case=case,
            convention=check_convention(prediction.convention),
            region_probs=prediction.region_probs,
            config=prediction.postprocess,
            proposal=labels.copy(),
            labels=labels,
            overrides=np.zeros(labels.shape, dtype=bool),
            model=model,
            class_probs=getattr(prediction, "class_probs", None),
            assessment=_given_or_computed(assessment, prediction, case),
            et_evidence=getattr(prediction, "et_evidence", None),
        )

    # ------------------------------------------------------------------ edits
    def record_edits(self, indices: tuple[np.ndarray, ...] | None = None) -> int:
        """Mark hand-edited voxels as overrides.

        Args:
            indices: Engine-order index arrays of painted voxels (they become overrides even
                where the brush gave the proposal's own value: an explicit confirmation), or
                None to only diff the working map against the proposal (catches every edit path).

        Returns:
            Number of override voxels after the update.
        """
        if self.approved and (
            indices is not None or np.any((self.labels != self.proposal) & ~self.overrides)
        ):
            self._refuse("editing its labels")
        if indices is not None:
            self.overrides[indices] = True
        np.logical_or(self.overrides, self.labels != self.proposal, out=self.overrides)
        return int(self.overrides.sum())

    def forget_undone(self, indices: tuple[np.ndarray, ...]) -> int:
        """After an undo restored the voxels ``indices`` to earlier values: they stay overrides
        only where they still differ from the proposal, so they follow it again otherwise.

        Returns:
            Number of override voxels after the update.
        """
        self._check_open("undoing edits")
        self.overrides[indices] = self.labels[indices] != self.proposal[indices]
        return int(self.overrides.sum())

    def apply_stroke(
        self, voxels: np.ndarray, values: np.ndarray, before: np.ndarray | None = None
    ) -> Stroke:
        """A brush, fill or polygon stroke: ``values`` at the flat indices ``voxels`` of
        :attr:`labels` (written here; an editor may have written them already, then ``before``
        gives the earlier values). Every voxel of it becomes a hand edit
        (:func:`bratseg.review.strokes.apply_stroke`).

        Raises:
            ReviewLockedError: The session is approved.
        """
        self._check_open("editing its labels")
        return stroke_rules.apply_stroke(
            self.strokes, self.labels, self.overrides, voxels, values, before
        )

    def undo_stroke(self) -> Stroke | None:
        """Undo the last stroke: its voxels get their earlier values, and those that were no hand
        edit before it follow the proposal again. ``None`` when there is nothing to undo."""
        self._check_open("undoing edits")
        return stroke_rules.undo_stroke(self.strokes, self.labels, self.overrides, self.proposal)

    def redo_stroke(self) -> Stroke | None:
        """Redo the last undone stroke (its voxels are hand edits again); ``None`` when none."""
        self._check_open("redoing edits")
        return stroke_rules.redo_stroke(self.strokes, self.labels, self.overrides)

    def settle_change(self, changed: np.ndarray) -> ChangeKind:
        """:attr:`labels` changed at the bool (X, Y, Z) mask ``changed`` by someone else (an
        editor's own undo or redo, a script): recognise an undo or redo of a stroke, and keep the
        hand-edit mask right (:func:`bratseg.review.strokes.settle_change`).

        Raises:
            ReviewLockedError: The session is approved.
        """
        self._check_open("editing its labels")
        return stroke_rules.settle_change(
            self.strokes, self.labels, self.overrides, self.proposal, changed
        )

    def apply_config(self, config: PostprocessConfig) -> float:
        """Recompute the proposal under ``config`` and merge it into :attr:`labels` in place.

        Override voxels keep their current (hand-edited) value.

        Returns:
            Milliseconds the update took.

        Raises:
            ValueError: The session holds no probabilities (restored from disk).
        """
        from bratseg.inference.engine import t1_t1ce
        from bratseg.postprocess import postprocess_with_evidence

        self._check_open("changing its postprocessing")
        if self.region_probs is None:
            raise ValueError("this review session has no probabilities: segment the case again")
        start = time.perf_counter()
        self.record_edits()
        proposal, self.et_evidence = postprocess_with_evidence(
            self.region_probs,
            config,
            convention=self.convention,
            class_probs=self.class_probs,
            t1_t1ce=t1_t1ce(self.case.image),
            fits=self.reference_fits,
        )
        self.config = config
        self.set_proposal(np.asarray(proposal, dtype=np.uint8))
        self.last_update_ms = (time.perf_counter() - start) * 1000.0
        return self.last_update_ms

    def set_proposal(self, proposal: np.ndarray) -> None:
        """Make ``proposal`` the AI proposal; the working map follows it outside the overrides."""
        self._check_open("changing its AI proposal")
        self.proposal = np.ascontiguousarray(proposal, dtype=np.uint8)
        np.copyto(self.labels, self.proposal, where=~self.overrides)

    def replace_prediction(
        self,
        prediction: Prediction,
        model: ModelInfo,
        keep_edits: bool = True,
        assessment: dict[str, Any] | None | str = COMPUTE,
    ) -> int:
        """A new model run on the same case: new probabilities and proposal, edits kept.

        The working map is updated in place (a viewer layer showing it keeps its undo history).

        Args:
            prediction: The new prediction (same case and grid).
            model: What produced it.
            keep_edits: Keep the hand edits as overrides on the new proposal (default); False
                discards them.
            assessment: The new run's needs-review assessment, computed here unless given.

        Returns:
            Number of hand-edited voxels kept.

        Raises:
            ValueError: The prediction's grid differs from the session's.
            ReviewLockedError: The session is approved.
        """
        self._check_open("replacing its AI proposal")
        if prediction.labels.shape != self.labels.shape:
            raise ValueError(
                f"prediction grid {prediction.labels.shape} differs from {self.labels.shape}"
            )
        self.record_edits()
        if not keep_edits:
            self.overrides[:] = False
        if str(prediction.convention) != self.convention:  # keep the hand values meaningful
            from bratseg.labels import convert_labels

            self.labels[...] = convert_labels(self.labels, self.convention, prediction.convention)
            self.convention = check_convention(prediction.convention)
        self.region_probs = prediction.region_probs
        self.class_probs = getattr(prediction, "class_probs", None)
        self.et_evidence = getattr(prediction, "et_evidence", None)
        self.config = self.initial_config = prediction.postprocess
        self.model = model
        self.set_proposal(prediction.labels)
        self.assessment = _given_or_computed(assessment, prediction, self.case)
        return int(self.overrides.sum())

    def clear_overrides(self) -> None:
        """Discard all manual corrections: the working map becomes the AI proposal again."""
        self._check_open("discarding its edits")
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

    @property
    def n_edited(self) -> int:
        """Voxels whose working label differs from the proposal."""
        return int(np.count_nonzero(self.labels != self.proposal))

    # ------------------------------------------------------------------ sign-off
    @property
    def approved(self) -> bool:
        """Whether the review is signed off (read-only until :meth:`reopen`)."""
        return is_approved(self.signoffs)

    @property
    def approval(self) -> SignOff | None:
        """The sign-off in force, or None when the review is open."""
        return self.signoffs[-1] if self.approved else None

    def approve(self, reviewer: str | None = None, note: str = "") -> SignOff:
        """Sign the review off: records reviewer, time, models, settings and edit counts.

        Args:
            reviewer: Who approves (default: the OS user).
            note: Free text kept with the approval.

        Returns:
            The new :class:`~bratseg.review.signoff.SignOff`.

        Raises:
            ReviewLockedError: Already approved.
        """
        self._check_open("approving it again")
        self.record_edits()
        entry = sign(self, APPROVE, reviewer, note)
        self.signoffs.append(entry)
        return entry

    def reopen(self, reviewer: str | None = None, note: str = "") -> SignOff:
        """Lift the approval (recorded in the history): the review can be edited again.

        Raises:
            ReviewLockedError: The review is not approved.
        """
        if not self.approved:
            raise ReviewLockedError(f"case {self.case.case_id} is not approved: nothing to reopen")
        entry = sign(self, REOPEN, reviewer, note)
        self.signoffs.append(entry)
        return entry

    def _check_open(self, action: str) -> None:
        if self.approved:
            self._refuse(action)

    def _refuse(self, action: str) -> None:
        raise ReviewLockedError(
            f"case {self.case.case_id} is {self.signoffs[-1].line()}: reopen it before {action}"
        )


def _given_or_computed(
    assessment: dict[str, Any] | None | str, prediction: Prediction, case: Case
) -> dict[str, Any] | None:
    if isinstance(assessment, str):
        if assessment != COMPUTE:
            raise ValueError(f"assessment must be a dict, None or {COMPUTE!r}, got {assessment!r}")
        from bratseg.review.assessment import assessment_of

        return assessment_of(prediction, case)
    return assessment
