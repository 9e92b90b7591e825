"""Optimized U-Net of Futrega et al. 2021 (Futrega et al., NVIDIA, BraTS 2021).

Encoder: per level a stride-2 (stride 1 on the first level) 3x3x3 conv, then a stride-1 conv, each
followed by InstanceNorm and LeakyReLU(0.01). Decoder: 2x2x2 stride-2 transposed conv,
concatenation with the encoder skip, two conv-IN-LReLU. Deep supervision: 2 extra heads on the
two decoder levels above the last (1/2 and 1/4 resolution), upsampled (nearest) to full
resolution, so "deep" tensors are (B, 3, X, Y, Z). Optional 5th input channel: foreground one-hot.

The layers, their order, their initialisation and their ``state_dict`` names are those of MONAI's
``DynUNet`` (``res_block=False``), which trained every bundled ``nnunet`` checkpoint; a test checks
that both give the same outputs on the same weights. It is written out here so that predicting
does not import MONAI, whose package import loads all its submodules (several seconds on a CPU).
Checkpoints saved from ``DynUNet`` also hold each weight a second time under ``skip_layers.``
(aliases of the same tensors); loading drops those names.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from bratseg.models.blocks.meta import built_for_shapes
from bratseg.models.config import NNUNetConfig

#: Prefix of the alias names in checkpoints saved from MONAI's DynUNet.
_ALIAS_PREFIX = "skip_layers."


def _conv(
    in_channels: int, out_channels: int, kernel: int, stride: int, *, bias: bool = False
) -> nn.Sequential:
    """A conv in a ``Sequential`` named ``conv`` (the ``....conv.weight`` names of MONAI)."""
    padding = (kernel - stride + 1) // 2
    return _named_conv(nn.Conv3d(in_channels, out_channels, kernel, stride, padding, bias=bias))


def _named_conv(conv: nn.Module) -> nn.Sequential:
    return nn.Sequential(OrderedDict([("conv", conv)]))


class InstanceNorm(nn.InstanceNorm3d):
    """Affine instance norm computed as a group norm with one channel per group.

    The same numbers as :class:`torch.nn.InstanceNorm3d` (same ``weight`` / ``bias``), but
    PyTorch's group-norm CPU kernel is about 1.5x faster on (1, 16, 128, 160, 128) inputs.
    """

    def __init__(self, channels: int) -> None:
        super().__init__(channels, affine=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, X, Y, Z) -> (B, C, X, Y, Z), each channel of each sample normalised."""
        return F.group_norm(x, self.num_features, self.weight, self.bias, self.eps)


class UNetConvBlock(nn.Module):
    """conv(stride) - IN - LReLU - conv - IN - LReLU (Futrega et al. 2021).

    Shapes:
        (B, C_in, X, Y, Z) -> (B, C_out, X / stride, Y / stride, Z / stride).
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int, slope: float) -> None:
        super().__init__()
        # Registration order = parameter order (optimizer states of older runs depend on it).
        self.conv1 = _conv(in_channels, out_channels, 3, stride)
        self.conv2 = _conv(out_channels, out_channels, 3, 1)
        self.lrelu = nn.LeakyReLU(slope, inplace=True)
        self.norm1 = InstanceNorm(out_channels)  # Futrega et al. 2021
        self.norm2 = InstanceNorm(out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C_in, X, Y, Z) -> (B, C_out, X', Y', Z')."""
        x = self.lrelu(self.norm1(self.conv1(x)))
        return self.lrelu(self.norm2(self.conv2(x)))


class UNetUpBlock(nn.Module):
    """2x2x2 stride-2 transposed conv, concatenation with the skip, :class:`UNetConvBlock`.

    Shapes:
        x (B, C_in, X, Y, Z), skip (B, C_out, 2X, 2Y, 2Z) -> (B, C_out, 2X, 2Y, 2Z).
    """

    def __init__(self, in_channels: int, out_channels: int, slope: float) -> None:
        super().__init__()
        self.transp_conv = _named_conv(
            nn.ConvTranspose3d(in_channels, out_channels, 2, 2, bias=False)
        )
        self.conv_block = UNetConvBlock(2 * out_channels, out_channels, 1, slope)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        """Upsample ``x``, join ``skip``, convolve."""
        return self.conv_block(torch.cat((self.transp_conv(x), skip), dim=1))


