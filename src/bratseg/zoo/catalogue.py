"""The model zoo: bundled checkpoints and the user's own.

* Bundled weights ship inside the package in ``src/bratseg/weights/*.pt``. The default is named in
  ``weights/default.txt``: one model name per line, several lines = an ensemble (their
  probabilities are averaged). Failing that, it is the first bundled file by name. The default's
  own postprocessing settings, chosen for the ensemble by cross-validation, are in
  ``weights/default-postprocess.json`` (they override the first model's).
* User models live in ``$BRATSEG_HOME/models`` (see :func:`bratseg_home`); fine-tuned
  checkpoints go there. A user model with the name of a bundled one is ignored (with a warning
  to rename it): a bundled name always means the bundled file, so no file planted in the user
  folder or the current directory can stand in for a member of the validated default.

A checkpoint's *metadata* (:func:`read_checkpoint_meta`: architecture, paper, preprocessing,
postprocessing, training provenance and, for shipped weights, the model card of
:mod:`bratseg.zoo.card`) is read with ``torch.load(mmap=True, weights_only=True)``,
which maps the weights without reading them, and is cached per (path, mtime, size), so listing
the zoo stays cheap.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from bratseg.errors import BratsInputError, CheckpointError
from bratseg.user_folders import user_models_dir
from bratseg.zoo.card import ModelCard, embedded_card

logger = logging.getLogger(__name__)

#: Folder of the checkpoints shipped with the package.
BUNDLED_DIR = Path(__file__).resolve().parent.parent / "weights"
CHECKPOINT_SUFFIXES = (".pt", ".pth")
_BUFFER_SUFFIXES = ("running_mean", "running_var", "num_batches_tracked")
_META_CACHE: dict[tuple[str, int, int], dict[str, Any]] = {}


@dataclass
class ModelEntry:
    """One checkpoint of the zoo.

    Attributes:
        name: File name without suffix (what ``--model`` accepts).
        path: The checkpoint file.
        arch: Architecture registry name.
        bundled: Shipped with the package (else a user model).
        val_dice: ``{"wt": .., "tc": .., "et": ..}`` validation Dice when the checkpoint records it.
        meta: The checkpoint metadata (no weights) plus ``parameters`` and ``file_size``.
    """

    name: str
    path: Path
    arch: str
    bundled: bool
    val_dice: dict[str, float] | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def model_card(self) -> ModelCard | None:
        """The model card shipped inside the checkpoint, if any."""
        return embedded_card(self.meta)

    @property
    def cross_validated(self) -> bool:
        """Its card's scores are a cross-validation estimate (weights trained on every case)."""
        card = self.model_card
        return bool(card and card.cross_validation)

    @property
    def parameters(self) -> int | None:
        """Number of learnable weights stored in the checkpoint."""
        return self.meta.get("parameters")


def model_name_of(name: str) -> str:
    """A checkpoint file name without its ``.pt`` / ``.pth`` suffix (what ``--model`` accepts)."""
    for suffix in CHECKPOINT_SUFFIXES:
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def checkpoints_in(folder: Path) -> list[Path]:
    """The checkpoint files directly in ``folder``, sorted (none when it does not exist)."""
    if not folder.is_dir():
        return []
    return sorted(
        p
        for p in folder.iterdir()
        if p.is_file() and p.suffix in CHECKPOINT_SUFFIXES and not p.name.startswith(".")
    )


def read_checkpoint_meta(path: str | Path) -> dict[str, Any]:
    """Checkpoint metadata without loading the weights (cached by path, mtime and size).

    Returns:
        The checkpoint dict minus ``state_dict``, plus ``parameters`` (count of stored learnable
        values) and ``file_size`` (bytes).

    Raises:
        CheckpointError: Missing, unreadable or not a bratseg checkpoint.
    """
    path = Path(path)
    try:
        st = path.stat()
    except OSError:
        raise CheckpointError("checkpoint file not found", path) from None
    key = (str(path.resolve()), st.st_mtime_ns, st.st_size)
    if key in _META_CACHE:
        return _META_CACHE[key]
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception as exc:  # noqa: BLE001 - every failure is reported as one line
        raise CheckpointError(
            f"not a readable bratseg checkpoint ({type(exc).__name__})", path
        ) from None
    if not isinstance(payload, dict) or payload.get("format") != "bratseg-checkpoint":
        raise CheckpointError("not a bratseg checkpoint", path)
    state = payload.get("state_dict") or {}
    meta = {k: v for k, v in payload.items() if k != "state_dict"}
    unique = {
        (t.data_ptr(), tuple(t.shape)): t
        for k, t in state.items()  # aliased entries count once
        if hasattr(t, "numel") and not k.endswith(_BUFFER_SUFFIXES)
    }
    meta["parameters"] = int(sum(t.numel() for t in unique.values()))
    meta["file_size"] = int(st.st_size)
    del payload, state
    _META_CACHE[key] = meta
    return meta


