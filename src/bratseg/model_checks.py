"""Checks of an untrusted checkpoint, run before any network is built or any weight is used.

A checkpoint file is user input: its metadata decides which channel feeds which input, how
labels are written and how probabilities are thresholded, and its architecture config decides
how much memory building the network takes. :func:`check_metadata`,
:func:`check_architecture_config` and :func:`check_finite_weights` refuse what the engine was
not made for with a :class:`bratseg.errors.CheckpointError` naming the file (exit code 2 from the
CLI), instead of a silently wrong segmentation or an allocation of many gigabytes.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from bratseg.errors import BratsInputError, CheckpointError
from bratseg.io import MODALITIES
from bratseg.labels import CONVENTIONS
from bratseg.models.config import ModelConfig
from bratseg.models.registry import build_model

#: Largest integer any architecture config field may hold (channel counts, groups, sizes).
MAX_CONFIG_INT = 4096
#: Most resolution levels (entries of ``filters`` / ``blocks_*``, or ``levels`` / ``stages``).
MAX_DEPTH = 8
#: Most residual blocks per level (``blocks_down`` / ``blocks_up`` entries).
MAX_BLOCKS_PER_LEVEL = 16
#: Most learnable parameters a checkpoint's network may have (the largest paper preset,
#: lowrank-resunet dense, has 92 M; 200 M float32 weights are 800 MB).
MAX_PARAMETERS = 200_000_000
#: Config fields counting resolution levels.
_DEPTH_FIELDS = ("levels", "stages")
#: Parameter counts of configs already checked, by (architecture, config repr).
_COUNTED: dict[tuple[str, str], int] = {}


def check_metadata(payload: Mapping[str, Any], path: Path) -> None:
    """Refuse checkpoint metadata the engine cannot use as it says.

    Checks: ``modalities`` is an ordering of the four BraTS channels (:data:`MODALITIES`, each
    once); ``convention`` is a known label convention; ``postprocess`` and ``preprocess`` build
    valid configs (types and ranges); ``orientation``, when present, is three axis codes.

    Args:
        payload: The checkpoint dict (``state_dict`` is not looked at).
        path: The file, named in every error.

    Raises:
        CheckpointError: What is wrong, naming ``path``.
    """
    from bratseg.orientation import parse_axcodes
    from bratseg.postprocess import PostprocessConfig
    from bratseg.preprocess import PreprocessConfig

    modalities = payload.get("modalities")
    if (
        not isinstance(modalities, (list, tuple))
        or not all(isinstance(m, str) for m in modalities)
        or sorted(modalities) != sorted(MODALITIES)
    ):
        raise CheckpointError(
            f"checkpoint modalities {modalities!r} are not an ordering of "
            f"{', '.join(MODALITIES)} (each once); the file is damaged or not a BraTS model",
            path,
        )
    convention = payload.get("convention")
    if convention not in CONVENTIONS:
        raise CheckpointError(
            f"checkpoint label convention {convention!r} is unknown "
            f"(expected one of {', '.join(CONVENTIONS)})",
            path,
        )
    for key, cls in (("postprocess", PostprocessConfig), ("preprocess", PreprocessConfig)):
        section = payload.get(key)
        if section is not None and not isinstance(section, Mapping):
            raise CheckpointError(f"checkpoint {key} settings are not a mapping", path)
        try:
            cls.from_dict(dict(section or {}))
        except (BratsInputError, ValueError, TypeError) as exc:
            raise CheckpointError(f"invalid checkpoint {key} settings: {exc}", path) from None
    orientation = payload.get("orientation")
    if orientation:
        try:
            parse_axcodes(orientation)
        except (BratsInputError, ValueError, TypeError) as exc:
            raise CheckpointError(f"invalid checkpoint orientation: {exc}", path) from None


def _bound_value(name: str, value: Any, path: Path) -> None:
    """Refuse a config value out of the bounds (see the module constants)."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return
    if isinstance(value, float):
        if not math.isfinite(value) or not 0.0 <= value <= MAX_CONFIG_INT:
            raise CheckpointError(f"architecture config {name}={value!r} is out of range", path)
        return
    if isinstance(value, int):
        limit = MAX_DEPTH if name in _DEPTH_FIELDS else MAX_CONFIG_INT
        if not 0 <= value <= limit:
            raise CheckpointError(
                f"architecture config {name}={value} is out of range (0..{limit})", path
            )
        return
    if isinstance(value, (list, tuple)):
        if len(value) > MAX_DEPTH:
            raise CheckpointError(
                f"architecture config {name} has {len(value)} entries (at most {MAX_DEPTH})", path
            )
        limit = MAX_BLOCKS_PER_LEVEL if name.startswith("blocks") else MAX_CONFIG_INT
        for item in value:
            if isinstance(item, bool) or not isinstance(item, int) or not 1 <= item <= limit:
                raise CheckpointError(
                    f"architecture config {name}={list(value)} holds {item!r}; "
                    f"each entry must be an integer in 1..{limit}",
                    path,
                )


