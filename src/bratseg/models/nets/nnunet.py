"""Optimized U-Net of Futrega et al. 2021 (Futrega et al., NVIDIA, BraTS 2021) on MONAI DynUNet.

Encoder: per level a stride-2 (stride 1 on the first level) 3x3x3 conv, then a stride-1 conv, each
followed by InstanceNorm and LeakyReLU(0.01). Decoder: 2x2x2 stride-2 transposed conv,
concatenation with the encoder skip, two conv-IN-LReLU. Deep supervision: 2 extra heads on the
two decoder levels above the last (1/2 and 1/4 resolution); MONAI interpolates them to full
resolution, so "deep" tensors are (B, 3, X, Y, Z). Optional 5th input channel: foreground one-hot.
"""

from __future__ import annotations

import torch
from monai.networks.nets import DynUNet
from torch import nn

from bratseg.models.config import NNUNetConfig


class OptimizedUNet(nn.Module):
    """Futrega et al. 2021 network (wraps :class:`monai.networks.nets.DynUNet`).

    Shapes:
        input (B, 4 or 5, X, Y, Z), X/Y/Z multiples of ``config.size_divisor`` (2 ** (depth - 1)).
        eval: logits (B, 3, X, Y, Z). train: {"logits": (B, 3, X, Y, Z),
        "deep": [(B, 3, X, Y, Z)] * deep_supr_num} (heads of the 1/2 and 1/4 decoder levels,
        trilinearly upsampled by MONAI).
    """

    def __init__(self, config: NNUNetConfig) -> None:
        super().__init__()
        self.config = config
        depth = len(config.filters)
        if depth < 2 + config.deep_supr_num and config.deep_supr_num:
            heads = config.deep_supr_num
            raise ValueError(f"nnunet: {depth} levels are too few for {heads} deep heads")
        self.net = DynUNet(
            spatial_dims=3,
            in_channels=config.in_channels,
            out_channels=config.out_channels,
            kernel_size=[3] * depth,
            strides=[1] + [2] * (depth - 1),
            upsample_kernel_size=[2] * (depth - 1),
            filters=list(config.filters),
            norm_name=("INSTANCE", {"affine": True}),  # Futrega et al. 2021
            act_name=("leakyrelu", {"inplace": True, "negative_slope": config.negative_slope}),
            deep_supervision=config.deep_supr_num > 0,
            deep_supr_num=max(1, config.deep_supr_num),
            res_block=False,
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor | dict[str, object]:
        """(B, C_in, X, Y, Z) -> logits (B, 3, X, Y, Z) (eval) or the train dict."""
        out = self.net(x)
        if not self.training:
            return out
        if self.config.deep_supr_num > 0:  # DynUNet stacks main + heads on dim 1
            return {"logits": out[:, 0], "deep": [out[:, i] for i in range(1, out.shape[1])]}
        return {"logits": out}
