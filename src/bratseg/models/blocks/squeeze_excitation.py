"""Squeeze-excitation residual block for SegResNet (Adeniji & Liu, after Hu et al.)."""

from __future__ import annotations

import torch
from monai.networks.blocks.segresnet_block import ResBlock
from monai.networks.blocks.squeeze_and_excitation import ChannelSELayer


def se_hidden_ratio(channels: int, reduction: int) -> int:
    """Reduction ratio r capped so that the SE bottleneck keeps at least one unit."""
    return max(1, min(reduction, channels))


class SEResBlock(ResBlock):
    """MONAI SegResNet :class:`ResBlock` whose residual branch is rescaled by squeeze-excitation.

    Adeniji & Liu: the residual is globally average-pooled, projected to C / r with ReLU, back to C
    with a sigmoid, and scales the residual before the identity is added.

    Shapes:
        (B, C, X, Y, Z) -> (B, C, X, Y, Z).
    """

    def __init__(
        self,
        spatial_dims: int,
        in_channels: int,
        norm: tuple | str,
        reduction: int = 16,
        act: tuple | str = ("RELU", {"inplace": True}),
    ) -> None:
        super().__init__(spatial_dims, in_channels, norm=norm, act=act)
        ratio = se_hidden_ratio(in_channels, reduction)
        self.se = ChannelSELayer(spatial_dims, in_channels, r=ratio)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x
        x = self.conv1(self.act(self.norm1(x)))
        x = self.conv2(self.act(self.norm2(x)))
        return self.se(x) + identity
