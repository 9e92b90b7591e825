"""The model zoo: bundled checkpoints and the user's own.

* Bundled weights ship inside the package in ``src/bratseg/weights/*.pt``. The default is named in
  ``weights/default.txt``: one model name per line, several lines = an ensemble (their
  probabilities are averaged). Failing that, it is the first bundled file by name. The default's
  own postprocessing settings, chosen for the ensemble by cross-validation, are in
  ``weights/default-postprocess.json`` (they override the first model's).
* User models live in ``$BRATSEG_HOME/models`` (see :func:`bratseg_home`); fine-tuned
  checkpoints go there. A user model with the same name as a bundled one takes precedence.

A model's *card* is its checkpoint metadata (architecture, paper, preprocessing, postprocessing,
training provenance, validation Dice). Reading it uses ``torch.load(mmap=True, weights_only=True)``,
which maps the weights without reading them, and is cached per (path, mtime, size), so listing
the zoo stays cheap.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from bratseg.errors import BratsInputError, CheckpointError

logger = logging.getLogger(__name__)

#: Folder of the checkpoints shipped with the package.
BUNDLED_DIR = Path(__file__).resolve().parent / "weights"
#: The default ensemble's settings and card (postprocessing, cross-validation estimate).
DEFAULT_SETTINGS_FILE = BUNDLED_DIR / "default-postprocess.json"
CHECKPOINT_SUFFIXES = (".pt", ".pth")
_BUFFER_SUFFIXES = ("running_mean", "running_var", "num_batches_tracked")
_CARD_CACHE: dict[tuple[str, int, int], dict[str, Any]] = {}


@dataclass
class ModelEntry:
    """One checkpoint of the zoo.

    Attributes:
        name: File name without suffix (what ``--model`` accepts).
        path: The checkpoint file.
        arch: Architecture registry name.
        bundled: Shipped with the package (else a user model).
        val_dice: ``{"wt": .., "tc": .., "et": ..}`` validation Dice when the card records it.
        card: The checkpoint metadata (no weights) plus ``parameters`` and ``file_size``.
    """

    name: str
    path: Path
    arch: str
    bundled: bool
    val_dice: dict[str, float] | None = None
    card: dict[str, Any] = field(default_factory=dict)

    @property
    def cross_validated(self) -> bool:
        """Its card's scores are a cross-validation estimate (weights trained on every case)."""
        card = (self.card.get("provenance") or {}).get("card") or {}
        return bool(card.get("cross_validation"))

    @property
    def parameters(self) -> int | None:
        """Number of learnable weights stored in the checkpoint."""
        return self.card.get("parameters")


#: Folder of earlier versions, still used when it exists (models and sessions stay where they are).
LEGACY_HOME = Path("~/.napari-brats")


def bratseg_home() -> Path:
    """The user data folder: ``$BRATSEG_HOME``; else ``~/.napari-brats`` when it exists (earlier
    versions); else the platform's user data folder (platformdirs: ``~/.local/share/napari-brats``
    on Linux, ``~/Library/Application Support/napari-brats`` on macOS, ``%LOCALAPPDATA%`` on
    Windows)."""
    env = os.environ.get("BRATSEG_HOME")
    if env:
        return Path(env).expanduser()
    legacy = LEGACY_HOME.expanduser()
    if legacy.is_dir():
        return legacy
    import platformdirs

    return Path(platformdirs.user_data_dir("napari-brats", appauthor=False))


def bratseg_cache() -> Path:
    """The cache folder: ``$BRATSEG_HOME/cache`` when set, ``~/.napari-brats/cache`` when that
    exists, else the platform's user cache folder (platformdirs)."""
    env = os.environ.get("BRATSEG_HOME")
    if env:
        return Path(env).expanduser() / "cache"
    legacy = LEGACY_HOME.expanduser()
    if legacy.is_dir():
        return legacy / "cache"
    import platformdirs

    return Path(platformdirs.user_cache_dir("napari-brats", appauthor=False))


