"""Res-U-Net with CP low-rank convolutions (Ashtari et al. 2021, BraTS 2020).

Encoder: ``levels`` resolution levels, each one :class:`ResNetBlock`; max-pool 2 between levels,
channels doubled. Decoder: stride-2 transposed conv halving the channels, concatenation with the
encoder skip, one ResNet block. Every 3x3x3 conv outside the first level is a CP low-rank conv with
rank ``ceil(alpha * C_in)`` (Ashtari et al. 2021). Output: 4 class logits (softmax over background, NCR,
ED, ET).
"""

from __future__ import annotations

import torch
from torch import nn

from bratseg.models.blocks.residual import ResNetBlock
from bratseg.models.config import LowRankResUNetConfig


class LowRankResUNet(nn.Module):
    """Ashtari et al. 2021 network.

    Shapes:
        input (B, in_channels, X, Y, Z), X/Y/Z multiples of ``config.size_divisor``.
        eval: logits (B, 4, X, Y, Z). train: {"logits": (B, 4, X, Y, Z)}.
    """

    def __init__(self, config: LowRankResUNetConfig) -> None:
        super().__init__()
        self.config = config
        c = config
        widths = [c.base_filters * 2**i for i in range(c.levels)]
        self.widths = widths

        def alpha(level: int) -> float | None:
            return (
                None if level == 0 else c.lowrank_alpha
            )  # Ashtari et al. 2021: all but the first level

        self.encoder = nn.ModuleList()
        in_ch = c.in_channels
        for level, width in enumerate(widths):
            self.encoder.append(ResNetBlock(in_ch, width, alpha(level), c.negative_slope))
            in_ch = width
        self.pool = nn.MaxPool3d(2)
        self.upsamples = nn.ModuleList()
        self.decoder = nn.ModuleList()
        k = c.upsample_kernel
        for level in range(c.levels - 2, -1, -1):
            width = widths[level]
            self.upsamples.append(
                nn.ConvTranspose3d(
                    widths[level + 1],
                    width,
                    k,
                    stride=2,
                    padding=(k - 2 + 1) // 2,
                    output_padding=k % 2,
                )
            )
            self.decoder.append(ResNetBlock(2 * width, width, alpha(level), c.negative_slope))
        self.head = nn.Conv3d(widths[0], c.out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor | dict[str, torch.Tensor]:
        """(B, C_in, X, Y, Z) -> logits (B, 4, X, Y, Z) (eval) or {"logits": ...} (train)."""
        skips = []
        for level, block in enumerate(self.encoder):
            if level:
                x = self.pool(x)
            x = block(x)
            skips.append(x)
        skips.pop()
        for up, block in zip(self.upsamples, self.decoder):
            x = block(torch.cat([up(x), skips.pop()], dim=1))
        logits = self.head(x)
        return {"logits": logits} if self.training else logits
