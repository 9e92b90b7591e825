"""Registry of the seed architectures: specs, presets and :func:`build_model`."""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from torch import nn

from bratseg.models.config import (
    CascadeUNetConfig,
    DSUNetConfig,
    LowRankResUNetConfig,
    ModelConfig,
    NNUNetConfig,
    SegResNetVAEConfig,
)
from bratseg.references import paper_title

logger = logging.getLogger(__name__)

OutputKind = Literal["regions", "classes"]


@dataclass
class ArchitectureSpec:
    """What the engine needs to know about one architecture.

    Attributes:
        name: registry key, e.g. "nnunet".
        paper: seed number and authors.
        config_cls: the config dataclass.
        output_kind: "regions" (3 sigmoid logits WT, TC, ET) or "classes" (4 softmax logits in
            ``bratseg.labels.CLASSES`` order).
        in_channels: input channels of the default ("small") preset; ``config.in_channels`` is
            authoritative (nnunet: 5 with the foreground channel).
        presets: "paper" (sizes of the paper), "small" (laptop CPU), "tiny" (tests).
        default_postprocess: PostprocessConfig keyword arguments that fit this output.
        size_divisor: spatial multiple for the "small" preset; ``config.size_divisor`` is
            authoritative.
        description: one line.
        factory: config -> nn.Module.
    """

    name: str
    paper: str
    config_cls: type[ModelConfig]
    output_kind: OutputKind
    in_channels: int
    presets: dict[str, ModelConfig]
    default_postprocess: dict[str, Any]
    size_divisor: int
    description: str
    factory: Callable[[Any], nn.Module] = field(  # type: ignore[assignment]
        repr=False, default=None
    )

    @property
    def out_channels(self) -> int:
        """K: 3 for regions, 4 for classes."""
        return self.presets["small"].out_channels  # type: ignore[attr-defined]

    def make_config(
        self, config: ModelConfig | dict[str, Any] | None = None, preset: str = "small"
    ) -> ModelConfig:
        """Resolve a config: dataclass as is, dict merged over the preset, None -> preset."""
        if isinstance(config, self.config_cls):
            return config
        if preset not in self.presets:
            have = sorted(self.presets)
            raise ValueError(f"{self.name}: unknown preset {preset!r} (have {have})")
        base = self.presets[preset]
        if config is None:
            return base.replace()
        if isinstance(config, dict):
            return self.config_cls.from_dict({**base.to_dict(), **config})
        raise TypeError(f"{self.name}: config must be {self.config_cls.__name__}, dict or None")


ARCHITECTURES: dict[str, ArchitectureSpec] = {}


def register(spec: ArchitectureSpec) -> ArchitectureSpec:
    """Add ``spec`` to :data:`ARCHITECTURES` (name must be new)."""
    if spec.name in ARCHITECTURES:
        raise ValueError(f"architecture {spec.name!r} already registered")
    ARCHITECTURES[spec.name] = spec
    return spec


def get_architecture(name: str) -> ArchitectureSpec:
    """Spec by name; ``KeyError`` naming the known architectures otherwise."""
    try:
        return ARCHITECTURES[name]
    except KeyError:
        known = ", ".join(ARCHITECTURES)
        raise KeyError(f"unknown architecture {name!r}; known: {known}") from None


def list_architectures() -> list[ArchitectureSpec]:
    """All registered specs in registration order."""
    return list(ARCHITECTURES.values())


def build_model(
    name: str, config: ModelConfig | dict[str, Any] | None = None, preset: str = "small"
) -> nn.Module:
    """Build architecture ``name``.

    Args:
        name: registry key (see :func:`list_architectures`).
        config: a config dataclass (used as is), a dict (overrides on top of ``preset``) or None.
        preset: "paper", "small" or "tiny".

    Returns:
        The network in train mode (``model.config`` holds its config). Forward contract: eval ->
        logits (B, K, X, Y, Z); train -> dict with "logits" and optional "deep", "stages", "vae".
    """
    spec = get_architecture(name)
    cfg = spec.make_config(config, preset)
    model = spec.factory(cfg)
    model.config = cfg  # type: ignore[assignment]
    return model


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


# --- the five seed architectures -------------------------------------------------------------

#: Hierarchical thresholds at PostprocessConfig's defaults (Futrega et al. 2021's 0.45 / 0.40 /
#: 0.45 and its ET component rule): the values live in bratseg.postprocess only.
_REGION_POSTPROCESS = {"mode": "hierarchical"}


def _network(module: str, cls: str) -> Callable[[Any], nn.Module]:
    """A factory that imports ``bratseg.models.nets.<module>`` only when a network is built."""

    def factory(cfg: Any) -> nn.Module:
        return getattr(importlib.import_module(f"bratseg.models.nets.{module}"), cls)(cfg)

    factory.__name__ = f"build_{module}"
    return factory


