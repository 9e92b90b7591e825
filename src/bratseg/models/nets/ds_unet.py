"""Self-ensembled, deeply-supervised 3-D U-Net of Henry et al. 2021 (Henry et al., BraTS 2020).

Encoder: ``stages`` stages of two 3x3x3 conv-norm-ReLU (the first sets the stage width, 48 for
stage 1, doubled per stage), 2x2x2 max-pool between stages. Pseudo-fifth stage: two 3x3x3 convs
with dilation 2 at the lowest resolution, concatenated with the last stage output. Decoder ("almost
symmetrical to the encoder", Henry et al. 2021): the lowest stage is a single conv; then trilinear
upsampling, concatenation with the encoder skip and two convs per stage, the last stage keeping
the stage-1 width (the authors' released "EquiUnet"); 1x1x1 conv to 3 region logits (sigmoid).
Halving the width in the last stage (their plain "Unet") left only 8 channels before the head in
the small preset, and the network could not learn the whole tumour (WT) on this budget.
Normalisation: GroupNorm (pipeline A) or InstanceNorm (pipeline B). Deep supervision (seed
002): 1x1x1 heads after the dilated convs and after every decoder stage but the last,
trilinearly upsampled to full size.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from bratseg.models.blocks.meta import built_for_shapes
from bratseg.models.blocks.residual import ConvNormAct
from bratseg.models.config import DSUNetConfig


class DSUNet(nn.Module):
    """Henry et al. 2021 network.

    Shapes:
        input (B, 4, X, Y, Z), X/Y/Z multiples of ``config.size_divisor`` (8).
        eval: logits (B, 3, X, Y, Z). train: {"logits": (B, 3, X, Y, Z), "deep": 4 tensors
        (B, 3, X, Y, Z)} (heads at 1/8, 1/8, 1/4, 1/2 resolution, upsampled to full size) when
        ``deep_supervision``.
    """

    def __init__(self, config: DSUNetConfig) -> None:
        super().__init__()
        self.config = config
        c = config
        f = [c.base_filters * 2**i for i in range(c.stages)]

        def cna(i: int, o: int, dilation: int = 1) -> ConvNormAct:
            return ConvNormAct(i, o, c.norm, c.groups, dilation)

        self.encoder = nn.ModuleList()
        in_ch = c.in_channels
        for width in f:
            self.encoder.append(nn.Sequential(cna(in_ch, width), cna(width, width)))
            in_ch = width
        self.pool = nn.MaxPool3d(2)
        self.dilated = nn.Sequential(cna(f[-1], f[-1], c.dilation), cna(f[-1], f[-1], c.dilation))
        self.bottom = cna(2 * f[-1], f[-2])  # lowest decoder stage: one conv (Henry et al. 2021)
        self.decoder = nn.ModuleList()
        for level in range(c.stages - 2, -1, -1):
            out = f[level - 1] if level > 0 else f[0]
            self.decoder.append(nn.Sequential(cna(2 * f[level], f[level]), cna(f[level], out)))
        self.head = nn.Conv3d(f[0], c.out_channels, 1)
        self.deep_heads = nn.ModuleList()
        if c.deep_supervision:
            widths = [f[-1], f[-2]] + [f[level - 1] for level in range(c.stages - 2, 0, -1)]
            self.deep_heads.extend(nn.Conv3d(w, c.out_channels, 1) for w in widths)
        if not built_for_shapes(self):
            self._init_weights()

    def _init_weights(self) -> None:
        """He-normal (fan-out) conv weights, as in the Henry et al. 2021 authors' released code.

        PyTorch's default conv init gave logits so small (|mean| < 0.6 after 25 steps on one
        patch) that the region heads barely separated tumour from background.
        """
        for module in self.modules():
            if isinstance(module, nn.Conv3d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor | dict[str, object]:
        """(B, 4, X, Y, Z) -> logits (B, 3, X, Y, Z) (eval) or the train dict."""
        size = x.shape[2:]
        skips = []
        for stage, block in enumerate(self.encoder):
            x = block(self.pool(x) if stage else x)
            skips.append(x)
        dilated = self.dilated(x)
        x = self.bottom(torch.cat([skips.pop(), dilated], dim=1))
        taps = [dilated, x]
        for block in self.decoder:
            up = F.interpolate(x, scale_factor=2, mode="trilinear", align_corners=False)
            x = block(torch.cat([skips.pop(), up], dim=1))
            taps.append(x)
        logits = self.head(x)
        if not self.training:
            return logits
        result: dict[str, object] = {"logits": logits}
        if self.deep_heads:
            result["deep"] = [
                F.interpolate(head(tap), size=size, mode="trilinear", align_corners=False)
                for head, tap in zip(self.deep_heads, taps)
            ]
        return result
