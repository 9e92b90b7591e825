"""Cohort prediction: a folder of cases sharded over processes, resumable, with a record per case.

``torchrun --nproc_per_node N -m bratseg.cli.main predict DATASET_DIR -o OUT_DIR`` (or one process,
or one SLURM task per shard) runs :func:`run_cohort` in every process:

* **Sharding.** ``RANK`` and ``WORLD_SIZE`` (set by ``torchrun``, or by hand) split the sorted case
  list: process ``r`` takes cases ``r, r + N, r + 2N, ...``. Every process computes the same list,
  so each case belongs to exactly one process; no process group is needed. On CUDA each process
  takes the GPU of its ``LOCAL_RANK``. The shard itself (:class:`Shard`, read from the
  environment) lives in :mod:`bratseg.review.cohort_shard`.
* **Resume.** After a case's outputs are written, its record ``OUT_DIR/.cohort/<case>.json`` stores
  each output's sha256 and size and the settings used. A later run skips a case whose outputs
  still match its record (:func:`verify_case`) and redoes the others. A case done with other
  settings stops the run (:class:`BratsInputError`) unless ``overwrite``.
* **Results.** Every finished (or failed) case appends one JSON line to ``OUT_DIR/cases.jsonl``
  (one ``write`` on an ``O_APPEND`` descriptor, so lines of several processes never interleave).
  When a process has finished its share it merges, under a file lock, all records into
  ``OUT_DIR/summary.csv`` (:func:`merge_summary`): the last process to finish writes the complete
  table, and a resumed run rewrites it. The merge also adds the line of a case whose process was
  killed between its record and its line.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import logging
import os
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from bratseg.atomic import atomic_write
from bratseg.errors import BratsInputError
from bratseg.labels import region_masks
from bratseg.review.assessment import prediction_reasons
from bratseg.review.cohort_shard import Shard, shard_from_env

if TYPE_CHECKING:
    from bratseg.inference import Prediction
    from bratseg.io import Case

logger = logging.getLogger(__name__)

#: Folder of per-case records inside the output folder.
RECORDS_DIR = ".cohort"
#: One JSON line per finished or failed case.
LINES_NAME = "cases.jsonl"
#: The table of all recorded cases, rewritten by every merge.
SUMMARY_NAME = "summary.csv"
#: Lock file (in the records folder) of the record + line pairs and of the merge.
LOCK_NAME = "merge.lock"
#: Bumped when a record's meaning changes (older records are then redone).
RECORD_VERSION = 1
#: Columns of ``summary.csv``.
SUMMARY_COLUMNS = (
    "case",
    "status",
    "output",
    "wt_ml",
    "tc_ml",
    "et_ml",
    "needs_review",
    "reasons",
    "et_rule",
    "seconds",
    "device",
    "rank",
    "error",
)
_CHUNK = 1 << 20


def file_digest(path: Path) -> tuple[str, int]:
    """(sha256 hex digest, size in bytes) of a file."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest(), path.stat().st_size


def record_path(out_dir: Path, case_id: str) -> Path:
    """Where the record of ``case_id`` lives."""
    return out_dir / RECORDS_DIR / f"{case_id}.json"


def read_record(out_dir: Path, case_id: str) -> dict[str, Any] | None:
    """The record of ``case_id``; ``None`` when absent or unreadable (then the case is redone)."""
    path = record_path(out_dir, case_id)
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def verify_case(
    out_dir: Path, case_id: str, settings: Mapping[str, Any], overwrite: bool = False
) -> bool:
    """True when ``case_id`` is done: its record says so and every output it lists still has
    the recorded sha256 and size. A missing, partial or changed output means it is redone.

    Raises:
        BratsInputError: The case was done with other ``settings`` (models, options) and
            ``overwrite`` is false: its outputs would otherwise be mixed with new ones.
    """
    record = read_record(out_dir, case_id)
    if record is None or record.get("version") != RECORD_VERSION or record.get("status") != "done":
        return False
    if record.get("settings") != json.loads(json.dumps(dict(settings))):
        if overwrite:
            return False
        raise BratsInputError(
            f"case {case_id} was predicted with other settings (models or options); use "
            "--overwrite to redo it, or another output folder",
            out_dir,
        )
    for item in record.get("files", []):
        path = out_dir / str(item.get("path", ""))
        if not path.is_file() or path.stat().st_size != item.get("size"):
            return False
        if file_digest(path)[0] != item.get("sha256"):
            logger.warning("%s does not match its record: redoing %s", path, case_id)
            return False
    return bool(record.get("files"))


