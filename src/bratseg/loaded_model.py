"""A checkpoint loaded and ready to predict, and what its metadata tells inference.

:class:`LoadedModel` (made by :func:`bratseg.checkpoint.load_checkpoint`) is the one typed home
of "what a checkpoint says": its architecture, modalities and label convention, its pre- and
postprocessing, and what inference derives from them (display name, channel order, orientation,
the network's size divisor and input channels). :func:`size_divisor` and :func:`in_channels`
also serve a network still being trained (:class:`bratseg.training.setup.InitialModel`), which
has a spec and a config but no checkpoint yet.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from torch import nn

from bratseg.errors import BratsInputError
from bratseg.io.channels import MODALITIES
from bratseg.models.config import ModelConfig
from bratseg.models.registry import ArchitectureSpec
from bratseg.orientation import BRATS_AXCODES, Reorientation, parse_axcodes, reorientation
from bratseg.preprocess import PreprocessConfig, effective_pad_multiple

logger = logging.getLogger(__name__)

#: File suffixes dropped from a checkpoint's file name to give the model's display name.
CHECKPOINT_SUFFIXES = (".pt", ".pth", ".ckpt")


class Network(Protocol):
    """A network's architecture and config (a :class:`LoadedModel`, or a network in training)."""

    @property
    def spec(self) -> ArchitectureSpec: ...

    @property
    def config(self) -> ModelConfig: ...


def size_divisor(net: Network) -> int:
    """Spatial multiple the network input needs (the config is authoritative over the spec)."""
    value = getattr(getattr(net, "config", None), "size_divisor", None)
    return int(value if value is not None else getattr(net.spec, "size_divisor", 16))


def in_channels(net: Network) -> int:
    """Input channels of the network (the config is authoritative over the spec)."""
    config: Any = getattr(net, "config", None)
    value = getattr(config, "in_channels", None)
    if value is None and isinstance(config, dict):
        value = config.get("in_channels")
    return int(value if value is not None else net.spec.in_channels)


@dataclass
class LoadedModel:
    """A checkpoint loaded and ready to predict.

    Attributes:
        model: the network in eval mode, on the requested device.
        spec: its :class:`ArchitectureSpec`.
        config: its config dataclass.
        meta: all metadata (arch, config, modalities, convention, postprocess, preprocess,
            provenance, extra, format_version, created, bratseg_version, half).
        path: the checkpoint file.
        sha256: hex digest of the file.
    """

    model: nn.Module
    spec: ArchitectureSpec
    config: ModelConfig
    meta: dict[str, Any]
    path: Path
    sha256: str

    @property
    def arch(self) -> str:
        return self.spec.name

    @property
    def modalities(self) -> tuple[str, ...]:
        return tuple(self.meta["modalities"])

    @property
    def convention(self) -> str:
        return self.meta["convention"]

    @property
    def postprocess(self) -> dict[str, Any]:
        return dict(self.meta["postprocess"])

    @property
    def preprocess(self) -> dict[str, Any]:
        return dict(self.meta["preprocess"])

    @property
    def provenance(self) -> dict[str, Any]:
        return dict(self.meta["provenance"])

    # ------------------------------------------------------------------ for inference
    @property
    def name(self) -> str:
        """Display name: the checkpoint file's stem, else the architecture."""
        if self.path:
            name = Path(self.path).name
            for suffix in CHECKPOINT_SUFFIXES:
                if name.endswith(suffix):
                    return name[: -len(suffix)]
            return name
        return str(self.meta.get("arch", "model"))

    @property
    def size_divisor(self) -> int:
        """Spatial multiple the network input needs (see :func:`size_divisor`)."""
        return size_divisor(self)

    @property
    def in_channels(self) -> int:
        """Input channels of the network (see :func:`in_channels`)."""
        return in_channels(self)

    @property
    def orientation(self) -> tuple[str, str, str]:
        """Axis codes the model was trained in (checkpoints that record none: the BraTS storage)."""
        return parse_axcodes(self.meta.get("orientation") or BRATS_AXCODES)

    @property
    def channel_order(self) -> list[int] | None:
        """Indices reordering the case channels (:data:`MODALITIES` order) to the checkpoint's
        order; ``None`` when they are the same.

        Raises:
            BratsInputError: The checkpoint needs a modality the engine does not know.
        """
        wanted = list(self.meta.get("modalities") or MODALITIES)
        if wanted == list(MODALITIES):
            return None
        missing = [m for m in wanted if m not in MODALITIES]
        if missing:
            raise BratsInputError(
                f"model {self.name} needs unknown modalities {missing}", self.path
            )
        return [MODALITIES.index(m) for m in wanted]

    def preprocess_config(self) -> PreprocessConfig:
        """The preprocessing the model expects, reconciled with its architecture.

        The pad multiple becomes a multiple of the network's size divisor, and the foreground
        channel follows the architecture's input channel count (a new config each call).
        """
        cfg = PreprocessConfig.from_dict(self.meta.get("preprocess"))
        cfg.pad_multiple = effective_pad_multiple(cfg, self.size_divisor)
        n_in = self.in_channels
        n_mod = len(self.meta.get("modalities") or MODALITIES)
        want_fg = n_in == n_mod + 1
        if want_fg != cfg.foreground_channel:
            logger.warning(
                "%s: foreground_channel=%s does not fit %d input channels; using %s",
                self.name,
                cfg.foreground_channel,
                n_in,
                want_fg,
            )
            cfg.foreground_channel = want_fg
        return cfg

    def reorientation(self, affine: np.ndarray | None) -> Reorientation | None:
        """Flips/permutation from the case's storage (``affine``) to the model's orientation.

        ``None`` when the case carries no affine (arrays given without geometry are taken as
        they are).
        """
        if affine is None:
            return None
        return reorientation(affine, self.orientation)


__all__ = ["CHECKPOINT_SUFFIXES", "LoadedModel", "Network", "in_channels", "size_divisor"]
