"""Checks of a saved review read back from disk: nothing in a session folder is trusted.

A session folder can be damaged (a disk error, a crash of an older version, a hand edit) or
copied under another case's key. Before :class:`bratseg.review.SessionStore` uses one:

- :func:`meta_problem` checks ``session.json``: its keys and their types, that its ``key`` is its
  folder's name (a folder copied under another case's key is refused), that the array file names
  are plain names of files inside the folder, and that the stored NIfTI header decodes;
- :func:`arrays_problem` checks the arrays: the proposal's grid and label values, the edits'
  flat indices (in range, not negative) and label values (BraTS labels of the session's
  convention).

Each returns one line saying what is wrong, or None; :func:`read_saved` reads a session folder
into a :class:`SavedSession` that carries that line as its ``problem``.
"""

from __future__ import annotations

import base64
import json
import math
import re
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bratseg.errors import BratsInputError
from bratseg.labels import CONVENTIONS, Convention, valid_labels
from bratseg.review.signoff import SignOff, status_of

#: What reading a damaged ``.npz`` raises (truncated zip, bad deflate stream, missing member).
_NPZ_ERRORS = (OSError, KeyError, ValueError, EOFError, zipfile.BadZipFile, zlib.error)
#: The names the store gives its array files (anything else is refused: no paths, no ``..``).
PROPOSAL_NAME = re.compile(r"proposal-[0-9a-f]{1,64}\.npz")
EDITS_NAME = re.compile(r"edits-[0-9]{1,18}\.npz")

_REQUIRED: dict[str, type | tuple[type, ...]] = {
    "key": str,
    "case_id": str,
    "proposal_file": str,
    "edits_file": str,
    "shape": list,
    "affine": list,
    "convention": str,
    "config": dict,
}
_OPTIONAL: dict[str, type | tuple[type, ...]] = {
    "generation": int,
    "n_edited": int,
    "n_overrides": int,
    "last_change_epoch": (int, float),
    "last_change": str,
    "exported": bool,
    "signoffs": list,
    "edited_voxels": dict,
    "volumes_ml": dict,
    "model": dict,
    "assessment": dict,
    "initial_config": dict,
    "status": str,
    "case_folder": str,
    "header": str,
}


@dataclass
class SavedSession:
    """What ``session.json`` says of one saved review (nothing large loaded).

    ``problem`` is one line saying why the session is damaged (then ``meta`` may be partial or
    empty and the session is never restored or exported), None when it is sound.
    """

    key: str
    folder: Path
    meta: dict[str, Any]
    problem: str | None = None

    @property
    def case_id(self) -> str:
        """The case's id (its folder name)."""
        return str(self.meta.get("case_id"))

    @property
    def n_edited(self) -> int:
        """Hand-edited voxels (0 for a damaged session)."""
        return 0 if self.problem else int(self.meta.get("n_edited", 0))

    @property
    def version(self) -> str:
        """The save this is (the id the next save of a session loaded from it must find)."""
        return str(self.meta.get("save_id") or f"generation-{self.meta.get('generation', 0)}")

    def check(self) -> None:
        """Raise the session's problem.

        Raises:
            BratsInputError: The session is damaged (one line naming its ``session.json``).
        """
        if self.problem:
            raise BratsInputError(
                f"saved review session is damaged: {self.problem}", self.folder / "session.json"
            )

    @property
    def status(self) -> str:
        """Review status: ``segmented``, ``edited`` or ``approved`` (see :mod:`bratseg.review.signoff`)."""
        return status_of(self.meta)

    @property
    def signoffs(self) -> list[SignOff]:
        """The sign-off history, oldest first (empty for older saves)."""
        return [SignOff.from_dict(d) for d in self.meta.get("signoffs") or []]

    def summary(self) -> dict[str, Any]:
        """The row ``napari-brats sessions`` prints (``damaged``: why it is unusable, or None)."""
        m = self.meta
        if self.problem:
            case_id = m.get("case_id") if isinstance(m.get("case_id"), str) else None
            return {
                "key": self.key,
                "case_id": case_id,
                "status": "damaged",
                "damaged": self.problem,
            }
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
            "damaged": None,
        }


def read_saved(folder: Path) -> SavedSession | None:
    """The session in ``folder`` (checked: see :attr:`SavedSession.problem`), None if none."""
    path = folder / "session.json"
    if not path.is_file():
        return None
    try:
        meta = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        return SavedSession(folder.name, folder, {}, f"session.json is not readable JSON ({exc})")
    problem = meta_problem(folder.name, meta)
    return SavedSession(folder.name, folder, meta if isinstance(meta, dict) else {}, problem)


