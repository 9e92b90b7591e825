"""Autosaved review sessions: a clinician's edits survive a crash, a closed viewer, a new case.

Each case has a folder ``$BRATSEG_HOME/sessions/<key>/`` where ``key`` is a hash of the case's
four image files (their bytes, not their path: a moved or renamed folder is the same case):

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
"""

from __future__ import annotations

import base64
import datetime as _dt
import hashlib
import io
import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np

from bratseg.atomic import atomic_write
from bratseg.errors import BratsInputError
from bratseg.review.session import ModelInfo, ReviewSession
from bratseg.review.signoff import SignOff, status_of

logger = logging.getLogger(__name__)

#: Bumped when the saved layout changes meaning.
STORE_VERSION = 1
#: Fields of a previous save carried over while the labels stay as exported.
_KEPT_WHEN_EXPORTED = ("exported_to", "exported_at")
#: Fields of a previous save carried over while the AI proposal stays the same.
_KEPT_WITH_PROPOSAL = ("assessment",)
_CHUNK = 1 << 20


def sessions_dir() -> Path:
    """``$BRATSEG_SESSIONS``, else ``$BRATSEG_HOME/sessions`` (default ``~/.napari-brats/sessions``)."""
    import os

    from bratseg.zoo import bratseg_home

    override = os.environ.get("BRATSEG_SESSIONS")
    return Path(override).expanduser() if override else bratseg_home() / "sessions"


def file_digest(path: str | Path) -> str:
    """sha256 of a file's bytes (of a folder's files, by name, for a DICOM series)."""
    h = hashlib.sha256()
    path = Path(path)
    for item in sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]:
        h.update(item.name.encode())
        with open(item, "rb") as fh:
            for chunk in iter(lambda: fh.read(_CHUNK), b""):
                h.update(chunk)
    return h.hexdigest()


def case_key(files: dict[str, Path]) -> str:
    """Identity of a case: a hash over the bytes of its four image files (T1, T1Gd, T2, FLAIR).

    Args:
        files: Channel -> file, as in :attr:`bratseg.io.Case.files`.
    """
    from bratseg.io import MODALITIES

    h = hashlib.sha256()
    for m in MODALITIES:
        h.update(f"{m}:{file_digest(files[m])};".encode())
    return h.hexdigest()[:24]


