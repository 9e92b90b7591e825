"""The needs-review assessment of a case: one function makes it, every front end shows it.

:func:`assess_labels` is the one place the rules of :mod:`bratseg.review.flag_rules` are applied to
a label map (:func:`bratseg.review.uncertainty.assess_case` with the case's brain size for the
plausibility rules). Its result is recorded on the :class:`~bratseg.review.ReviewSession`
(``session.assessment``) and autosaved with it, and every consumer reads that record:

- a model run (Segment dock, ``review.batch``): :func:`assessment_of` its prediction; ``predict``'s
  summary line and the dataset run's records: :func:`prediction_reasons` of it;
- the Hotspots dock: :func:`assess_session` of the working labels, which records it again, so the
  autosave, the Worklist row and the report follow what the dock shows;
- the Worklist row (dock and ``bratseg worklist``), the Report dock and ``bratseg report``:
  :func:`reasons_of` the recorded assessment, and :func:`report_notes` for a report.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from bratseg.inference import Prediction
    from bratseg.io import Case
    from bratseg.review.session import ReviewSession
    from bratseg.review.uncertainty import ReviewAssessment

logger = logging.getLogger(__name__)

#: How a report introduces each needs-review reason.
NEEDS_REVIEW_NOTE = "Needs review: "


def assess_labels(
    region_probs: np.ndarray, labels: np.ndarray, case: Case, convention: str
) -> ReviewAssessment:
    """The needs-review assessment of ``labels`` given the run's probabilities.

    Args:
        region_probs: float (3, X, Y, Z) WT/TC/ET probabilities of the model run.
        labels: uint8 (X, Y, Z) label map in ``convention`` (the proposal or the working labels).
        case: The :class:`bratseg.io.Case` (spacing; its image gives the brain size; a series
            it lacks is the first reason, see :meth:`bratseg.io.Case.missing_sequence_notes`).
        convention: Label convention of ``labels``.

    Raises:
        ValueError: Shapes that do not match.
    """
    from bratseg.review.plausibility import brain_voxel_count
    from bratseg.review.uncertainty import assess_case

    assessment = assess_case(
        region_probs,
        labels,
        tuple(case.spacing),
        str(convention),
        brain_voxels=brain_voxel_count(case.image),
    )
    from bratseg.io.case import missing_sequence_note

    substituted = getattr(case, "substituted", None) or {}  # a series stood in: said first
    if not substituted:
        return assessment
    missing = [missing_sequence_note(gone, stand_in) for gone, stand_in in substituted.items()]
    reasons = [f"{note}." for note in missing] + assessment.reasons
    return dataclasses.replace(assessment, reasons=reasons, needs_review=True)


def assessment_of(prediction: Prediction, case: Case) -> dict[str, Any] | None:
    """The needs-review assessment of a model run's labels as a dict; ``None`` when the run kept
    no probabilities or the assessment failed (it is advisory: logged, never raised)."""
    if getattr(prediction, "region_probs", None) is None:
        return None
    try:
        return assess_labels(
            prediction.region_probs, prediction.labels, case, str(prediction.convention)
        ).to_dict()
    except (ValueError, MemoryError) as exc:
        logger.warning("needs-review assessment of %s failed: %s", case.case_id, exc)
        return None


def prediction_reasons(prediction: Prediction, case: Case) -> list[str]:
    """The needs-review reasons of a model run, as every front end states them: those of its
    full assessment (:func:`assessment_of`: the Segment dock, the worklist, the report), or the
    plausibility rules alone when the run kept no probabilities. ``predict``'s summary line and
    the dataset run's ``cases.jsonl`` / ``summary.csv`` use this, so a case flagged in the
    viewer is flagged there too.

    Args:
        prediction: The run's :class:`bratseg.inference.Prediction`.
        case: The case it segmented (spacing, image for the brain size, missing series).
    """
    assessment = assessment_of(prediction, case)
    if assessment is not None:
        return reasons_of(assessment)
    from bratseg.review.plausibility import prediction_plausibility

    return prediction_plausibility(prediction, case.image, case.spacing)


def assess_session(session: ReviewSession) -> ReviewAssessment | None:
    """The needs-review assessment of a session's working labels, recorded on the session
    (``session.assessment``, autosaved with it); None when it has no probabilities (restored
    from disk), and the recorded one is then left as it is.

    Raises:
        ValueError: Probabilities and labels of different shapes.
        MemoryError: Not enough memory for the uncertainty map.
    """
    if session.region_probs is None:
        return None
    assessment = assess_labels(
        session.region_probs, session.labels, session.case, session.convention
    )
    session.assessment = assessment.to_dict()
    return assessment


def reasons_of(assessment: Mapping[str, Any] | None) -> list[str]:
    """The reasons of a recorded assessment (``session.assessment`` or a saved session's)."""
    if not assessment:
        return []
    return [str(reason) for reason in assessment.get("reasons") or []]


def report_notes(assessment: Mapping[str, Any] | None, et_rule: str | None = None) -> list[str]:
    """The notes a report shows for a review: the ET-rule decision, then one
    ``Needs review: ...`` line per reason of its recorded assessment."""
    return ([et_rule] if et_rule else []) + [
        NEEDS_REVIEW_NOTE + reason for reason in reasons_of(assessment)
    ]


def et_rule_note(session: ReviewSession) -> str | None:
    """``"ET removed: no enhancement (...)"`` when the no-enhancement rule fired, else None."""
    evidence = getattr(session, "et_evidence", None)
    if evidence is None or not evidence.removed:
        return None
    return str(evidence.message(float(np.prod(session.case.spacing)) / 1000.0))


__all__ = [
    "NEEDS_REVIEW_NOTE",
    "assess_labels",
    "assess_session",
    "assessment_of",
    "et_rule_note",
    "prediction_reasons",
    "reasons_of",
    "report_notes",
]
