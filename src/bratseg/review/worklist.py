"""A worklist: the cases of one folder, each with its review status, segmented in one batch.

:class:`Worklist` lists the case folders under a root folder (any naming :mod:`bratseg.io`
recognises: BraTS 2017-2021, 2023+, the export layout) with one :class:`WorklistRow` per case:
its review status (``new``, ``segmented``, ``edited``, ``approved``: from the saved review in
the :class:`~bratseg.review.store.SessionStore`, so it survives a restart), the models, the
hand-edited voxels, the automatic needs-review flag with its reasons and the WT/TC/ET volumes. A
folder that cannot be used as a case (a missing channel, a file that fails to load) keeps its
one-line error in its row; the other cases work as usual.

Long work is a generator yielding :class:`BatchEvent` items, stoppable between steps:

- :func:`segment_all` runs the model(s) on every case still ``new`` (resumable: cases already
  segmented are skipped) and saves each result as a review session;
- :func:`export_approved` writes every approved case into a training dataset
  (:func:`bratseg.io.case_export.export_case`), which ``napari-brats train --data`` reads.

The needs-review assessment comes from :func:`bratseg.review.uncertainty.assess_case` when that
module is installed (its ``to_dict()`` is stored under the optional ``assessment`` key of the
saved session); without it the flag stays empty.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bratseg.errors import BratsInputError, Cancelled
from bratseg.review.session import ModelInfo, ReviewSession
from bratseg.review.signoff import SignOff
from bratseg.review.store import SessionStore, case_key

logger = logging.getLogger(__name__)

#: Status of a row whose folder cannot be used (its error says why).
ERROR_STATUS = "error"


@dataclass
class WorklistRow:
    """One case of a worklist (nothing large loaded).

    Attributes:
        case_id: The case's id (its folder name).
        folder: The case folder.
        files: Channel -> file (empty when the folder is not a usable case).
        key: The case's :func:`~bratseg.review.store.case_key` (None when unusable).
        status: ``new``, ``segmented``, ``edited``, ``approved`` or ``error``.
        models: Names of the models behind the saved proposal.
        n_edited: Hand-edited voxels.
        needs_review: The automatic flag (None: not assessed).
        reasons: Why it is flagged.
        volumes_ml: ``{"wt", "tc", "et", ...}`` -> mL of the working labels (None before a run).
        error: One line: why the case cannot be used or failed last time.
        approval: The sign-off in force for an approved case.
    """

    case_id: str
    folder: Path
    files: dict[str, Path] = field(default_factory=dict)
    key: str | None = None
    status: str = "new"
    models: list[str] = field(default_factory=list)
    n_edited: int = 0
    needs_review: bool | None = None
    reasons: list[str] = field(default_factory=list)
    volumes_ml: dict[str, float] | None = None
    error: str | None = None
    approval: SignOff | None = None

    @property
    def done(self) -> bool:
        """Segmented already (a batch skips it)."""
        return self.status not in ("new", ERROR_STATUS)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict."""
        out = dataclasses.asdict(self)
        out.update(folder=str(self.folder), files={k: str(v) for k, v in self.files.items()})
        return out


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