def _thresholds(value: float, **rules: Any) -> dict[str, Any]:
    """Hierarchical postprocessing with all three region thresholds at ``value``, plus ``rules``."""
    return {
        "mode": "hierarchical",
        "wt_threshold": value,
        "tc_threshold": value,
        "et_threshold": value,
        **rules,
    }


register(
    ArchitectureSpec(
        name="lowrank-resunet",
        paper=paper_title("ashtari2021"),
        config_cls=LowRankResUNetConfig,
        output_kind="classes",
        in_channels=4,
        presets={
            "paper": LowRankResUNetConfig(),
            "small": LowRankResUNetConfig(base_filters=16),
            "tiny": LowRankResUNetConfig(base_filters=4, levels=3),
        },
        # Ashtari et al. 2021: hierarchical thresholding of WT, then TC inside WT, then ET inside TC
        default_postprocess=_thresholds(0.5),
        size_divisor=16,
        description="Res-U-Net, 4 pooling levels, CP low-rank 3x3x3 convs (alpha 0.5), 4-class softmax",
        factory=_network("lowrank_resunet", "LowRankResUNet"),
    )
)

register(
    ArchitectureSpec(
        name="cascade-unet",
        paper=paper_title("jiang2020"),
        config_cls=CascadeUNetConfig,
        output_kind="regions",
        in_channels=4,
        presets={
            "paper": CascadeUNetConfig(),
            "small": CascadeUNetConfig(base_filters=8),
            "tiny": CascadeUNetConfig(base_filters=2, blocks_down=(1, 1, 1), groups=2),
        },
        # Jiang et al. 2020 thresholds regions at 0.5 and turns small ET into NCR (threshold tuned per
        # experiment, no value given: et_min_volume stays 0 until a checkpoint sets it).
        default_postprocess=_thresholds(0.5, et_min_volume=0, et_component_rule=False),
        size_divisor=8,
        description="Two-stage cascaded asymmetric residual U-Net (GroupNorm, blocks 1-2-2-4), "
        "sigmoid regions",
        factory=_network("cascade_unet", "CascadeUNet"),
    )
)

register(
    ArchitectureSpec(
        name="ds-unet",
        paper=paper_title("henry2021"),
        config_cls=DSUNetConfig,
        output_kind="regions",
        in_channels=4,
        presets={
            "paper": DSUNetConfig(),
            "small": DSUNetConfig(base_filters=16, groups=8),
            "tiny": DSUNetConfig(base_filters=4, stages=3, groups=2),
        },
        # Henry et al. 2021: threshold 0.5, then NET = TC - ET, ED = WT - TC
        default_postprocess=_thresholds(0.5, et_component_rule=False),
        size_divisor=8,
        description="3D U-Net with dilated pseudo-fifth stage and 4 deep-supervision heads, "
        "sigmoid regions",
        factory=_network("ds_unet", "DSUNet"),
    )
)

register(
    ArchitectureSpec(
        name="nnunet",
        paper=paper_title("futrega2021"),
        config_cls=NNUNetConfig,
        output_kind="regions",
        in_channels=5,
        presets={
            "paper": NNUNetConfig(),
            "small": NNUNetConfig(filters=(16, 32, 64, 128, 256)),
            "tiny": NNUNetConfig(filters=(4, 8, 12, 16)),
        },
        # Futrega et al. 2021: its thresholds and ET component rule, PostprocessConfig's defaults
        default_postprocess=dict(_REGION_POSTPROCESS),
        size_divisor=16,
        description="nnU-Net-style U-Net (MONAI DynUNet layout), InstanceNorm + LeakyReLU, 2 deep-supervision "
        "heads, foreground one-hot 5th channel, sigmoid regions",
        factory=_network("nnunet", "OptimizedUNet"),
    )
)

register(
    ArchitectureSpec(
        name="segresnet-vae",
        paper=paper_title("adeniji_liu"),
        config_cls=SegResNetVAEConfig,
        output_kind="regions",
        in_channels=4,
        presets={
            "paper": SegResNetVAEConfig(),
            "small": SegResNetVAEConfig(init_filters=8, input_image_size=(96, 96, 96)),
            "tiny": SegResNetVAEConfig(
                init_filters=4,
                groups=4,
                blocks_down=(1, 1, 1),
                blocks_up=(1, 1),
                input_image_size=(16, 16, 16),
                vae_nz=16,
            ),
        },
        default_postprocess=_thresholds(0.5, et_component_rule=False),
        size_divisor=8,
        description="SegResNet encoder-decoder with training-only VAE branch, squeeze-excitation and "
        "max-pool downsampling, sigmoid regions",
        factory=_network("segresnet_vae", "SegResNetVAENet"),
    )
)