def _find_val_dice(meta: dict[str, Any]) -> dict[str, float] | None:
    """Validation Dice of a checkpoint.

    The model card's full-resolution ``val_dice`` (:mod:`bratseg.zoo.card`) first, else the
    trainer's ``val_dice`` in the provenance, its ``extra`` or ``metrics`` sections.
    """
    card = embedded_card(meta)
    if card is not None and card.val_dice:
        return {k: float(v) for k, v in card.val_dice.items() if v is not None}
    for section in (meta.get("provenance") or {}, meta.get("extra") or {}, meta):
        if not isinstance(section, dict):
            continue
        for holder in (section, section.get("metrics") or {}):
            value = holder.get("val_dice") if isinstance(holder, dict) else None
            if isinstance(value, dict) and value:
                try:
                    return {k: float(v) for k, v in value.items() if v is not None}
                except (TypeError, ValueError):
                    continue
    return None


def _entry(path: Path, bundled: bool) -> ModelEntry:
    meta = read_checkpoint_meta(path)
    return ModelEntry(
        name=model_name_of(path.name),
        path=path,
        arch=str(meta.get("arch", "?")),
        bundled=bundled,
        val_dice=_find_val_dice(meta),
        meta=meta,
    )


def bundled_names() -> set[str]:
    """Names of the checkpoints shipped with the package (file names only; nothing is read)."""
    return {model_name_of(p.name) for p in checkpoints_in(BUNDLED_DIR)}


def list_models(include_user: bool = True) -> list[ModelEntry]:
    """Every usable checkpoint: bundled first, then the user's (unreadable files are skipped).

    A user checkpoint with the name of a bundled one is skipped with a warning (rename it).
    """
    entries: dict[str, ModelEntry] = {}
    folders = [(BUNDLED_DIR, True)] + ([(user_models_dir(), False)] if include_user else [])
    for folder, bundled in folders:
        for path in checkpoints_in(folder):
            try:
                entry = _entry(path, bundled)
            except CheckpointError as exc:
                logger.warning("skipping %s", exc)
                continue
            if entry.name in entries:
                logger.warning(
                    "ignoring user model %s: it has the name of a bundled model; rename the file "
                    "(e.g. %s-mine.pt) to use it",
                    path,
                    entry.name,
                )
                continue
            entries[entry.name] = entry
    return list(entries.values())


def bundled_models() -> list[ModelEntry]:
    """Only the checkpoints shipped with the package."""
    return [e for e in list_models(include_user=False) if e.bundled]


def checkpoint_names() -> set[str]:
    """Names of every bundled and user checkpoint (file names only; nothing is read)."""
    return {
        model_name_of(p.name) for f in (BUNDLED_DIR, user_models_dir()) for p in checkpoints_in(f)
    }


def resolve_model(name_or_path: str | Path) -> Path:
    """Checkpoint file for a zoo name or a path.

    Order: a bundled model's name (written without a folder or suffix) is always the bundled
    file, whatever lies in the current directory or the user folder; then an existing file path;
    a user model of that name (never one with a bundled name); a bundled model of that name.

    Raises:
        BratsInputError: Nothing matches (the message lists the available names).
    """
    text = str(name_or_path)
    candidate = Path(text).expanduser()
    separators = (os.sep, os.altsep) if os.altsep else (os.sep,)
    looks_like_path = any(s in text for s in separators) or text.endswith(CHECKPOINT_SUFFIXES)
    name = model_name_of(candidate.name)
    bundled = bundled_names()
    if not looks_like_path and name in bundled:
        return next(p for p in checkpoints_in(BUNDLED_DIR) if model_name_of(p.name) == name)
    if candidate.is_file():
        return candidate
    for folder in (user_models_dir(), BUNDLED_DIR):
        for path in checkpoints_in(folder):
            if model_name_of(path.name) == name and (folder == BUNDLED_DIR or name not in bundled):
                return path
    if looks_like_path:
        raise BratsInputError("checkpoint file not found", candidate)
    known = ", ".join(sorted(checkpoint_names())) or "none installed"
    raise BratsInputError(
        f"unknown model {text!r} (available: {known}; or pass a checkpoint file path)"
    )
