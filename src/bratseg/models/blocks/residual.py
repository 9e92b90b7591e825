"""Residual blocks: ResNet (Ashtari et al. 2021), pre-activation GroupNorm (Jiang et al. 2020), conv units (002)."""

from __future__ import annotations

import torch
from torch import nn

from bratseg.models.blocks.cp_conv import CPConv3d, cp_rank
from bratseg.models.blocks.norms import make_norm


def conv3x3(in_channels: int, out_channels: int, lowrank_alpha: float | None = None) -> nn.Module:
    """3x3x3 'same' conv, dense or CP low-rank with rank ``ceil(alpha * C_in)`` (Ashtari et al. 2021)."""
    if lowrank_alpha is None:
        return nn.Conv3d(in_channels, out_channels, 3, padding=1)
    return CPConv3d(in_channels, out_channels, cp_rank(in_channels, lowrank_alpha))


class ResNetBlock(nn.Module):
    """ResNet block of Ashtari et al. 2021 (Fig. 2b): conv-IN-LReLU-conv-IN, 1x1x1 shortcut, add, LReLU.

    Args:
        in_channels: C_in.
        out_channels: C_out.
        lowrank_alpha: None for dense 3x3x3 convs, else CP rank ratio alpha (Ashtari et al. 2021).
        negative_slope: LeakyReLU slope.

    Shapes:
        (B, C_in, X, Y, Z) -> (B, C_out, X, Y, Z).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        lowrank_alpha: float | None = None,
        negative_slope: float = 0.01,
    ) -> None:
        super().__init__()
        self.conv1 = conv3x3(in_channels, out_channels, lowrank_alpha)
        self.norm1 = make_norm("instance", out_channels)
        self.conv2 = conv3x3(out_channels, out_channels, lowrank_alpha)
        self.norm2 = make_norm("instance", out_channels)
        self.act = nn.LeakyReLU(negative_slope, inplace=True)
        self.shortcut = nn.Conv3d(in_channels, out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C_in, X, Y, Z) -> (B, C_out, X, Y, Z)."""
        y = self.act(self.norm1(self.conv1(x)))
        y = self.norm2(self.conv2(y))
        return self.act(y + self.shortcut(x))


class PreActResBlock(nn.Module):
    """Pre-activation residual block (Jiang et al. 2020): GN, ReLU, conv3, GN, ReLU, conv3, + identity.

    Args:
        channels: C (input and output).
        groups: GroupNorm groups (8 in Jiang et al. 2020).

    Shapes:
        (B, C, X, Y, Z) -> (B, C, X, Y, Z).
    """

    def __init__(self, channels: int, groups: int = 8) -> None:
        super().__init__()
        self.body = nn.Sequential(
            make_norm("group", channels, groups),
            nn.ReLU(inplace=False),
            nn.Conv3d(channels, channels, 3, padding=1),
            make_norm("group", channels, groups),
            nn.ReLU(inplace=True),
            nn.Conv3d(channels, channels, 3, padding=1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, X, Y, Z) -> (B, C, X, Y, Z)."""
        return x + self.body(x)


class ConvNormAct(nn.Sequential):
    """3x3x3 conv (optional dilation), normalisation, ReLU (Henry et al. 2021 building block).

    Shapes:
        (B, C_in, X, Y, Z) -> (B, C_out, X, Y, Z).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        norm: str = "group",
        groups: int = 16,
        dilation: int = 1,
    ) -> None:
        d = dilation
        super().__init__(
            nn.Conv3d(in_channels, out_channels, 3, padding=d, dilation=d, bias=False),
            make_norm(norm, out_channels, groups),
            nn.ReLU(inplace=True),
        )