class Worklist:
    """The cases under ``root`` with their review status from ``store``.

    Args:
        root: A folder of case folders (or one case folder).
        store: Where the review sessions are saved (default: the user's).

    Raises:
        BratsInputError: ``root`` is missing or not a folder.
    """

    def __init__(self, root: str | Path, store: SessionStore | None = None) -> None:
        self.root = Path(root).expanduser()
        self.store = store if store is not None else SessionStore()
        self.rows: list[WorklistRow] = []
        self._keys: dict[tuple, str] = {}
        self._failures: dict[Path, str] = {}
        self.refresh()

    def refresh(self) -> list[WorklistRow]:
        """List the folder again and re-read every case's saved review."""
        from bratseg.io import find_case_files, scan_case_folders

        rows = []
        for folder, error in scan_case_folders(self.root):
            row = WorklistRow(case_id=folder.name, folder=folder)
            if error is not None:
                row.status, row.error = ERROR_STATUS, error.reason
            else:
                try:
                    row.files = find_case_files(folder, seg=False)
                    row.key = self._key(row.files)
                except (BratsInputError, OSError) as exc:
                    row.status, row.error = ERROR_STATUS, getattr(exc, "reason", None) or str(exc)
            rows.append(self._fill(row))
        self.rows = rows
        return rows

    def refresh_row(self, index: int) -> WorklistRow:
        """Re-read one row's saved review (after a save)."""
        self.rows[index] = self._fill(self.rows[index])
        return self.rows[index]

    def index_of(self, case_id: str) -> int:
        """Row index of ``case_id``.

        Raises:
            KeyError: No such case in the worklist.
        """
        for index, row in enumerate(self.rows):
            if row.case_id == case_id:
                return index
        raise KeyError(case_id)

    def step(self, index: int | None, offset: int) -> int | None:
        """The row ``offset`` rows after ``index`` (before it when negative), or None past the ends."""
        if not self.rows:
            return None
        target = (0 if offset > 0 else len(self.rows) - 1) if index is None else index + offset
        return target if 0 <= target < len(self.rows) else None

    def set_failure(self, index: int, message: str) -> None:
        """Record that the case of row ``index`` failed (kept until it succeeds)."""
        self._failures[self.rows[index].folder] = message
        self.refresh_row(index)

    def load_case(self, index: int) -> Any:
        """The :class:`bratseg.io.Case` of row ``index`` (its error is recorded when it fails).

        Raises:
            BratsInputError: The case cannot be loaded (one line).
        """
        from bratseg.io import load_case

        row = self.rows[index]
        if row.key is None:
            raise BratsInputError(row.error or "not a usable case folder", row.folder)
        try:
            return load_case(row.folder, load_seg=False)
        except BratsInputError as exc:
            self.set_failure(index, exc.reason if exc.path is None else f"{exc.path.name}: {exc.reason}")
            raise

    def session(self, index: int, case: Any = None) -> ReviewSession | None:
        """The saved review of row ``index`` restored on ``case`` (loaded when None), or None."""
        row = self.rows[index]
        saved = self.store.get(row.key) if row.key else None
        if saved is None:
            return None
        return self.store.restore(saved, case if case is not None else self.load_case(index))

    def approve(self, index: int, reviewer: str | None = None, note: str = "") -> SignOff:
        """Approve the saved review of row ``index`` (see :meth:`ReviewSession.approve`).

        Raises:
            BratsInputError: The case has no saved review, or it is already approved.
        """
        return self._sign(index, "approve", reviewer, note)

    def reopen(self, index: int, reviewer: str | None = None, note: str = "") -> SignOff:
        """Reopen the approved review of row ``index`` (see :meth:`ReviewSession.reopen`)."""
        return self._sign(index, "reopen", reviewer, note)

    def _sign(self, index: int, action: str, reviewer: str | None, note: str) -> SignOff:
        session = self.session(index)
        if session is None:
            raise BratsInputError(f"case {self.rows[index].case_id} has no review yet: segment it first")
        entry = getattr(session, action)(reviewer, note)
        self.store.save(session, self.rows[index].key)
        self.refresh_row(index)
        return entry

    # ------------------------------------------------------------------ helpers
    def _key(self, files: dict[str, Path]) -> str:
        """:func:`case_key`, cached by the files' paths, sizes and modification times."""
        stamp = tuple((str(p), p.stat().st_size, p.stat().st_mtime_ns) for p in files.values() if p.is_file())
        if stamp not in self._keys:
            self._keys[stamp] = case_key(files)
        return self._keys[stamp]

    def _fill(self, row: WorklistRow) -> WorklistRow:
        """``row`` with the status, models, edits, flag and volumes of its saved review."""
        saved = self.store.get(row.key) if row.key else None
        failure = self._failures.get(row.folder)
        if saved is None:
            status = ERROR_STATUS if (row.key is None or failure) else "new"
            return dataclasses.replace(row, status=status, error=failure or (row.error if row.key is None else None),
                                       models=[], n_edited=0, needs_review=None, reasons=[], volumes_ml=None,
                                       approval=None)
        self._failures.pop(row.folder, None)
        meta = saved.meta
        assessment = meta.get("assessment") or {}
        flag = assessment.get("needs_review")
        history = saved.signoffs
        return dataclasses.replace(
            row, status=saved.status, error=None, models=list((meta.get("model") or {}).get("names", [])),
            n_edited=saved.n_edited, needs_review=None if flag is None else bool(flag),
            reasons=[str(r) for r in assessment.get("reasons") or []], volumes_ml=meta.get("volumes_ml"),
            approval=history[-1] if saved.status == "approved" else None,
        )


