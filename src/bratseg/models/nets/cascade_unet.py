"""Two-stage cascaded U-Net of Jiang et al. 2020 (Jiang et al., 1st place BraTS 2019).

Each stage is an asymmetric U-Net: initial 3x3x3 conv (+ dropout 0.2), encoder levels of
pre-activation GroupNorm residual blocks (1, 2, 2, 4), stride-2 3x3x3 convs doubling the channels
between levels; decoder levels of 1x1x1 conv halving the channels, 2x2x2 stride-2 deconvolution,
additive skip, one residual block; 1x1x1 conv to 3 region logits. Stage 2 is twice as wide, takes
the image concatenated with stage 1's sigmoid map, and has a second decoder using trilinear
interpolation that runs only in training (Jiang et al. 2020).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from bratseg.models.blocks.residual import PreActResBlock
from bratseg.models.config import CascadeUNetConfig


class _Decoder(nn.Module):
    """Decoder with additive skips; ``mode`` "deconv" (2x2x2 transposed conv) or "trilinear".

    Shapes:
        features: encoder outputs [(B, w, X, Y, Z), (B, 2w, X/2, ...), ...]
        -> logits (B, K, X, Y, Z).
    """

    def __init__(self, widths: list[int], out_channels: int, groups: int, mode: str) -> None:
        super().__init__()
        self.mode = mode
        self.reduce = nn.ModuleList()
        self.deconv = nn.ModuleList()
        self.blocks = nn.ModuleList()
        for level in range(len(widths) - 2, -1, -1):
            self.reduce.append(nn.Conv3d(widths[level + 1], widths[level], 1))
            if mode == "deconv":
                self.deconv.append(nn.ConvTranspose3d(widths[level], widths[level], 2, stride=2))
            self.blocks.append(PreActResBlock(widths[level], groups))
        self.head = nn.Conv3d(widths[0], out_channels, 1)

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        x = features[-1]
        for i, (reduce, block) in enumerate(zip(self.reduce, self.blocks)):
            x = reduce(x)
            if self.mode == "deconv":
                x = self.deconv[i](x)
            else:
                x = F.interpolate(x, scale_factor=2, mode="trilinear", align_corners=False)
            x = block(x + features[-2 - i])
        return self.head(x)


class _Encoder(nn.Module):
    """Asymmetric encoder of Jiang et al. 2020 (Table 1/2): (B, C_in, X, Y, Z) -> per-level features."""

    def __init__(
        self, in_channels: int, width: int, blocks: tuple[int, ...], groups: int, dropout: float
    ) -> None:
        super().__init__()
        self.stem = nn.Conv3d(in_channels, width, 3, padding=1)
        self.dropout = nn.Dropout3d(dropout) if dropout > 0 else nn.Identity()
        self.down = nn.ModuleList()
        self.levels = nn.ModuleList()
        self.widths = [width * 2**i for i in range(len(blocks))]
        for level, count in enumerate(blocks):
            w = self.widths[level]
            self.down.append(
                nn.Identity() if level == 0 else nn.Conv3d(w // 2, w, 3, stride=2, padding=1)
            )
            self.levels.append(nn.Sequential(*[PreActResBlock(w, groups) for _ in range(count)]))

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self.dropout(self.stem(x))
        features = []
        for down, level in zip(self.down, self.levels):
            x = level(down(x))
            features.append(x)
        return features


class CascadeUNet(nn.Module):
    """Jiang et al. 2020 two-stage cascade.

    Shapes:
        input (B, 4, X, Y, Z), X/Y/Z multiples of ``config.size_divisor`` (8).
        eval: stage-2 deconvolution-decoder logits (B, 3, X, Y, Z).
        train: {"logits": stage-2 deconv logits, "stages": [stage-1 logits, stage-2 deconv logits,
        stage-2 trilinear logits]} all (B, 3, X, Y, Z); Jiang et al. 2020 sums the Dice losses of all.
    """

    def __init__(self, config: CascadeUNetConfig) -> None:
        super().__init__()
        self.config = config
        c = config
        w1, w2 = c.base_filters, c.base_filters * c.stage2_width
        self.stage1_encoder = _Encoder(c.in_channels, w1, c.blocks_down, c.groups, c.dropout)
        widths1 = self.stage1_encoder.widths
        self.stage1_decoder = _Decoder(widths1, c.out_channels, c.groups, "deconv")
        self.stage2_encoder = _Encoder(
            c.in_channels + c.out_channels, w2, c.blocks_down, c.groups, c.dropout
        )
        widths2 = self.stage2_encoder.widths
        self.stage2_decoder = _Decoder(widths2, c.out_channels, c.groups, "deconv")
        self.stage2_interp_decoder = _Decoder(
            self.stage2_encoder.widths, c.out_channels, c.groups, "trilinear"
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor | dict[str, object]:
        """(B, 4, X, Y, Z) -> logits (B, 3, X, Y, Z) (eval) or the train dict."""
        stage1 = self.stage1_decoder(self.stage1_encoder(x))
        features = self.stage2_encoder(torch.cat([x, torch.sigmoid(stage1)], dim=1))
        logits = self.stage2_decoder(features)
        if not self.training:
            return logits
        interp = self.stage2_interp_decoder(features)
        return {"logits": logits, "stages": [stage1, logits, interp]}