@dataclass
class SavedSession:
    """What ``session.json`` says of one saved review (nothing large loaded)."""

    key: str
    folder: Path
    meta: dict[str, Any]

    @property
    def case_id(self) -> str:
        """The case's id (its folder name)."""
        return str(self.meta.get("case_id"))

    @property
    def n_edited(self) -> int:
        """Hand-edited voxels."""
        return int(self.meta.get("n_edited", 0))

    @property
    def status(self) -> str:
        """Review status: ``segmented``, ``edited`` or ``approved`` (see :mod:`bratseg.review.signoff`)."""
        return status_of(self.meta)

    @property
    def signoffs(self) -> list[SignOff]:
        """The sign-off history, oldest first (empty for older saves)."""
        return [SignOff.from_dict(d) for d in self.meta.get("signoffs") or []]

    def summary(self) -> dict[str, Any]:
        """The row ``napari-brats sessions`` prints."""
        m = self.meta
        return {
            "key": self.key,
            "case_id": m.get("case_id"),
            "case_folder": m.get("case_folder"),
            "last_change": m.get("last_change"),
            "n_edited": m.get("n_edited", 0),
            "edited_voxels": m.get("edited_voxels"),
            "exported": bool(m.get("exported")),
            "models": (m.get("model") or {}).get("names", []),
            "status": self.status,
            "approved_by": (self.signoffs[-1].reviewer if self.status == "approved" else None),
            "volumes_ml": m.get("volumes_ml"),
            "assessment": m.get("assessment"),
        }


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
    ) -> SavedSession:
        """Save ``session`` (its proposal only if it changed since the last save).

        Args:
            session: The review to save.
            key: The case's :func:`case_key` (computed from its files when None; pass it to avoid
                hashing the images on every save).
            exported: Mark the saved labels as exported (or not); None keeps the flag, which an
                edit made after the export resets.
            extra: More JSON-able fields to store (e.g. a sign-off).

        Returns:
            The saved session's description.
        """
        key = key or case_key(session.case.files)
        folder = self.root / key
        folder.mkdir(parents=True, exist_ok=True)
        old = self._read_meta(folder)
        session.record_edits()
        proposal_bytes = np.ascontiguousarray(session.proposal, dtype=np.uint8).tobytes()
        digest = hashlib.sha1(proposal_bytes).hexdigest()[:16]
        proposal_name = f"proposal-{digest}.npz"
        if not (folder / proposal_name).is_file():
            _write_npz(folder / proposal_name, compressed=True, proposal=session.proposal)
        flat = np.flatnonzero(session.overrides).astype(np.int64)
        values = session.labels.reshape(-1)[flat]
        edits_digest = _digest(flat, values)
        generation = int((old or {}).get("generation", 0)) + 1
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
            **(extra or {}),
        }
        meta["status"] = status_of(meta)
        with atomic_write(folder / "session.json") as fh:
            fh.write((json.dumps(meta, indent=1) + "\n").encode())
        for stale in folder.iterdir():  # only after the commit point
            if stale.suffix == ".npz" and stale.name not in (proposal_name, edits_name):
                stale.unlink(missing_ok=True)
        return SavedSession(key, folder, meta)

    def mark_exported(self, key: str, output: str | Path) -> None:
        """Record that the saved labels were exported to ``output``."""
        folder = self.root / key
        meta = self._read_meta(folder)
        if meta is None:
            raise BratsInputError(f"no saved review session {key}", folder)
        meta.update(exported=True, exported_to=str(output), exported_at=_now())
        with atomic_write(folder / "session.json") as fh:
            fh.write((json.dumps(meta, indent=1) + "\n").encode())

    def discard(self, key: str) -> None:
        """Delete a saved session."""
        folder = self.root / key
        if folder.is_dir():
            for f in folder.iterdir():
                f.unlink(missing_ok=True)
            folder.rmdir()

    # ------------------------------------------------------------------ read
    def list(self) -> list[SavedSession]:
        """Every saved session, most recently changed first (unreadable ones skipped, logged)."""
        out: list[SavedSession] = []
        if not self.root.is_dir():
            return out
        for folder in sorted(self.root.iterdir()):
            meta = self._read_meta(folder) if folder.is_dir() else None
            if meta is not None:
                out.append(SavedSession(folder.name, folder, meta))
        return sorted(out, key=lambda s: -float(s.meta.get("last_change_epoch", 0)))

    def get(self, key: str) -> SavedSession | None:
        """The saved session of case ``key``, or None."""
        meta = self._read_meta(self.root / key)
        return SavedSession(key, self.root / key, meta) if meta is not None else None

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
            raise BratsInputError(f"no saved review session for {ident!r} in {self.root}")
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
            BratsInputError: A file of the session is missing or damaged.
        """
        for attempt in range(3):  # a save running meanwhile replaces the files: read its new meta
            meta = saved.meta
            try:
                with np.load(saved.folder / meta["proposal_file"]) as z:
                    proposal = np.ascontiguousarray(z["proposal"], dtype=np.uint8)
                with np.load(saved.folder / meta["edits_file"]) as z:
                    flat, values = z["flat"], z["values"]
                break
            except FileNotFoundError as exc:
                newer = self._read_meta(saved.folder)
                if (
                    attempt == 2
                    or newer is None
                    or newer.get("generation") == meta.get("generation")
                ):
                    raise BratsInputError(
                        f"saved session is damaged ({exc})", saved.folder
                    ) from None
                saved.meta = newer
            except (OSError, KeyError, ValueError) as exc:
                raise BratsInputError(f"saved session is damaged ({exc})", saved.folder) from None
        if list(proposal.shape) != list(meta["shape"]):
            raise BratsInputError("saved session is damaged (proposal shape)", saved.folder)
        labels = proposal.copy()
        labels.reshape(-1)[flat] = values
        overrides = np.zeros(proposal.shape, dtype=bool)
        overrides.reshape(-1)[flat] = True
        return labels, proposal, overrides

    def restore(self, saved: SavedSession, case: Any) -> ReviewSession:
        """A :class:`ReviewSession` of ``case`` with the saved labels and edits (no probabilities:
        settings move again after the next model run, which keeps the edits)."""
        from bratseg.postprocess import PostprocessConfig

        labels, proposal, overrides = self.load_arrays(saved)
        if tuple(labels.shape) != tuple(case.image.shape[1:]):
            raise BratsInputError(
                f"saved session grid {labels.shape} differs from the case's {case.image.shape[1:]}",
                saved.folder,
            )
        meta = saved.meta
        return ReviewSession(
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
            signoffs=SavedSession(saved.key, saved.folder, meta).signoffs,
            assessment=meta.get("assessment"),
        )

    def geometry(self, saved: SavedSession) -> tuple[np.ndarray, nib.Nifti1Header | None]:
        """The source ``(affine, header)`` the session's labels belong to."""
        header = None
        if saved.meta.get("header"):
            header = nib.Nifti1Header(base64.b64decode(saved.meta["header"]))
        return np.asarray(saved.meta["affine"], dtype=np.float64), header

    @staticmethod
    def _read_meta(folder: Path) -> dict[str, Any] | None:
        path = folder / "session.json"
        if not path.is_file():
            return None
        try:
            meta = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            logger.warning("%s: unreadable review session (%s); skipped", path, exc)
            return None
        return meta if isinstance(meta, dict) else None


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