def read_arrays(saved: SavedSession) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The stored ``(proposal, flat, values)`` of ``saved``, checked by :func:`arrays_problem`.

    When another save replaced the session's files meanwhile, its newer ``session.json`` is read
    (into ``saved``) and the arrays it names are loaded.

    Raises:
        BratsInputError: The session is damaged, or a file of it is missing or damaged.
    """
    for attempt in range(3):  # a save running meanwhile replaces the files: read its new meta
        saved.check()
        meta = saved.meta
        name = meta["proposal_file"]
        try:
            with np.load(saved.folder / name) as z:
                proposal = z["proposal"]
            name = meta["edits_file"]
            with np.load(saved.folder / name) as z:
                flat, values = z["flat"], z["values"]
            break
        except FileNotFoundError as exc:
            newer = read_saved(saved.folder)
            if attempt == 2 or newer is None or newer.version == saved.version:
                raise BratsInputError(
                    f"saved review session is damaged ({exc.strerror})", saved.folder / name
                ) from None
            saved.meta, saved.problem = newer.meta, newer.problem
        except _NPZ_ERRORS as exc:
            raise BratsInputError(
                f"saved review session is damaged ({type(exc).__name__}: {exc})",
                saved.folder / name,
            ) from None
    problem = arrays_problem(proposal, flat, values, meta)
    if problem:
        raise BratsInputError(f"saved review session is damaged: {problem}", saved.folder)
    return proposal, flat, values


def check_painted(values: np.ndarray, convention: Convention, case_id: str) -> None:
    """Refuse to save hand-edited ``values`` that are not labels of ``convention``.

    Raises:
        BratsInputError: One line naming the values and the labels allowed.
    """
    allowed = valid_labels(convention)
    bad = sorted({int(v) for v in np.unique(values)} - set(allowed))
    if bad:
        raise BratsInputError(
            f"case {case_id}: label value(s) {bad[:5]} painted by hand are not BraTS "
            f"{convention} labels ({', '.join(map(str, allowed))}); paint those voxels "
            "with a valid label - the review is not saved until then"
        )


def meta_problem(folder_key: str, meta: Any) -> str | None:
    """What is wrong with the ``session.json`` of the folder named ``folder_key``, or None."""
    if not isinstance(meta, dict):
        return "session.json is not a JSON object"
    for name in _REQUIRED:
        if name not in meta:
            return f"session.json lacks {name!r}"
    for name, kind in {**_REQUIRED, **_OPTIONAL}.items():
        value = meta.get(name)
        if value is None and name in _OPTIONAL:
            continue
        if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
            return f"session.json: {name!r} has the wrong type ({type(value).__name__})"
    if meta["key"] != folder_key:
        return (
            f"session.json belongs to another case (key {meta['key'][:24]!r}, folder "
            f"{folder_key!r}): the folder was copied or renamed by hand; refusing it"
        )
    for name, pattern in (("proposal_file", PROPOSAL_NAME), ("edits_file", EDITS_NAME)):
        if not pattern.fullmatch(meta[name]):
            return f"session.json: {name} {meta[name]!r} is not a file name of the session folder"
    if meta["convention"] not in CONVENTIONS:
        return f"session.json: unknown label convention {meta['convention']!r}"
    shape = meta["shape"]
    if len(shape) != 3 or not all(isinstance(n, int) and 0 < n < 1 << 16 for n in shape):
        return f"session.json: shape {shape!r} is not a 3-D grid"
    if not _is_matrix(meta["affine"]):
        return "session.json: affine is not a 4x4 matrix of finite numbers"
    if meta.get("header") is not None and _header_problem(meta["header"]):
        return f"session.json: header is {_header_problem(meta['header'])}"
    if not all(isinstance(s, dict) for s in meta.get("signoffs") or []):
        return "session.json: signoffs is not a list of sign-offs"
    epoch = meta.get("last_change_epoch")
    if epoch is not None and not math.isfinite(epoch):
        return "session.json: last_change_epoch is not a finite number"
    return None


def arrays_problem(
    proposal: np.ndarray, flat: np.ndarray, values: np.ndarray, meta: dict[str, Any]
) -> str | None:
    """What is wrong with a session's arrays (as stored, before any cast), or None.

    Args:
        proposal: The AI proposal (X, Y, Z).
        flat: Flat (C-order) indices of the hand-edited voxels (N,).
        values: Their labels (N,).
        meta: The session's checked ``session.json``.
    """
    if list(proposal.shape) != list(meta["shape"]):
        return f"proposal grid {proposal.shape} differs from the session's {tuple(meta['shape'])}"
    allowed = np.array(valid_labels(meta["convention"]))
    for name, arr in (("proposal", proposal), ("edit values", values)):
        if arr.dtype.kind not in "biu":
            return f"{name} are not integer labels ({arr.dtype})"
        bad = _values_outside(arr, allowed)
        if bad.size:
            return (
                f"{name}: {bad[:5].tolist()} are not BraTS {meta['convention']} labels "
                f"({', '.join(map(str, allowed.tolist()))})"
            )
    if flat.ndim != 1 or values.shape != flat.shape:
        return f"edits have {flat.shape} indices for {values.shape} values"
    if flat.dtype.kind not in "iu":
        return f"edit indices are not integers ({flat.dtype})"
    if flat.size and (flat.min() < 0 or flat.max() >= proposal.size):
        return f"edit indices {int(flat.min())}..{int(flat.max())} outside 0..{proposal.size - 1}"
    return None


def _values_outside(arr: np.ndarray, allowed: np.ndarray) -> np.ndarray:
    """The distinct values of integer ``arr`` not in ``allowed`` (a table look-up, no sort)."""
    if arr.size == 0:
        return np.zeros(0, dtype=np.int64)
    lo, hi = int(arr.min()), int(arr.max())
    if lo < 0 or hi > 255:
        return np.array([lo if lo < 0 else hi])
    refused = np.ones(256, dtype=bool)
    refused[allowed] = False
    flat = arr.reshape(-1).astype(np.uint8, copy=False)
    outside = refused[flat]
    return np.unique(flat[outside]) if outside.any() else np.zeros(0, dtype=np.int64)


def _is_matrix(value: Any) -> bool:
    return (
        len(value) == 4
        and all(isinstance(row, list) and len(row) == 4 for row in value)
        and all(
            isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)
            for row in value
            for x in row
        )
    )


def _header_problem(text: str) -> str | None:
    import nibabel as nib
    from nibabel.wrapstruct import WrapStructError

    try:
        nib.Nifti1Header(base64.b64decode(text, validate=True))
    except ValueError:  # binascii.Error is one
        return "not valid base64"
    except WrapStructError as exc:
        return f"not a NIfTI-1 header ({exc})"
    return None