def user_models_dir() -> Path:
    """Folder of the user's checkpoints (may not exist yet)."""
    return bratseg_home() / "models"


def _strip_suffix(name: str) -> str:
    for suffix in CHECKPOINT_SUFFIXES:
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def _checkpoints_in(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    return sorted(
        p
        for p in folder.iterdir()
        if p.is_file() and p.suffix in CHECKPOINT_SUFFIXES and not p.name.startswith(".")
    )


def read_card(path: str | Path) -> dict[str, Any]:
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
    if key in _CARD_CACHE:
        return _CARD_CACHE[key]
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception as exc:  # noqa: BLE001 - every failure is reported as one line
        raise CheckpointError(
            f"not a readable bratseg checkpoint ({type(exc).__name__})", path
        ) from None
    if not isinstance(payload, dict) or payload.get("format") != "bratseg-checkpoint":
        raise CheckpointError("not a bratseg checkpoint", path)
    state = payload.get("state_dict") or {}
    card = {k: v for k, v in payload.items() if k != "state_dict"}
    unique = {
        (t.data_ptr(), tuple(t.shape)): t
        for k, t in state.items()  # aliased entries count once
        if hasattr(t, "numel") and not k.endswith(_BUFFER_SUFFIXES)
    }
    card["parameters"] = int(sum(t.numel() for t in unique.values()))
    card["file_size"] = int(st.st_size)
    del payload, state
    _CARD_CACHE[key] = card
    return card


def _find_val_dice(card: dict[str, Any]) -> dict[str, float] | None:
    """Validation Dice from the card.

    The model card's full-resolution ``provenance.card.val_dice`` (:mod:`bratseg.modelcard`) first,
    else the trainer's provenance/extra ``val_dice`` or ``metrics.val_dice``.
    """
    for section in (card.get("provenance") or {}, card.get("extra") or {}, card):
        if not isinstance(section, dict):
            continue
        for holder in (section.get("card") or {}, section, section.get("metrics") or {}):
            value = holder.get("val_dice") if isinstance(holder, dict) else None
            if isinstance(value, dict) and value:
                try:
                    return {k: float(v) for k, v in value.items() if v is not None}
                except (TypeError, ValueError):
                    continue
    return None


def _entry(path: Path, bundled: bool) -> ModelEntry:
    card = read_card(path)
    return ModelEntry(
        name=_strip_suffix(path.name),
        path=path,
        arch=str(card.get("arch", "?")),
        bundled=bundled,
        val_dice=_find_val_dice(card),
        card=card,
    )


def list_models(include_user: bool = True) -> list[ModelEntry]:
    """Every usable checkpoint: bundled first, then the user's (unreadable files are skipped).

    A user checkpoint with the name of a bundled one replaces it in the list.
    """
    entries: dict[str, ModelEntry] = {}
    folders = [(BUNDLED_DIR, True)] + ([(user_models_dir(), False)] if include_user else [])
    for folder, bundled in folders:
        for path in _checkpoints_in(folder):
            try:
                entry = _entry(path, bundled)
            except CheckpointError as exc:
                logger.warning("skipping %s", exc)
                continue
            if entry.name in entries:
                logger.info("user model %s shadows the bundled one", path)
            entries[entry.name] = entry
    return list(entries.values())


def bundled_models() -> list[ModelEntry]:
    """Only the checkpoints shipped with the package."""
    return [e for e in list_models(include_user=False) if e.bundled]


def default_model_names() -> list[str]:
    """Names of the bundled default model(s); several = an ensemble; empty when none is bundled."""
    names = [_strip_suffix(p.name) for p in _checkpoints_in(BUNDLED_DIR)]
    marker = BUNDLED_DIR / "default.txt"
    if marker.is_file():
        wanted = [
            _strip_suffix(line.strip()) for line in marker.read_text().splitlines() if line.strip()
        ]
        missing = [w for w in wanted if w not in names]
        if missing:
            logger.warning(
                "weights/default.txt names %s, not bundled", ", ".join(map(repr, missing))
            )
        found = [w for w in wanted if w in names]
        if found:
            return found
    return names[:1]


def default_postprocess_overrides() -> dict[str, Any]:
    """Postprocessing settings of the bundled default ensemble (``weights/default-postprocess.json``,
    key ``postprocess``), applied over the first default model's own; empty when absent."""
    path = DEFAULT_SETTINGS_FILE
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text())
    except ValueError as exc:
        logger.warning("%s is not valid JSON (%s); using the models' own postprocessing", path, exc)
        return {}
    return dict(data.get("postprocess") or {})


