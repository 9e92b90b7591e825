"""Autosaved review sessions: a clinician's edits survive a crash, a closed viewer, a new case.

Each case has a folder ``$BRATSEG_HOME/sessions/<key>/`` where ``key`` is a hash of the case's
four image files (their bytes, not their path: a moved or renamed folder is the same case;
:func:`bratseg.review.case_identity.case_key`):

- ``proposal-<sha>.npz``: the AI proposal (uint8, compressed), content-addressed, so it is
  written only when the model run or the postprocessing settings change it;
- ``edits-<n>.npz``: the hand-edited voxels (flat indices, their labels) - small, so saving
  after every brush stroke is cheap;
- ``session.json``: what the rest means (case id, folder, files, geometry, convention, model
  names and sha256, postprocessing settings, edited-voxel counts, tumour volumes, review status,
  sign-off history, last change, exported or not) and which proposal and edits files are current.
  Optional keys (absent in older saves, read with defaults): ``signoffs`` (the sign-off
  history, :mod:`bratseg.review.signoff`), ``status``, ``volumes_ml`` and ``assessment`` (the
  automatic needs-review assessment of the model run, kept while the proposal is unchanged).

Every file is written atomically (:func:`bratseg.atomic.atomic_write`) and ``session.json`` last:
it is the commit point. A crash at any moment leaves the previous complete session (older files
are removed only after the new ``session.json`` is in place).

Because outside the edits the working labels equal the proposal (see
:class:`bratseg.review.session.ReviewSession`), proposal + edits restore them exactly.

Nothing read back is trusted (:mod:`bratseg.review.saved_check`): a damaged session, or one copied
under another case's key, is listed as damaged with one line saying why and is never restored or
exported. Saves of one case are serialised by a lock and carry a save id; a session that another
writer saved over since it was loaded is refused (:mod:`bratseg.review.concurrency`), never
silently merged away.
"""

from __future__ import annotations

import base64
import datetime as _dt
import hashlib
import io
import json
import logging
import secrets
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import nibabel as nib
import numpy as np

from bratseg.atomic import atomic_write
from bratseg.errors import BratsInputError
from bratseg.review.case_identity import case_key
from bratseg.review.concurrency import case_lock, generation_of, lock_path, refuse_stale
from bratseg.review.model_info import ModelInfo
from bratseg.review.saved_check import SavedSession, check_painted, read_arrays, read_saved
from bratseg.review.session import ReviewSession
from bratseg.review.signoff import status_of
from bratseg.user_folders import sessions_dir

if TYPE_CHECKING:
    from bratseg.io import Case

logger = logging.getLogger(__name__)

#: Bumped when the saved layout changes meaning.
STORE_VERSION = 1
#: Fields of a previous save carried over while the labels stay as exported.
_KEPT_WHEN_EXPORTED = ("exported_to", "exported_at")
#: Fields of a previous save carried over while the AI proposal stays the same.
_KEPT_WITH_PROPOSAL = ("assessment",)


def _et_rule(session: ReviewSession) -> dict[str, str]:
    """``{"et_rule": "ET removed: no enhancement (...)"}`` when the rule fired, else ``{}``: the
    worklist shows it beside the needs-review reasons."""
    from bratseg.review.assessment import et_rule_note

    note = et_rule_note(session)
    return {"et_rule": note} if note else {}


