"""A worklist: the cases of one folder, each with its review status, segmented in one batch.

:class:`Worklist` lists the case folders under a root folder (any naming :mod:`bratseg.io`
recognises: BraTS 2017-2021, 2023+, the export layout) with one :class:`WorklistRow` per case:
its review status (``new``, ``segmented``, ``edited``, ``approved``: from the saved review in
the :class:`~bratseg.review.store.SessionStore`, so it survives a restart), the models, the
hand-edited voxels, the automatic needs-review flag with its reasons and the WT/TC/ET volumes. A
folder that cannot be used as a case (a missing channel, a file that fails to load) keeps its
one-line error in its row; the other cases work as usual.

The batch work (:func:`segment_all`, :func:`export_approved`, re-exported here) lives in
:mod:`bratseg.review.batch`. The needs-review assessment comes from
:func:`bratseg.review.uncertainty.assess_case` when that module is available (its ``to_dict()`` is
stored under the optional ``assessment`` key of the saved session); without it the flag stays
empty.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bratseg.errors import BratsInputError
from bratseg.review.assessment import reasons_of
from bratseg.review.batch import (
    BatchEvent,
    approved_rows,
    existing_exports,
    export_approved,
    segment_all,
)
from bratseg.review.case_identity import case_key
from bratseg.review.session import ReviewSession
from bratseg.review.signoff import SignOff
from bratseg.review.store import SessionStore

if TYPE_CHECKING:
    from bratseg.io import Case

__all__ = [
    "ERROR_STATUS",
    "BatchEvent",
    "Worklist",
    "WorklistRow",
    "approved_rows",
    "existing_exports",
    "export_approved",
    "segment_all",
]

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
        key: The case's :func:`~bratseg.review.case_identity.case_key` (None when unusable).
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
        # a case lacking one series is listed and segmented with its stand-in (Case.substituted)
        for folder, error in scan_case_folders(self.root, allow_missing=True):
            row = WorklistRow(case_id=folder.name, folder=folder)
            if error is not None:
                row.status, row.error = ERROR_STATUS, error.reason
            else:
                try:
                    row.files = find_case_files(folder, seg=False, allow_missing=True)
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

    def load_case(self, index: int) -> Case:
        """The :class:`bratseg.io.Case` of row ``index`` (its error is recorded when it fails).

        Raises:
            BratsInputError: The case cannot be loaded (one line).
        """
        from bratseg.io import load_case

        row = self.rows[index]
        if row.key is None:
            raise BratsInputError(row.error or "not a usable case folder", row.folder)
        try:
            return load_case(row.folder, load_seg=False, allow_missing=True)
        except BratsInputError as exc:
            self.set_failure(
                index, exc.reason if exc.path is None else f"{exc.path.name}: {exc.reason}"
            )
            raise

    def session(self, index: int, case: Case | None = None) -> ReviewSession | None:
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
            raise BratsInputError(
                f"case {self.rows[index].case_id} has no review yet: segment it first"
            )
        entry = getattr(session, action)(reviewer, note)
        self.store.save(session, self.rows[index].key)
        self.refresh_row(index)
        return entry

    # ------------------------------------------------------------------ helpers
    def _key(self, files: dict[str, Path]) -> str:
        """:func:`case_key`, cached by the files' paths, sizes and modification times."""
        stamp = tuple(
            (str(p), p.stat().st_size, p.stat().st_mtime_ns) for p in files.values() if p.is_file()
        )
        if stamp not in self._keys:
            self._keys[stamp] = case_key(files)
        return self._keys[stamp]

    def _fill(self, row: WorklistRow) -> WorklistRow:
        """``row`` with the status, models, edits, flag and volumes of its saved review."""
        saved = self.store.get(row.key) if row.key else None
        failure = self._failures.get(row.folder)
        if saved is not None and saved.problem:  # damaged, or another case's: never shown
            failure = failure or f"saved review session is damaged: {saved.problem}"
            saved = None
        if saved is None:
            status = ERROR_STATUS if (row.key is None or failure) else "new"
            return dataclasses.replace(
                row,
                status=status,
                error=failure or (row.error if row.key is None else None),
                models=[],
                n_edited=0,
                needs_review=None,
                reasons=[],
                volumes_ml=None,
                approval=None,
            )
        self._failures.pop(row.folder, None)
        meta = saved.meta
        assessment = meta.get("assessment") or {}
        flag = assessment.get("needs_review")
        history = saved.signoffs
        return dataclasses.replace(
            row,
            status=saved.status,
            error=None,
            models=list((meta.get("model") or {}).get("names", [])),
            n_edited=saved.n_edited,
            needs_review=None if flag is None else bool(flag),
            reasons=reasons_of(assessment)
            + ([str(meta["et_rule"])] if meta.get("et_rule") else []),
            volumes_ml=meta.get("volumes_ml"),
            approval=history[-1] if saved.status == "approved" else None,
        )
