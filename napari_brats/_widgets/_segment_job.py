"""The Segment dock's background job: predict with the dock's predictor, then assess.

Runs in a napari worker thread (:mod:`napari_brats._widgets.segment`); nothing here touches Qt.
"""

from __future__ import annotations

import threading
from collections.abc import Generator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bratseg.checkpoint import LoadedModel
    from bratseg.inference import Prediction, Progress
    from bratseg.io import Case
    from bratseg.predictor import Predictor

#: What the job returns: the prediction, the networks it ran, and the needs-review assessment.
SegmentResult = tuple["Prediction", "list[LoadedModel]", "dict[str, Any] | None"]


class SegmentationFailed(Exception):
    """Inference failed with a RuntimeError (re-raised as this so the worker reports it)."""


def segment_job(
    case: Case, predictor: Predictor, stop: threading.Event
) -> Generator[Progress, None, SegmentResult]:
    """Generator run in the worker thread: :meth:`bratseg.predictor.Predictor.run` (loads the
    checkpoints not cached yet, the ensemble's postprocessing as ``predict`` uses), then the
    needs-review assessment.

    Yields:
        :class:`bratseg.inference.Progress` items.

    Returns:
        ``(prediction, loaded_models, assessment)``: the needs-review assessment is computed here, off the GUI thread.

    Raises:
        bratseg.errors.Cancelled: ``stop`` was set during inference (reported via ``errored``).
        SegmentationFailed: Inference raised a RuntimeError.
    """
    from bratseg.inference import Progress

    try:
        prediction = yield from predictor.run(case, should_stop=stop.is_set)
    except RuntimeError as exc:
        # e.g. a torch error: superqt's worker would swallow a RuntimeError without emitting
        # ``errored`` or ``finished``, so re-raise it as a plain Exception.
        raise SegmentationFailed(f"{type(exc).__name__}: {exc}") from exc
    from bratseg.review.assessment import assessment_of

    yield Progress(1, 1, "assessing where the proposal needs review")
    return prediction, predictor.models, assessment_of(prediction, case)