def check_architecture_config(arch: str, config: ModelConfig, path: Path) -> int:
    """Bound an untrusted architecture config, then count its parameters without memory.

    Every integer field lies in 0..:data:`MAX_CONFIG_INT` (level counts up to :data:`MAX_DEPTH`),
    list fields have at most :data:`MAX_DEPTH` positive entries, floats are finite and
    non-negative. The network is then built on PyTorch's ``meta`` device (shapes only, nothing
    allocated) and its parameters counted against :data:`MAX_PARAMETERS`.

    Args:
        arch: Registry name of the architecture.
        config: The config dataclass read from the checkpoint.
        path: The file, named in every error.

    Returns:
        The number of learnable parameters the network will have.

    Raises:
        CheckpointError: A value out of bounds, a config the network cannot be built from, or
            too many parameters.
    """
    values = config.to_dict()
    for name, value in values.items():
        _bound_value(name, value, path)
    key = (arch, repr(values))
    if key in _COUNTED:  # an ensemble's members share one config
        return _COUNTED[key]
    try:
        with torch.device("meta"):
            network = build_model(arch, config)
    except (RuntimeError, ValueError, TypeError, IndexError, ZeroDivisionError) as exc:
        first = str(exc).splitlines()[0][:160] if str(exc) else type(exc).__name__
        raise CheckpointError(f"invalid {arch} config: {first}", path) from None
    parameters = sum(p.numel() for p in network.parameters())
    if parameters > MAX_PARAMETERS:
        raise CheckpointError(
            f"architecture config of {arch} describes {parameters:,} parameters "
            f"(at most {MAX_PARAMETERS:,}); the file is damaged or not a bratseg model",
            path,
        )
    _COUNTED[key] = int(parameters)
    return int(parameters)


def check_finite_weights(state: Mapping[str, torch.Tensor], path: Path) -> None:
    """Refuse weights holding NaN or infinity (a damaged file or a diverged training run).

    Args:
        state: The checkpoint's ``state_dict``.
        path: The file, named in the error.

    Raises:
        CheckpointError: Naming how many values are not finite and the first tensor holding one.
    """
    bad_total, first = 0, None
    for key, tensor in state.items():
        if not isinstance(tensor, torch.Tensor) or not tensor.is_floating_point():
            continue
        # NaN and infinity propagate through a sum: one cheap pass, and an exact count only when
        # the sum is not finite (a damaged tensor, or finite weights summing past 3e38).
        if math.isfinite(float(tensor.sum())):
            continue
        bad = int(tensor.numel() - torch.isfinite(tensor).sum().item())
        if bad:
            bad_total += bad
            first = first or key
    if bad_total:
        raise CheckpointError(
            f"{bad_total} weight(s) are not finite (NaN or infinity), e.g. in {first}: the file is "
            "damaged or its training diverged; use another checkpoint",
            path,
        )


__all__ = [
    "MAX_CONFIG_INT",
    "MAX_DEPTH",
    "MAX_PARAMETERS",
    "check_architecture_config",
    "check_finite_weights",
    "check_metadata",
]