def case_result(
    case: Case,
    prediction: Prediction,
    outputs: Sequence[Path],
    out_dir: Path,
    shard: Shard,
    seconds: float,
) -> dict[str, Any]:
    """The line of a finished case: outputs (path from ``out_dir``, sha256, size), WT/TC/ET volumes in mL, the
    needs-review reasons the viewer gives (:func:`bratseg.review.assessment.prediction_reasons`),
    the ET-rule note, seconds, device and rank."""
    voxel_ml = float(np.prod(case.spacing)) / 1000.0
    masks = region_masks(prediction.labels, prediction.convention)
    reasons = prediction_reasons(prediction, case)
    evidence = getattr(prediction, "et_evidence", None)
    files = []
    for path in outputs:
        sha, size = file_digest(path)
        files.append({"path": os.path.relpath(path, out_dir), "sha256": sha, "size": size})
    return {
        "case": case.case_id,
        "status": "done",
        "output": outputs[0].name,
        "files": files,
        "volumes_ml": {r: round(float(masks[r].sum()) * voxel_ml, 3) for r in ("wt", "tc", "et")},
        "needs_review": bool(reasons),
        "reasons": reasons,
        "et_rule": evidence.message(voxel_ml) if evidence is not None and evidence.removed else "",
        "seconds": round(seconds, 2),
        "device": str(prediction.device),
        "rank": shard.rank,
        "world_size": shard.world_size,
    }


def append_line(path: Path, record: Mapping[str, Any]) -> None:
    """Append ``record`` as one JSON line with a single ``write`` (``O_APPEND``): concurrent
    writers' lines never interleave."""
    data = (json.dumps(record, sort_keys=True) + "\n").encode("utf-8")
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        written = os.write(fd, data)
        if written != len(data):  # pragma: no cover - a full disk
            raise OSError(f"short write to {path}: {written} of {len(data)} bytes")
    finally:
        os.close(fd)


def _settings(settings: Mapping[str, Any]) -> dict[str, Any]:
    return {"settings": json.loads(json.dumps(dict(settings)))}


def unrecorded_outputs(out_dir: Path, targets: Mapping[str, Sequence[Path]]) -> list[Path]:
    """Existing files among ``targets`` (case id -> its output paths) of cases without a record:
    files this command did not write, which it must not replace without ``--overwrite``."""
    return [
        path
        for case_id, paths in targets.items()
        for path in paths
        if path.exists() and read_record(out_dir, case_id) is None
    ]