def is_default_ensemble(paths: Sequence[str | Path]) -> bool:
    """True when ``paths`` are exactly the bundled default model(s), in order."""
    try:
        default = [resolve_model(n).resolve() for n in default_model_names()]
    except Exception:  # a default named but not loadable: nothing is the default
        return False
    return bool(default) and [Path(p).resolve() for p in paths] == default


def ensemble_postprocess(models: Sequence[Any], **overrides: Any) -> Any:
    """The postprocessing an ensemble of loaded checkpoints runs with, ``overrides`` applied.

    The one rule every entry point (``predict``, the Segment and Worklist docks, the batch,
    evaluation) follows: the bundled default ensemble uses its own cross-validated settings
    (:func:`default_postprocess`); any other choice uses its first model's.

    Args:
        models: Loaded checkpoints (:class:`bratseg.checkpoint.LoadedModel`), ensemble order.
        **overrides: PostprocessConfig fields to change (``None`` values are ignored).

    Returns:
        A :class:`bratseg.postprocess.PostprocessConfig`.
    """
    import dataclasses

    from bratseg.postprocess import PostprocessConfig

    if not models:
        raise BratsInputError("no model given: pick at least one model (several = ensemble)")
    if is_default_ensemble([m.path for m in models]):
        config = default_postprocess(models[0])
    else:
        config = PostprocessConfig.from_dict(dict(models[0].meta.get("postprocess") or {}))
    changes = {k: v for k, v in overrides.items() if v is not None}
    return dataclasses.replace(config, **changes) if changes else config


def default_postprocess(first: Any) -> Any:
    """The :class:`bratseg.postprocess.PostprocessConfig` of the default ensemble whose first
    model is the loaded checkpoint ``first``."""
    from bratseg.postprocess import PostprocessConfig

    return PostprocessConfig.from_dict(
        {**dict(first.meta.get("postprocess") or {}), **default_postprocess_overrides()}
    )


def resolve_model(name_or_path: str | Path) -> Path:
    """Checkpoint file for a zoo name or a path.

    Order: an existing file path; a user model of that name; a bundled model of that name.

    Raises:
        BratsInputError: Nothing matches (the message lists the available names).
    """
    text = str(name_or_path)
    candidate = Path(text).expanduser()
    if candidate.is_file():
        return candidate
    looks_like_path = os.sep in text or text.endswith(CHECKPOINT_SUFFIXES)
    name = _strip_suffix(candidate.name)
    for folder in (user_models_dir(), BUNDLED_DIR):
        for path in _checkpoints_in(folder):
            if _strip_suffix(path.name) == name:
                return path
    if looks_like_path:
        raise BratsInputError("checkpoint file not found", candidate)
    names = [
        _strip_suffix(p.name) for f in (BUNDLED_DIR, user_models_dir()) for p in _checkpoints_in(f)
    ]
    known = ", ".join(sorted(set(names))) or "none installed"
    raise BratsInputError(
        f"unknown model {text!r} (available: {known}; or pass a checkpoint file path)"
    )


def no_default_model_message() -> str:
    """Explanation used when no model was given and none is bundled."""
    return (
        "no model given and no bundled default model is installed (src/bratseg/weights/ is empty); "
        f"pass --model NAME_OR_CHECKPOINT.pt (a checkpoint file, or a name from `napari-brats models`; "
        f"user models live in {user_models_dir()})"
    )