class UNetHead(nn.Module):
    """1x1x1 conv with bias to the output logits: (B, C, X, Y, Z) -> (B, K, X, Y, Z)."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv = _conv(in_channels, out_channels, 1, 1, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, X, Y, Z) -> (B, K, X, Y, Z)."""
        return self.conv(x)


class _UNet(nn.Module):
    """The U-Net itself (attribute names = MONAI DynUNet's, so checkpoints load unchanged)."""

    def __init__(self, config: NNUNetConfig) -> None:
        super().__init__()
        f, slope = list(config.filters), config.negative_slope
        self.input_block = UNetConvBlock(config.in_channels, f[0], 1, slope)
        self.downsamples = nn.ModuleList(
            UNetConvBlock(a, b, 2, slope) for a, b in zip(f[:-2], f[1:-1])
        )
        self.bottleneck = UNetConvBlock(f[-2], f[-1], 2, slope)
        self.upsamples = nn.ModuleList(  # deepest first
            UNetUpBlock(a, b, slope) for a, b in zip(f[1:][::-1], f[:-1][::-1])
        )
        self.output_block = UNetHead(f[0], config.out_channels)
        if config.deep_supr_num > 0:  # head i on the decoder level of resolution 1 / 2^(i+1)
            self.deep_supervision_heads = nn.ModuleList(
                UNetHead(f[i + 1], config.out_channels) for i in range(config.deep_supr_num)
            )
        if not built_for_shapes(self):
            self.apply(_initialise)
        self._register_load_state_dict_pre_hook(_drop_aliases)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """(B, C_in, X, Y, Z) -> logits (B, K, X, Y, Z) and the deep heads (training only)."""
        skips = [self.input_block(x)]
        for down in self.downsamples:
            skips.append(down(skips[-1]))
        h = self.bottleneck(skips[-1])
        want_heads = self.training and hasattr(self, "deep_supervision_heads")
        deep: list[torch.Tensor] = []
        for up, level in zip(self.upsamples, range(len(skips) - 1, -1, -1)):
            h = up(h, skips[level])
            if want_heads and 1 <= level <= len(self.deep_supervision_heads):
                deep.insert(0, self.deep_supervision_heads[level - 1](h))
        out = self.output_block(h)
        return out, [F.interpolate(d, out.shape[2:]) for d in deep]  # nearest, as DynUNet


def _initialise(module: nn.Module) -> None:
    """Kaiming-normal convs (a = 0.01), zero biases (as DynUNet)."""
    if isinstance(module, (nn.Conv3d, nn.ConvTranspose3d)):
        nn.init.kaiming_normal_(module.weight, a=0.01)
        if module.bias is not None:
            nn.init.zeros_(module.bias)


def _drop_aliases(state: dict[str, Any], prefix: str, *_: Any) -> None:
    """Load pre-hook: forget the ``skip_layers.`` aliases of checkpoints saved from DynUNet."""
    for key in [k for k in state if k.startswith(prefix + _ALIAS_PREFIX)]:
        del state[key]


class OptimizedUNet(nn.Module):
    """Futrega et al. 2021 network.

    Shapes:
        input (B, 4 or 5, X, Y, Z), X/Y/Z multiples of ``config.size_divisor`` (2 ** (depth - 1)).
        eval: logits (B, 3, X, Y, Z). train: {"logits": (B, 3, X, Y, Z),
        "deep": [(B, 3, X, Y, Z)] * deep_supr_num} (heads of the 1/2 and 1/4 decoder levels,
        nearest-upsampled).
    """

    def __init__(self, config: NNUNetConfig) -> None:
        super().__init__()
        self.config = config
        depth = len(config.filters)
        if depth < 3:
            raise ValueError(f"nnunet: {depth} levels are too few (at least 3)")
        if depth < 2 + config.deep_supr_num and config.deep_supr_num:
            heads = config.deep_supr_num
            raise ValueError(f"nnunet: {depth} levels are too few for {heads} deep heads")
        self.net = _UNet(config)

    def forward(self, x: torch.Tensor) -> torch.Tensor | dict[str, object]:
        """(B, C_in, X, Y, Z) -> logits (B, 3, X, Y, Z) (eval) or the train dict."""
        logits, deep = self.net(x)
        if not self.training:
            return logits
        if self.config.deep_supr_num > 0:
            return {"logits": logits, "deep": deep}
        return {"logits": logits}
