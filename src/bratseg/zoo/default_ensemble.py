"""The bundled default: its member models, its postprocessing and its card.

The default is named in ``weights/default.txt``, one bundled model per line; several lines are an
ensemble whose probabilities are averaged (failing the file, the first bundled model by name). Its
own postprocessing settings, chosen for the ensemble by cross-validation, and its card are in
``weights/default-postprocess.json`` (the settings override the first member's). Each member has
its own model card; the ensemble's card says what only the ensemble can: its members, the postprocessing
chosen for it on cross-validation, and the cross-validation estimate of the whole recipe (each
case predicted by the fold model that held it out), per fold, pooled and per grade.
``napari-brats models default`` prints it.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bratseg.errors import BratsInputError, CheckpointError
from bratseg.labels import REGIONS
from bratseg.user_folders import user_models_dir
from bratseg.zoo import catalogue
from bratseg.zoo.catalogue import checkpoints_in, model_name_of

if TYPE_CHECKING:
    from bratseg.checkpoint import LoadedModel
    from bratseg.postprocess import PostprocessConfig

logger = logging.getLogger(__name__)

#: The default ensemble's settings and card (postprocessing, cross-validation estimate).
DEFAULT_SETTINGS_FILE = catalogue.BUNDLED_DIR / "default-postprocess.json"

#: The name under which ``napari-brats models`` shows the ensemble's card.
DEFAULT_CARD_NAME = "default"


def default_ensemble_card() -> dict[str, Any]:
    """The default ensemble's settings file as a dict.

    Raises:
        BratsInputError: No settings file is bundled, or it is not valid JSON.
    """
    path = DEFAULT_SETTINGS_FILE
    if not path.is_file():
        raise BratsInputError("no default ensemble card is bundled", path)
    try:
        return dict(json.loads(path.read_text()))
    except ValueError as exc:
        raise BratsInputError(f"not valid JSON ({exc})", path) from exc


def default_model_names() -> list[str]:
    """Names of the bundled default model(s); several = an ensemble; empty when none is bundled."""
    names = [model_name_of(p.name) for p in checkpoints_in(catalogue.BUNDLED_DIR)]
    marker = catalogue.BUNDLED_DIR / "default.txt"
    if marker.is_file():
        wanted = [
            model_name_of(line.strip()) for line in marker.read_text().splitlines() if line.strip()
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


def default_model_paths() -> list[Path]:
    """The bundled files of the default model(s), in ensemble order (never a user or current
    directory file of the same name)."""
    files = {model_name_of(p.name): p for p in checkpoints_in(catalogue.BUNDLED_DIR)}
    return [files[name] for name in default_model_names()]


def bundled_sha256(path: str | Path) -> str | None:
    """The sha256 a bundled checkpoint's card (``NAME.json`` beside it) gives for its file;
    ``None`` when the card is missing, unreadable or names no digest."""
    card = Path(path).with_suffix(".json")
    try:
        value = json.loads(card.read_text()).get("sha256")
    except (OSError, ValueError, AttributeError):
        return None
    return str(value) if value else None


def verify_bundled(models: Sequence[LoadedModel]) -> list[LoadedModel]:
    """Refuse a loaded checkpoint from the bundled folder whose file is not the one its card
    describes (its sha256 differs from the card's, or the card names none).

    Args:
        models: Loaded checkpoints; those outside the bundled folder are not looked at.

    Returns:
        ``models`` as a list.

    Raises:
        CheckpointError: Naming the modified or replaced bundled file.
    """
    bundled_dir = catalogue.BUNDLED_DIR.resolve()
    for loaded in models:
        path = Path(loaded.path)
        if path.resolve().parent != bundled_dir:
            continue
        expected = bundled_sha256(path)
        if expected is None:
            raise CheckpointError(
                "bundled model has no sha256 in its card (the .json beside it): the installation "
                "is incomplete; reinstall napari-brats",
                path,
            )
        if loaded.sha256 != expected:
            raise CheckpointError(
                f"bundled model file was modified or replaced (sha256 {loaded.sha256[:12]}..., "
                f"its card says {expected[:12]}...); reinstall napari-brats",
                path,
            )
    return list(models)


def load_default_models(map_location: str = "cpu") -> list[LoadedModel]:
    """Load the bundled default model(s), each verified against the sha256 of its card.

    Raises:
        BratsInputError: No default is bundled (:func:`no_default_model_message`).
        CheckpointError: A member cannot be loaded or is not the file its card describes.
    """
    from bratseg.checkpoint import load_checkpoint

    paths = default_model_paths()
    if not paths:
        raise BratsInputError(no_default_model_message())
    return verify_bundled([load_checkpoint(p, map_location) for p in paths])


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
    default = [p.resolve() for p in default_model_paths()]
    return bool(default) and [Path(p).resolve() for p in paths] == default


def ensemble_postprocess(models: Sequence[LoadedModel], **overrides: Any) -> PostprocessConfig:
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
    from bratseg.postprocess import PostprocessConfig

    if not models:
        raise BratsInputError("no model given: pick at least one model (several = ensemble)")
    try:
        if is_default_ensemble([m.path for m in models]):
            config = default_postprocess(models[0])
        else:
            config = PostprocessConfig.from_dict(dict(models[0].meta.get("postprocess") or {}))
    except BratsInputError as exc:
        if exc.path is not None:
            raise
        # a bad value stored in the checkpoint: say which file holds it
        raise BratsInputError(
            f"{exc.reason} (in its stored postprocessing)", models[0].path
        ) from None
    changes = {k: v for k, v in overrides.items() if v is not None}
    return dataclasses.replace(config, **changes) if changes else config


def default_postprocess(first: LoadedModel) -> PostprocessConfig:
    """The :class:`bratseg.postprocess.PostprocessConfig` of the default ensemble whose first
    model is the loaded checkpoint ``first``."""
    from bratseg.postprocess import PostprocessConfig

    return PostprocessConfig.from_dict(
        {**dict(first.meta.get("postprocess") or {}), **default_postprocess_overrides()}
    )


def no_default_model_message() -> str:
    """Explanation used when no model was given and none is bundled."""
    return (
        "no model given and no bundled default model is installed (src/bratseg/weights/ is empty); "
        f"pass --model NAME_OR_CHECKPOINT.pt (a checkpoint file, or a name from `napari-brats models`; "
        f"user models live in {user_models_dir()})"
    )


def _regions(values: dict[str, Any] | None, fmt: str = ".3f") -> str:
    if not values:
        return "-"
    return " / ".join(f"{float(values[r]):{fmt}}" for r in REGIONS if values.get(r) is not None)


def format_ensemble_card(card: dict[str, Any]) -> str:
    """The ensemble's card as readable text.

    Args:
        card: The settings file's content (see :func:`default_ensemble_card`).

    Returns:
        Multi-line text: members, postprocessing, data and protocol, cross-validation table
        (Dice and HD95 WT / TC / ET per group, ET false positives), training and speed.
    """
    cv = card.get("cv_estimate") or {}
    info = card.get("card") or {}
    lines = [
        f"default: the ensemble of {' + '.join(card.get('models') or ['?'])} "
        "(region probabilities averaged)",
        f"  postprocessing: {json.dumps(card.get('postprocess') or {}, sort_keys=True)}",
        f"  chosen on:      {card.get('chosen_on', '?')}",
    ]
    if info.get("data"):
        data = info["data"]
        lines.append(
            f"  data:           {len(data.get('cases') or [])} labelled cases "
            f"({', '.join(data.get('datasets') or [])}); protocol {info.get('protocol', '?')}"
        )
    lines.append(f"  estimate:       {cv.get('protocol', '?')}")
    groups = cv.get("groups") or {}
    if groups:
        lines.append(
            "  group                                  n   Dice WT / TC / ET      HD95 WT / TC / ET    ET FP"
        )
        for name, g in groups.items():
            lines.append(
                f"  {name:<36} {g.get('n', 0):>3}   {_regions(g.get('dice')):<22} "
                f"{_regions(g.get('hd95'), '.1f'):<20} {g.get('et_fp', '-')}"
            )
    else:
        lines.append(f"  Dice WT / TC / ET: {_regions(cv.get('dice'))}")
    for key, label in (
        ("training", "training"),
        ("device", "device"),
        ("cpu_seconds_per_case", "CPU s per case"),
        ("tta", "TTA"),
        ("baseline", "compared with"),
    ):
        if info.get(key) is not None:
            lines.append(f"  {label + ':':<16}{info[key]}")
    if card.get("remark"):
        lines.append(f"  remark:         {card['remark']}")
    return "\n".join(lines)


__all__ = [
    "DEFAULT_CARD_NAME",
    "DEFAULT_SETTINGS_FILE",
    "bundled_sha256",
    "default_ensemble_card",
    "default_model_names",
    "default_model_paths",
    "default_postprocess",
    "default_postprocess_overrides",
    "ensemble_postprocess",
    "format_ensemble_card",
    "is_default_ensemble",
    "load_default_models",
    "no_default_model_message",
    "verify_bundled",
]
