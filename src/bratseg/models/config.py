"""Typed configurations, one dataclass per architecture, with plain-dict round trips.

Each config knows its number of input channels (``in_channels``), output channels and the
multiple its input sizes must have (``size_divisor``). Paper defaults cite their seed.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar

T = TypeVar("T", bound="ModelConfig")


def _plain(value: Any) -> Any:
    """Tuples -> lists recursively, so the dict is JSON-able and weights_only-loadable."""
    if isinstance(value, (tuple, list)):
        return [_plain(v) for v in value]
    return value


@dataclass
class ModelConfig:
    """Common base: ``to_dict`` / ``from_dict`` and the shape facts every network exposes."""

    arch: ClassVar[str] = ""

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (lists, numbers, strings, bools) of all fields."""
        return {f.name: _plain(getattr(self, f.name)) for f in dataclasses.fields(self)}

    @classmethod
    def from_dict(cls: type[T], data: dict[str, Any]) -> T:
        """Build from a dict as written by :meth:`to_dict` (strict: see
        :func:`bratseg.configdict.config_from_dict`; errors are ``BratsInputError``, a ``ValueError``)."""
        from bratseg.configdict import config_from_dict

        return config_from_dict(cls, data, f"{cls.__name__}")

    def replace(self: T, **changes: Any) -> T:
        """Copy with some fields changed."""
        return dataclasses.replace(self, **changes)

    @property
    def size_divisor(self) -> int:  # pragma: no cover - overridden
        """Spatial sizes of the input must be multiples of this."""
        raise NotImplementedError


@dataclass
class LowRankResUNetConfig(ModelConfig):
    """Res-U-Net with CP low-rank convolutions (Ashtari et al. 2021).

    Attributes:
        in_channels: input modalities (4).
        out_channels: class logits (4: background, NCR, ED, ET; softmax).
        base_filters: F, channels of the first level, doubled per level (Ashtari et al. 2021: F = 60).
        levels: resolution levels. Ashtari et al. 2021 (Fig. 2a) has 4 down- and 4 up-sampling steps, i.e.
            5 resolutions: with F = 60 and 3x3x3 transposed convs this gives 92.2 M parameters dense
            and 21.1 M low-rank, matching Table 1 of Ashtari et al. 2021 (92.2 M / 20.8 M).
        lowrank_alpha: CP rank ratio R / C_in for every 3x3x3 conv except the first level
            (Ashtari et al. 2021: 0.5); None gives the dense Res-U-Net baseline.
        negative_slope: LeakyReLU slope.
        upsample_kernel: kernel size of the stride-2 transposed convolutions (2 or 3).
    """

    arch: ClassVar[str] = "lowrank-resunet"
    in_channels: int = 4
    out_channels: int = 4
    base_filters: int = 60  # Ashtari et al. 2021 (F = 60)
    levels: int = 5  # Ashtari et al. 2021 (4 pooling steps)
    lowrank_alpha: float | None = 0.5  # Ashtari et al. 2021
    negative_slope: float = 0.01
    upsample_kernel: int = 3  # matches the parameter count of Ashtari et al. 2021 Table 1

    @property
    def size_divisor(self) -> int:
        return 2 ** (self.levels - 1)


@dataclass
class CascadeUNetConfig(ModelConfig):
    """Two-stage cascaded asymmetric U-Net (Jiang et al. 2020).

    Attributes:
        in_channels: input modalities (4); stage 2 sees in_channels + out_channels.
        out_channels: region logits (WT, TC, ET; sigmoid).
        base_filters: initial conv filters of stage 1 (Jiang et al. 2020: 16); stage 2 uses
            ``base_filters * stage2_width`` (Jiang et al. 2020: doubled, 32).
        blocks_down: pre-activation residual blocks per encoder level (Jiang et al. 2020: 1, 2, 2, 4).
        groups: GroupNorm groups (Jiang et al. 2020: 8).
        dropout: spatial dropout after the initial conv (Jiang et al. 2020: 0.2).
        stage2_width: width factor of stage 2 (Jiang et al. 2020: 2).
    """

    arch: ClassVar[str] = "cascade-unet"
    in_channels: int = 4
    out_channels: int = 3
    base_filters: int = 16  # Jiang et al. 2020
    blocks_down: tuple[int, ...] = (1, 2, 2, 4)  # Jiang et al. 2020
    groups: int = 8  # Jiang et al. 2020
    dropout: float = 0.2  # Jiang et al. 2020
    stage2_width: int = 2  # Jiang et al. 2020

    @property
    def size_divisor(self) -> int:
        return 2 ** (len(self.blocks_down) - 1)


