"""The Segment dock's background job: load the ticked checkpoints, run inference, assess.

Runs in a napari worker thread (:mod:`napari_brats._widgets.segment`); nothing here touches Qt.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any


class SegmentationFailed(Exception):
    """Inference failed with a RuntimeError (re-raised as this so the worker reports it)."""


def segment_job(
    case: Any,
    model_paths: list[Path],
    options: Any,
    stop: threading.Event,
):
    """Generator run in the worker thread: load checkpoints, then run inference with the
    ensemble's postprocessing (:func:`bratseg.zoo.ensemble_postprocess`, as ``predict`` does).

    Yields:
        :class:`bratseg.inference.Progress` items.

    Returns:
        ``(prediction, loaded_models, assessment)``: the needs-review assessment is computed here, off the GUI thread.

    Raises:
        bratseg.errors.Cancelled: ``stop`` was set during inference (reported via ``errored``).
        SegmentationFailed: Inference raised a RuntimeError.
    """
    from bratseg.checkpoint import load_checkpoint
    from bratseg.inference import Progress, run_inference

    models = []
    for index, path in enumerate(model_paths):
        yield Progress(0, 1, f"loading model {index + 1}/{len(model_paths)}: {Path(path).name}")
        models.append(load_checkpoint(path))
    from bratseg.zoo import verify_bundled

    verify_bundled(models)  # a bundled file must be the one its card describes
    if options.postprocess is None:
        from bratseg.zoo import ensemble_postprocess

        options.postprocess = ensemble_postprocess(models)
    try:
        prediction = yield from run_inference(case, models, options, should_stop=stop.is_set)
    except RuntimeError as exc:
        # e.g. a torch error: superqt's worker would swallow a RuntimeError without emitting
        # ``errored`` or ``finished``, so re-raise it as a plain Exception.
        raise SegmentationFailed(f"{type(exc).__name__}: {exc}") from exc
    from bratseg.review.session import assessment_of

    yield Progress(1, 1, "assessing where the proposal needs review")
    return prediction, models, assessment_of(prediction, case)
