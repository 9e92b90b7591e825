"""Batch work over a :class:`~bratseg.review.worklist.Worklist`: segment all, export the approved.

Both are generators yielding :class:`BatchEvent` items, stoppable between steps: the Worklist dock
drives them with napari's ``thread_worker``, ``napari-brats worklist`` with a progress bar, the
tests directly.

- :func:`segment_all` runs the model(s) on every case still ``new`` (resumable: cases already
  segmented are skipped) and saves each result as a review session, with the needs-review
  assessment of :func:`bratseg.review.uncertainty.assess_case` when that module is available;
- :func:`export_approved` writes every approved case into a training dataset
  (:func:`bratseg.review.export.export_case`), which ``napari-brats train --data`` reads.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from bratseg.errors import BratsInputError, Cancelled
from bratseg.review.model_info import ModelInfo
from bratseg.review.session import ReviewSession

if TYPE_CHECKING:
    from bratseg.inference import InferenceOptions
    from bratseg.io.dataset import LinkMode
    from bratseg.predictor import ModelCache
    from bratseg.review.worklist import Worklist

logger = logging.getLogger(__name__)


@dataclass
class BatchEvent:
    """Progress of a batch.

    Attributes:
        kind: ``"case"`` (a case starts), ``"progress"`` (a step inside it), ``"done"``,
            ``"skipped"``, ``"failed"`` (its row holds the error), ``"cancelled"``, ``"finished"``.
        index: Row index of the case (-1 for ``finished``).
        total: Rows in the worklist.
        case_id: The case concerned.
        message: What happens, one line.
        step: Step inside the case (``progress`` only).
        steps: Steps inside the case.
    """

    kind: str
    index: int
    total: int
    case_id: str = ""
    message: str = ""
    step: int = 0
    steps: int = 0


def segment_all(
    worklist: Worklist,
    model_paths: Sequence[str | Path],
    options: InferenceOptions | None = None,
    should_stop: Callable[[], bool] | None = None,
    cache: ModelCache | None = None,
) -> Generator[BatchEvent, None, dict[str, list[str]]]:
    """Segment every ``new`` case of ``worklist`` and save each result as a review session.

    Cases already segmented (any status but ``new``) and unusable folders are skipped, so a
    stopped batch resumes where it stopped. A case that fails to load or to run gets its error
    in its row and the batch goes on.

    Args:
        worklist: The cases.
        model_paths: Checkpoint files (several = ensemble); the bundled default ensemble gets its
            own postprocessing as in ``predict``.
        options: :class:`bratseg.inference.InferenceOptions` (defaults when None).
        should_stop: Polled between cases and between inference steps.
        cache: Loaded checkpoints to reuse (:class:`bratseg.predictor.ModelCache`).

    Yields:
        :class:`BatchEvent` items; a stop yields ``cancelled`` and ends the batch (the case
        being segmented stays ``new``).

    Returns:
        ``{"done": [...], "skipped": [...], "failed": [...]}`` case ids.

    Raises:
        BratsInputError: No model given, or a checkpoint cannot be loaded.
    """
    from bratseg.io import load_case
    from bratseg.io.readiness import require_ready
    from bratseg.predictor import Predictor

    stop = should_stop or (lambda: False)
    predictor = Predictor(model_paths, options, cache=cache)
    models = predictor.models  # loaded before the first case: a bad checkpoint stops the batch
    predictor.postprocess_config()
    result: dict[str, list[str]] = {"done": [], "skipped": [], "failed": []}
    total = len(worklist.rows)
    for index in range(total):
        row = worklist.rows[index]
        if stop():
            yield BatchEvent(
                "cancelled", index, total, row.case_id, "stopped before " + row.case_id
            )
            return result
        if row.key is None or row.done:
            result["skipped"].append(row.case_id)
            yield BatchEvent(
                "skipped", index, total, row.case_id, f"{row.case_id}: {row.error or row.status}"
            )
            continue
        yield BatchEvent(
            "case", index, total, row.case_id, f"case {index + 1}/{total}: {row.case_id}"
        )
        try:
            case = load_case(row.folder, load_seg=False, allow_missing=True)
            require_ready(case.findings, row.folder)  # raw scans: the row says so, with the way out
            run = predictor.run(case, should_stop=stop)
            while True:
                try:
                    progress = next(run)
                except StopIteration as finished:
                    prediction = finished.value
                    break
                yield BatchEvent(
                    "progress",
                    index,
                    total,
                    row.case_id,
                    f"{row.case_id}: {progress.message}",
                    progress.step,
                    progress.total,
                )
        except Cancelled:
            yield BatchEvent(
                "cancelled", index, total, row.case_id, f"stopped during {row.case_id} (still new)"
            )
            return result
        except (BratsInputError, RuntimeError, OSError) as exc:
            message = getattr(exc, "reason", None) if isinstance(exc, BratsInputError) else None
            path = getattr(exc, "path", None)
            message = (
                f"{path.name}: {message}"
                if message and path is not None
                else (message or f"{type(exc).__name__}: {exc}")
            )
            worklist.set_failure(index, message)
            result["failed"].append(row.case_id)
            yield BatchEvent("failed", index, total, row.case_id, f"{row.case_id}: {message}")
            continue
        session = ReviewSession.from_prediction(
            case,
            prediction,
            ModelInfo.from_run(models, predictor.paths, prediction, predictor.options.tta),
        )
        worklist.store.save(session, row.key)  # with its needs-review assessment
        worklist.refresh_row(index)
        result["done"].append(row.case_id)
        yield BatchEvent(
            "done",
            index,
            total,
            row.case_id,
            f"{row.case_id} segmented in {prediction.seconds:.1f} s",
        )
    yield BatchEvent(
        "finished",
        -1,
        total,
        "",
        f"{len(result['done'])} segmented, {len(result['skipped'])} "
        f"skipped, {len(result['failed'])} failed",
    )
    return result


def approved_rows(worklist: Worklist) -> list[int]:
    """Indices of the approved cases."""
    return [i for i, row in enumerate(worklist.rows) if row.status == "approved"]


def existing_exports(worklist: Worklist, dataset_dir: str | Path) -> list[str]:
    """Approved case ids that already have a folder in ``dataset_dir`` (export would replace them)."""
    dataset = Path(dataset_dir)
    return [
        worklist.rows[i].case_id
        for i in approved_rows(worklist)
        if (dataset / worklist.rows[i].case_id).exists()
    ]


def export_approved(
    worklist: Worklist,
    dataset_dir: str | Path,
    *,
    convention: str = "2021",
    link: LinkMode = "copy",
    overwrite: bool = False,
    should_stop: Callable[[], bool] | None = None,
    dicom: bool = False,
) -> Generator[BatchEvent, None, list[Path]]:
    """Export every approved case into ``dataset_dir`` (the layout the trainer reads).

    With ``dicom`` each case is written as DICOM instead (SEG, RTSTRUCT, burned-in overlay and
    summary: :func:`bratseg.review.export.export_session_dicom`) into ``<case>_dicom``.

    Each case folder gets its images, the approved labels as ``<case>_seg``, the AI proposal and
    the provenance JSON with the approval and sign-off history (see
    :mod:`bratseg.review.export`). An existing export of a case is replaced only with
    ``overwrite``; otherwise it is kept and reported as ``failed``.

    Yields:
        :class:`BatchEvent` items (``case``, ``done``, ``failed``, ``cancelled``, ``finished``).

    Returns:
        The case folders written.
    """
    from bratseg.io.dataset import ExportExistsError
    from bratseg.review.export import export_case

    stop = should_stop or (lambda: False)
    written: list[Path] = []
    indices = approved_rows(worklist)
    total = len(worklist.rows)
    for index in indices:
        row = worklist.rows[index]
        if stop():
            yield BatchEvent(
                "cancelled", index, total, row.case_id, "export stopped before " + row.case_id
            )
            return written
        yield BatchEvent("case", index, total, row.case_id, f"exporting {row.case_id}")
        try:
            session = worklist.session(index)
            if session is None:  # its saved review went away since the worklist was read
                raise BratsInputError(f"case {row.case_id} has no saved review")
            if dicom:
                from bratseg.report.dicom import dicom_folder_name
                from bratseg.review.export import export_session_dicom

                target = Path(dataset_dir) / dicom_folder_name(row.case_id)
                path = export_session_dicom(session, target, overwrite=overwrite).folder
            else:
                path = export_case(
                    session, dataset_dir, convention=convention, link=link, overwrite=overwrite
                )
        except ExportExistsError:
            yield BatchEvent(
                "failed",
                index,
                total,
                row.case_id,
                f"{row.case_id}: already in {dataset_dir} (kept)",
            )
            continue
        except BratsInputError as exc:
            yield BatchEvent("failed", index, total, row.case_id, f"{row.case_id}: {exc}")
            continue
        worklist.store.mark_exported(row.key, path, session.saved_version)  # type: ignore[arg-type]
        written.append(path)
        yield BatchEvent("done", index, total, row.case_id, f"{row.case_id} exported to {path}")
    yield BatchEvent(
        "finished",
        -1,
        total,
        "",
        f"{len(written)} of {len(indices)} approved cases exported to {dataset_dir}",
    )
    return written