@dataclass
class DSUNetConfig(ModelConfig):
    """Deeply-supervised 3-D U-Net with a dilated pseudo-fifth stage (Henry et al. 2021).

    Attributes:
        in_channels: input modalities (4).
        out_channels: region logits (WT, TC, ET; sigmoid).
        base_filters: filters of stage 1, doubled per stage (Henry et al. 2021: 48).
        stages: encoder stages (Henry et al. 2021: 4).
        norm: "group" (pipeline A) or "instance" (pipeline B) (Henry et al. 2021).
        groups: GroupNorm groups.
        dilation: dilation of the two pseudo-fifth-stage convs (Henry et al. 2021: 2).
        deep_supervision: auxiliary heads after the dilated convs and after each decoder stage
            but the last (Henry et al. 2021: 4 auxiliary outputs).
    """

    arch: ClassVar[str] = "ds-unet"
    in_channels: int = 4
    out_channels: int = 3
    base_filters: int = 48  # Henry et al. 2021
    stages: int = 4  # Henry et al. 2021
    norm: str = "group"  # Henry et al. 2021 (A: group, B: instance)
    groups: int = 16
    dilation: int = 2  # Henry et al. 2021
    deep_supervision: bool = True  # Henry et al. 2021

    @property
    def size_divisor(self) -> int:
        return 2 ** (self.stages - 1)


@dataclass
class NNUNetConfig(ModelConfig):
    """Optimized U-Net (Futrega et al. 2021) (the layout of MONAI DynUNet, written out).

    Attributes:
        filters: channels per encoder level; the first level has stride 1, every other stride 2
            (Futrega et al. 2021: 64, 96, 128, 192, 256, 384, 512, depth 7).
        foreground_channel: a 5th input channel, one-hot of non-zero (brain) voxels (Futrega et al. 2021).
        out_channels: region logits (WT, TC, ET; sigmoid).
        deep_supr_num: extra deep-supervision heads at 1/2 and 1/4 resolution (Futrega et al. 2021: 2).
        negative_slope: LeakyReLU slope (Futrega et al. 2021: 0.01).
    """

    arch: ClassVar[str] = "nnunet"
    filters: tuple[int, ...] = (64, 96, 128, 192, 256, 384, 512)  # Futrega et al. 2021
    foreground_channel: bool = True  # Futrega et al. 2021
    out_channels: int = 3
    deep_supr_num: int = 2  # Futrega et al. 2021
    negative_slope: float = 0.01  # Futrega et al. 2021

    @property
    def in_channels(self) -> int:
        """4 modalities, plus the foreground one-hot channel when enabled."""
        return 5 if self.foreground_channel else 4

    @property
    def size_divisor(self) -> int:
        return 2 ** (len(self.filters) - 1)


@dataclass
class SegResNetVAEConfig(ModelConfig):
    """SegResNet with VAE regulariser (Adeniji & Liu, after Myronenko).

    Attributes:
        in_channels: input modalities (4); the VAE reconstructs all of them.
        out_channels: region logits (WT, TC, ET; sigmoid) (Adeniji & Liu).
        init_filters: filters of the initial conv (Adeniji & Liu: 16, half of Myronenko's 32).
        blocks_down / blocks_up: residual blocks per level (Myronenko: 1, 2, 2, 4 / 1, 1, 1).
        squeeze_excitation: SE on each residual branch (Adeniji & Liu).
        se_reduction: SE reduction ratio r (Adeniji & Liu leaves it open; SENet default 16, capped so
            at least one hidden unit remains).
        maxpool_downsample: max-pool instead of strided conv between levels (Adeniji & Liu).
        groups: GroupNorm groups (Adeniji & Liu: 8).
        dropout: dropout after the initial conv (Myronenko: 0.2).
        input_image_size: the fixed training patch size (X, Y, Z) the VAE's dense layers are sized
            for (Adeniji & Liu crops 144 x 144 x 128). Evaluation accepts any multiple of
            ``size_divisor``; training inputs must have exactly this size.
        vae_nz: latent size (256: 128 means + 128 stds).
        he_init: He-normal initialisation of convolutions (Adeniji & Liu).
    """

    arch: ClassVar[str] = "segresnet-vae"
    in_channels: int = 4
    out_channels: int = 3
    init_filters: int = 16  # Adeniji & Liu
    blocks_down: tuple[int, ...] = (1, 2, 2, 4)
    blocks_up: tuple[int, ...] = (1, 1, 1)
    squeeze_excitation: bool = True  # Adeniji & Liu
    se_reduction: int = 16
    maxpool_downsample: bool = True  # Adeniji & Liu
    groups: int = 8  # Adeniji & Liu (GroupNorm, 8 groups)
    dropout: float | None = 0.2
    input_image_size: tuple[int, int, int] = (144, 144, 128)  # Adeniji & Liu
    vae_nz: int = 256
    he_init: bool = True  # Adeniji & Liu

    @property
    def size_divisor(self) -> int:
        return 2 ** (len(self.blocks_down) - 1)

    @property
    def vae_divisor(self) -> int:
        """``input_image_size`` must be a multiple of this (the VAE downsamples once more)."""
        return 2 * self.size_divisor


__all__ = [
    "CascadeUNetConfig",
    "DSUNetConfig",
    "LowRankResUNetConfig",
    "ModelConfig",
    "NNUNetConfig",
    "SegResNetVAEConfig",
]