def assess_prediction(prediction: Any, case: Any) -> dict[str, Any] | None:
    """The needs-review assessment of a model run as a dict, or None when unavailable.

    Uses :func:`bratseg.review.uncertainty.assess_case` when that module exists; a failure of
    the assessment is logged and leaves the flag empty (it never stops a batch).
    """
    try:
        from bratseg.review.uncertainty import assess_case
    except ImportError:
        return None
    try:
        return assess_case(prediction.region_probs, prediction.labels, tuple(case.spacing),
                           str(prediction.convention)).to_dict()
    except Exception as exc:  # noqa: BLE001 (the flag is advisory: log and go on)
        logger.warning("needs-review assessment of %s failed: %s", case.case_id, exc)
        return None


def segment_all(
    worklist: Worklist,
    model_paths: Sequence[str | Path],
    options: Any = None,
    should_stop: Callable[[], bool] | None = None,
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

    Yields:
        :class:`BatchEvent` items; a stop yields ``cancelled`` and ends the batch (the case
        being segmented stays ``new``).

    Returns:
        ``{"done": [...], "skipped": [...], "failed": [...]}`` case ids.

    Raises:
        BratsInputError: No model given, or a checkpoint cannot be loaded.
    """
    from bratseg.checkpoint import load_checkpoint
    from bratseg.inference import InferenceOptions, run_inference
    from bratseg.io import load_case
    from bratseg.zoo import default_postprocess, is_default_ensemble

    stop = should_stop or (lambda: False)
    paths = [Path(p) for p in model_paths]
    if not paths:
        raise BratsInputError("no model given: pick at least one model (several = ensemble)")
    options = dataclasses.replace(options) if options is not None else InferenceOptions()
    models = [load_checkpoint(p) for p in paths]
    if options.postprocess is None and is_default_ensemble(paths):
        options.postprocess = default_postprocess(models[0])
    result: dict[str, list[str]] = {"done": [], "skipped": [], "failed": []}
    total = len(worklist.rows)
    for index in range(total):
        row = worklist.rows[index]
        if stop():
            yield BatchEvent("cancelled", index, total, row.case_id, "stopped before " + row.case_id)
            return result
        if row.key is None or row.done:
            result["skipped"].append(row.case_id)
            yield BatchEvent("skipped", index, total, row.case_id, f"{row.case_id}: {row.error or row.status}")
            continue
        yield BatchEvent("case", index, total, row.case_id, f"case {index + 1}/{total}: {row.case_id}")
        try:
            case = load_case(row.folder, load_seg=False)
            run = run_inference(case, models, options, should_stop=stop)
            while True:
                try:
                    progress = next(run)
                except StopIteration as finished:
                    prediction = finished.value
                    break
                yield BatchEvent("progress", index, total, row.case_id, f"{row.case_id}: {progress.message}",
                                 progress.step, progress.total)
        except Cancelled:
            yield BatchEvent("cancelled", index, total, row.case_id, f"stopped during {row.case_id} (still new)")
            return result
        except (BratsInputError, RuntimeError, OSError) as exc:
            message = getattr(exc, "reason", None) if isinstance(exc, BratsInputError) else None
            path = getattr(exc, "path", None)
            message = f"{path.name}: {message}" if message and path is not None else (message or f"{type(exc).__name__}: {exc}")
            worklist.set_failure(index, message)
            result["failed"].append(row.case_id)
            yield BatchEvent("failed", index, total, row.case_id, f"{row.case_id}: {message}")
            continue
        session = ReviewSession.from_prediction(case, prediction, ModelInfo.from_run(models, paths, prediction,
                                                                                      options.tta))
        assessment = assess_prediction(prediction, case)
        worklist.store.save(session, row.key, extra={"assessment": assessment} if assessment is not None else None)
        worklist.refresh_row(index)
        result["done"].append(row.case_id)
        yield BatchEvent("done", index, total, row.case_id, f"{row.case_id} segmented in {prediction.seconds:.1f} s")
    yield BatchEvent("finished", -1, total, "", f"{len(result['done'])} segmented, {len(result['skipped'])} "
                     f"skipped, {len(result['failed'])} failed")
    return result


def approved_rows(worklist: Worklist) -> list[int]:
    """Indices of the approved cases."""
    return [i for i, row in enumerate(worklist.rows) if row.status == "approved"]


def existing_exports(worklist: Worklist, dataset_dir: str | Path) -> list[str]:
    """Approved case ids that already have a folder in ``dataset_dir`` (export would replace them)."""
    dataset = Path(dataset_dir)
    return [worklist.rows[i].case_id for i in approved_rows(worklist) if (dataset / worklist.rows[i].case_id).exists()]


def export_approved(
    worklist: Worklist,
    dataset_dir: str | Path,
    *,
    convention: str = "2021",
    link: str = "copy",
    overwrite: bool = False,
    should_stop: Callable[[], bool] | None = None,
) -> Generator[BatchEvent, None, list[Path]]:
    """Export every approved case into ``dataset_dir`` (the layout the trainer reads).

    Each case folder gets its images, the approved labels as ``<case>_seg``, the AI proposal and
    the provenance JSON with the approval and sign-off history (see
    :mod:`bratseg.io.case_export`). An existing export of a case is replaced only with
    ``overwrite``; otherwise it is kept and reported as ``failed``.

    Yields:
        :class:`BatchEvent` items (``case``, ``done``, ``failed``, ``cancelled``, ``finished``).

    Returns:
        The case folders written.
    """
    from bratseg.io.case_export import ExportExistsError, export_case

    stop = should_stop or (lambda: False)
    written: list[Path] = []
    indices = approved_rows(worklist)
    total = len(worklist.rows)
    for index in indices:
        row = worklist.rows[index]
        if stop():
            yield BatchEvent("cancelled", index, total, row.case_id, "export stopped before " + row.case_id)
            return written
        yield BatchEvent("case", index, total, row.case_id, f"exporting {row.case_id}")
        try:
            session = worklist.session(index)
            path = export_case(session, dataset_dir, convention=convention, link=link, overwrite=overwrite)  # type: ignore[arg-type]
        except ExportExistsError:
            yield BatchEvent("failed", index, total, row.case_id, f"{row.case_id}: already in {dataset_dir} (kept)")
            continue
        except BratsInputError as exc:
            yield BatchEvent("failed", index, total, row.case_id, f"{row.case_id}: {exc}")
            continue
        worklist.store.mark_exported(row.key, path)  # type: ignore[arg-type]
        written.append(path)
        yield BatchEvent("done", index, total, row.case_id, f"{row.case_id} exported to {path}")
    yield BatchEvent("finished", -1, total, "", f"{len(written)} of {len(indices)} approved cases exported "
                     f"to {dataset_dir}")
    return written