def _write_record(out_dir: Path, record: Mapping[str, Any]) -> None:
    path = record_path(out_dir, str(record["case"]))
    with atomic_write(path) as fh:
        fh.write(json.dumps(record, indent=1, sort_keys=True).encode("utf-8"))


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    """An exclusive ``flock`` on ``path`` for the block (no lock where ``fcntl`` is missing)."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows: one process there
        yield
        return
    with open(path, "a+b") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def _summary_row(record: Mapping[str, Any]) -> dict[str, Any]:
    vols = record.get("volumes_ml") or {}
    row = {col: record.get(col, "") for col in SUMMARY_COLUMNS}
    row.update({f"{r}_ml": vols.get(r, "") for r in ("wt", "tc", "et")})
    row["reasons"] = " ".join(record.get("reasons") or [])
    return row


def _line_of(record: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in record.items() if k not in ("version", "settings")}


def _log_unlogged(out_dir: Path, records: Mapping[str, dict[str, Any] | None]) -> None:
    """Append the line of every finished record whose last line in ``cases.jsonl`` differs
    (a process killed between its record and its line). Call under the lock."""
    last: dict[str, dict[str, Any]] = {}
    path = out_dir / LINES_NAME
    if path.exists():
        for text in path.read_text(encoding="utf-8").splitlines():
            try:
                line = json.loads(text)
            except ValueError:
                continue
            if isinstance(line, dict) and "case" in line:
                last[str(line["case"])] = line
    for case_id, record in records.items():
        if record is None or record.get("status") not in ("done", "failed"):
            continue
        line = _line_of(record)
        if last.get(case_id) != line:
            logger.warning("%s: the line of %s was missing; added", path, case_id)
            append_line(path, line)


def merge_summary(out_dir: Path, case_ids: Sequence[str]) -> tuple[int, list[str]]:
    """Write ``summary.csv`` from the records of ``case_ids`` (under a lock, atomically).

    Returns:
        (cases done, cases without a finished record yet: other processes still running,
        failed or interrupted).
    """
    records_dir = out_dir / RECORDS_DIR
    records_dir.mkdir(parents=True, exist_ok=True)
    with _locked(records_dir / LOCK_NAME):
        records = {c: read_record(out_dir, c) for c in sorted(case_ids)}
        _log_unlogged(out_dir, records)
        text = io.StringIO()
        writer = csv.DictWriter(text, fieldnames=SUMMARY_COLUMNS, lineterminator="\n")
        writer.writeheader()
        for record in records.values():
            if record is not None:
                writer.writerow(_summary_row(record))
        with atomic_write(out_dir / SUMMARY_NAME) as fh:
            fh.write(text.getvalue().encode("utf-8"))
    missing = [c for c, r in records.items() if r is None or r.get("status") != "done"]
    return len(records) - len(missing), missing


#: Predicts one case folder and writes its outputs: returns (case, prediction, written paths).
PredictCase = Callable[[Path], tuple[Any, Any, list[Path]]]


def run_cohort(
    folders: Sequence[Path],
    out_dir: Path,
    predict_case: PredictCase,
    settings: Mapping[str, Any],
    shard: Shard | None = None,
    *,
    overwrite: bool = False,
    report: Callable[[Mapping[str, Any]], None] | None = None,
) -> tuple[int, int, list[str]]:
    """Predict this process's share of ``folders`` into ``out_dir``, skipping verified cases.

    Args:
        folders: All case folders of the dataset (every process passes the same list).
        out_dir: Output folder (created).
        predict_case: Predicts and writes one case (:data:`PredictCase`); a
            :class:`BratsInputError` marks the case failed and the run goes on.
        settings: What makes outputs comparable (models, options): JSON-serialisable.
        shard: This process's place (default :func:`shard_from_env`).
        overwrite: Redo cases done before, whatever their records say.
        report: Called with each finished or failed case's line (e.g. to print it).

    Returns:
        (cases predicted now, cases failed now, cases of the whole dataset not yet done).
    """
    shard = shard or shard_from_env()
    out_dir.mkdir(exist_ok=True)
    (out_dir / RECORDS_DIR).mkdir(exist_ok=True)
    mine = shard.cases(folders)
    todo = [f for f in mine if overwrite or not verify_case(out_dir, f.name, settings)]
    logger.info(
        "rank %d/%d: %d of %d case(s) to do, %d already done",
        shard.rank,
        shard.world_size,
        len(todo),
        len(folders),
        len(mine) - len(todo),
    )
    done = failed = 0
    for folder in todo:
        start = time.perf_counter()
        # "started" before any output: an output without a record is someone else's file
        _write_record(
            out_dir,
            {
                "case": folder.name,
                "status": "started",
                "version": RECORD_VERSION,
                **_settings(settings),
            },
        )
        try:
            case, prediction, outputs = predict_case(folder)
        except BratsInputError as exc:
            failed += 1
            line: dict[str, Any] = {
                "case": folder.name,
                "status": "failed",
                "error": " ".join(str(exc).split()),
                "rank": shard.rank,
                "world_size": shard.world_size,
            }
        else:
            done += 1
            line = case_result(
                case, prediction, outputs, out_dir, shard, time.perf_counter() - start
            )
        with _locked(out_dir / RECORDS_DIR / LOCK_NAME):  # the merge sees both or neither
            _write_record(out_dir, {**line, "version": RECORD_VERSION, **_settings(settings)})
            append_line(out_dir / LINES_NAME, line)
        if report is not None:
            report(line)
    _, missing = merge_summary(out_dir, [f.name for f in folders])
    return done, failed, missing


__all__ = [
    "LINES_NAME",
    "RECORDS_DIR",
    "SUMMARY_NAME",
    "PredictCase",
    "append_line",
    "case_result",
    "file_digest",
    "merge_summary",
    "read_record",
    "run_cohort",
    "unrecorded_outputs",
    "verify_case",
]
