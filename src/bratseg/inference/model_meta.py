"""What a loaded checkpoint tells inference about itself: name, preprocessing, orientation, channels.

Functions over a :class:`bratseg.checkpoint.LoadedModel` (its ``meta``, ``config`` and ``spec``),
used by the engine (:mod:`bratseg.inference.engine`) for each member of an ensemble.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from bratseg.errors import BratsInputError
from bratseg.orientation import Reorientation, reorientation
from bratseg.preprocess import PreprocessConfig, effective_pad_multiple

logger = logging.getLogger(__name__)


def model_name(loaded: Any) -> str:
    """Display name of a LoadedModel: its checkpoint file stem, else its architecture."""
    path = getattr(loaded, "path", None)
    if path:
        name = Path(path).name
        for suffix in (".pt", ".pth", ".ckpt"):
            if name.endswith(suffix):
                return name[: -len(suffix)]
        return name
    return str(loaded.meta.get("arch", "model"))


def model_preprocess_config(loaded: Any) -> PreprocessConfig:
    """The preprocessing a LoadedModel expects, reconciled with its architecture.

    The pad multiple becomes a multiple of the network's size divisor, and the foreground channel
    follows the architecture's input channel count.
    """
    cfg = PreprocessConfig.from_dict(loaded.meta.get("preprocess"))
    cfg.pad_multiple = effective_pad_multiple(cfg, size_divisor(loaded))
    n_in = in_channels(loaded)
    from bratseg.io import MODALITIES

    n_mod = len(loaded.meta.get("modalities") or MODALITIES)
    want_fg = n_in == n_mod + 1
    if want_fg != cfg.foreground_channel:
        logger.warning(
            "%s: foreground_channel=%s does not fit %d input channels; using %s",
            model_name(loaded),
            cfg.foreground_channel,
            n_in,
            want_fg,
        )
        cfg.foreground_channel = want_fg
    return cfg


def model_orientation(loaded: Any) -> tuple[str, str, str]:
    """Axis codes the model was trained in (checkpoints that record none: the BraTS storage)."""
    from bratseg.orientation import BRATS_AXCODES, parse_axcodes

    return parse_axcodes(loaded.meta.get("orientation") or BRATS_AXCODES)


def model_reorientation(loaded: Any, affine: np.ndarray | None) -> Reorientation | None:
    """Flips/permutation from the case's storage (``affine``) to the model's orientation.

    ``None`` when the case carries no affine (arrays given without geometry are taken as they
    are).
    """
    if affine is None:
        return None
    return reorientation(affine, model_orientation(loaded))


def size_divisor(loaded: Any) -> int:
    """Spatial multiple the network input needs (the config is authoritative over the spec)."""
    value = getattr(getattr(loaded, "config", None), "size_divisor", None)
    return int(value if value is not None else getattr(loaded.spec, "size_divisor", 16))


def in_channels(loaded: Any) -> int:
    config = getattr(loaded, "config", None)
    value = getattr(config, "in_channels", None)
    if value is None and isinstance(config, dict):
        value = config.get("in_channels")
    return int(value if value is not None else loaded.spec.in_channels)


def channel_order(loaded: Any) -> list[int] | None:
    """Indices reordering the case channels (io.MODALITIES order) to the checkpoint's order."""
    from bratseg.io import MODALITIES

    wanted = list(loaded.meta.get("modalities") or MODALITIES)
    if wanted == list(MODALITIES):
        return None
    missing = [m for m in wanted if m not in MODALITIES]
    if missing:
        raise BratsInputError(
            f"model {model_name(loaded)} needs unknown modalities {missing}", loaded.path
        )
    return [MODALITIES.index(m) for m in wanted]


__all__ = [
    "channel_order",
    "in_channels",
    "model_name",
    "model_orientation",
    "model_preprocess_config",
    "model_reorientation",
    "size_divisor",
]