class SessionStore:
    """The saved review sessions in one folder (default :func:`sessions_dir`)."""

    def __init__(self, root: str | Path | None = None) -> None:
        self.root = Path(root) if root is not None else sessions_dir()

    # ------------------------------------------------------------------ write
    def save(
        self,
        session: ReviewSession,
        key: str | None = None,
        *,
        exported: bool | None = None,
        extra: dict[str, Any] | None = None,
        replace: bool = False,
    ) -> SavedSession:
        """Save ``session`` (its proposal only if it changed since the last save).

        One writer at a time per case (a lock across processes). A session loaded from the store
        or saved before (:attr:`ReviewSession.saved_version` set) is saved only over the same
        save it knows; a new session (a fresh model run) replaces whatever is saved.

        Args:
            session: The review to save.
            key: The case's :func:`case_key` (computed from its files when None; pass it to avoid
                hashing the images on every save).
            exported: Mark the saved labels as exported (or not); None keeps the flag, which an
                edit made after the export resets.
            extra: More JSON-able fields to store (e.g. a sign-off).
            replace: Save over a newer save of another writer (after the user chose to keep
                these edits instead of theirs).

        Returns:
            The saved session's description.

        Raises:
            SessionConflictError: Another viewer or process saved this case's review since this
                session loaded or saved it (nothing written).
            BratsInputError: The working labels hold values that are not labels of the
                session's convention (nothing written), or the lock stayed taken.
        """
        key = key or case_key(session.case.files)
        with case_lock(lock_path(self.root, key)):
            return self._save_locked(session, key, exported, extra, replace)

    def _save_locked(
        self,
        session: ReviewSession,
        key: str,
        exported: bool | None,
        extra: dict[str, Any] | None,
        replace: bool,
    ) -> SavedSession:
        folder = self.root / key
        folder.mkdir(parents=True, exist_ok=True)
        current = read_saved(folder)
        if not replace:
            refuse_stale(session.case.case_id, session.saved_version, current)
        old = current.meta if current is not None and not current.problem else None
        session.record_edits()
        flat = np.flatnonzero(session.overrides).astype(np.int64)
        values = session.labels.reshape(-1)[flat]
        check_painted(values, session.convention, session.case.case_id)
        proposal_bytes = np.ascontiguousarray(session.proposal, dtype=np.uint8).tobytes()
        digest = hashlib.sha1(proposal_bytes).hexdigest()[:16]
        proposal_name = f"proposal-{digest}.npz"
        if not (folder / proposal_name).is_file():
            _write_npz(folder / proposal_name, compressed=True, proposal=session.proposal)
        edits_digest = _digest(flat, values)
        generation = (
            max(int((old or {}).get("generation", 0)), generation_of(session.saved_version)) + 1
        )
        save_id = f"{generation}-{secrets.token_hex(8)}"
        edits_name = f"edits-{generation}.npz"
        _write_npz(folder / edits_name, compressed=False, flat=flat, values=values)
        n_edited = session.n_edited
        same = (
            old is not None
            and old.get("edits_digest") == edits_digest
            and old.get("proposal_file") == proposal_name
        )
        if exported is None:
            exported = bool(old and old.get("exported")) and same
        kept = {k: old[k] for k in _KEPT_WHEN_EXPORTED if old and k in old} if exported else {}
        if old is not None and old.get("proposal_file") == proposal_name:
            kept.update({k: old[k] for k in _KEPT_WITH_PROPOSAL if k in old})
        meta = {
            "version": STORE_VERSION,
            "key": key,
            "generation": generation,
            "save_id": save_id,
            "case_id": session.case.case_id,
            "case_folder": str(session.case.folder),
            "files": {k: str(v) for k, v in session.case.files.items()},
            "shape": list(session.labels.shape),
            "affine": np.asarray(session.case.affine).tolist(),
            "header": base64.b64encode(session.case.header.binaryblock).decode()
            if session.case.header is not None
            else None,
            "convention": session.convention,
            "model": session.model.to_dict(),
            "config": session.config.to_dict(),
            "initial_config": (session.initial_config or session.config).to_dict(),
            "proposal_file": proposal_name,
            "edits_file": edits_name,
            "edits_digest": edits_digest,
            "n_edited": n_edited,
            "n_overrides": int(flat.size),
            "edited_voxels": session.edited_voxels(),
            "exported": bool(exported),
            "last_change": _now(),
            "last_change_epoch": time.time(),
            "volumes_ml": _volumes(session),
            "signoffs": [e.to_dict() for e in session.signoffs],
            **kept,
            **({"assessment": session.assessment} if session.assessment is not None else {}),
            **_et_rule(session),
            **(extra or {}),
        }
        meta["status"] = status_of(meta)
        with atomic_write(folder / "session.json") as fh:
            fh.write((json.dumps(meta, indent=1) + "\n").encode())
        for stale in folder.iterdir():  # only after the commit point
            if stale.suffix == ".npz" and stale.name not in (proposal_name, edits_name):
                stale.unlink(missing_ok=True)
        session.saved_version = save_id
        return SavedSession(key, folder, meta)

    def mark_exported(self, key: str, output: str | Path, version: str | None = None) -> bool:
        """Record that the saved labels were exported to ``output``.

        Args:
            key: The case's key.
            output: What was written.
            version: The :attr:`SavedSession.version` the exported labels came from: when
                another save replaced it meanwhile, nothing is marked (its labels were not
                exported).

        Returns:
            Whether the mark was recorded.
        """
        folder = self.root / key
        with case_lock(lock_path(self.root, key)):
            saved = read_saved(folder)
            if saved is None:
                raise BratsInputError(f"no saved review session {key}", folder)
            saved.check()
            if version is not None and saved.version != version:
                logger.warning("%s: saved again during the export; not marked exported", folder)
                return False
            meta = saved.meta
            meta.update(exported=True, exported_to=str(output), exported_at=_now())
            with atomic_write(folder / "session.json") as fh:
                fh.write((json.dumps(meta, indent=1) + "\n").encode())
        return True

    def discard(self, key: str) -> None:
        """Delete a saved session."""
        folder = self.root / key
        lock = lock_path(self.root, key)
        if folder.is_dir():
            with case_lock(lock):
                for f in folder.iterdir():
                    f.unlink(missing_ok=True)
                folder.rmdir()
        lock.unlink(missing_ok=True)

    # ------------------------------------------------------------------ read
    def list(self) -> list[SavedSession]:
        """Every saved session, most recently changed first, damaged ones last (see
        :attr:`SavedSession.problem`)."""
        out: list[SavedSession] = []
        if not self.root.is_dir():
            return out
        for folder in sorted(self.root.iterdir()):
            saved = read_saved(folder) if folder.is_dir() else None
            if saved is not None:
                out.append(saved)
        return sorted(
            out, key=lambda s: -1.0 if s.problem else -float(s.meta.get("last_change_epoch", 0))
        )

    def get(self, key: str) -> SavedSession | None:
        """The saved session of case ``key`` (perhaps damaged: see its ``problem``), or None."""
        return read_saved(self.root / key)

    def find(self, ident: str) -> SavedSession:
        """The session named by a case id or a key (prefix).

        Raises:
            BratsInputError: None matches, or several do (they are listed).
        """
        saved = self.list()
        hits = [s for s in saved if s.key.startswith(ident)] or [
            s for s in saved if s.case_id == ident
        ]
        if not hits:
            damaged = sum(1 for s in saved if s.problem)
            raise BratsInputError(
                f"no saved review session for {ident!r} in {self.root}"
                + (f" ({damaged} damaged one(s) there: give the key)" if damaged else "")
            )
        if len(hits) > 1:
            keys = ", ".join(f"{s.key} ({s.case_id}, {s.meta.get('last_change')})" for s in hits)
            raise BratsInputError(
                f"{len(hits)} saved sessions match {ident!r}: {keys}; give the key"
            )
        return hits[0]

    def load_arrays(self, saved: SavedSession) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(labels, proposal, overrides)`` of a saved session, exactly as saved.

        When another save replaced the session's files meanwhile, its newer ``session.json`` is
        read (into ``saved.meta``) and the arrays it names are loaded.

        Raises:
            BratsInputError: The session is damaged, or a file of it is missing or damaged (its
                arrays are checked: grid, label values, edit indices).
        """
        proposal, flat, values = read_arrays(saved)
        proposal = np.ascontiguousarray(proposal, dtype=np.uint8)
        labels = proposal.copy()
        labels.reshape(-1)[flat] = values
        overrides = np.zeros(proposal.shape, dtype=bool)
        overrides.reshape(-1)[flat] = True
        return labels, proposal, overrides

    def restore(self, saved: SavedSession, case: Case) -> ReviewSession:
        """A :class:`ReviewSession` of ``case`` with the saved labels and edits (no probabilities:
        settings move again after the next model run, which keeps the edits).

        Raises:
            BratsInputError: The session is damaged, or it is not this case's: its key and its
                folder must both be the hash of ``case``'s image files (another case's session
                is never shown on this one).
        """
        from bratseg.postprocess import PostprocessConfig

        saved.check()
        try:
            key = case_key(case.files)
        except (OSError, KeyError, AttributeError) as exc:
            raise BratsInputError(
                f"cannot check that the saved review is this case's ({exc})", saved.folder
            ) from None
        if key != saved.key or saved.meta.get("key") != key:
            raise BratsInputError(
                f"the saved review session is not case {case.case_id}'s (its images hash to "
                f"{key}): refusing to restore it",
                saved.folder,
            )
        labels, proposal, overrides = self.load_arrays(saved)
        if tuple(labels.shape) != tuple(case.image.shape[1:]):
            raise BratsInputError(
                f"saved session grid {labels.shape} differs from the case's {case.image.shape[1:]}",
                saved.folder,
            )
        meta = saved.meta
        try:
            session = ReviewSession(
                case=case,
                convention=meta["convention"],
                region_probs=None,
                config=PostprocessConfig.from_dict(meta["config"]),
                initial_config=PostprocessConfig.from_dict(
                    meta.get("initial_config") or meta["config"]
                ),
                proposal=proposal,
                labels=labels,
                overrides=overrides,
                model=ModelInfo.from_dict(
                    meta.get("model") or {"names": [], "paths": [], "sha256": []}
                ),
                signoffs=saved.signoffs,
                assessment=meta.get("assessment"),
            )
        except (TypeError, ValueError, KeyError) as exc:
            raise BratsInputError(
                f"saved review session is damaged ({exc})", saved.folder / "session.json"
            ) from None
        session.saved_version = saved.version
        return session

    def geometry(self, saved: SavedSession) -> tuple[np.ndarray, nib.Nifti1Header | None]:
        """The source ``(affine, header)`` the session's labels belong to (checked on read)."""
        saved.check()
        header = None
        if saved.meta.get("header"):
            header = nib.Nifti1Header(base64.b64decode(saved.meta["header"]))
        return np.asarray(saved.meta["affine"], dtype=np.float64), header


def _write_npz(path: Path, compressed: bool, **arrays: np.ndarray) -> None:
    buffer = io.BytesIO()
    named: dict[str, Any] = dict(arrays)  # numpy's stubs type **kwds as its allow_pickle flag
    (np.savez_compressed if compressed else np.savez)(buffer, **named)
    with atomic_write(path) as fh:
        fh.write(buffer.getvalue())


def _digest(flat: np.ndarray, values: np.ndarray) -> str:
    h = hashlib.sha1(np.ascontiguousarray(flat).tobytes())
    h.update(np.ascontiguousarray(values).tobytes())
    return h.hexdigest()[:16]


def _volumes(session: ReviewSession) -> dict[str, float] | None:
    """Tumour volumes (mL) of the working labels, None when the case has no voxel size."""
    from bratseg.metrics import tumour_volumes_ml

    spacing = getattr(session.case, "spacing", None)
    if spacing is None:
        return None
    volumes = tumour_volumes_ml(session.labels, session.convention, spacing)
    return {k: round(float(v), 4) for k, v in volumes.items()}


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).astimezone().isoformat(timespec="seconds")
