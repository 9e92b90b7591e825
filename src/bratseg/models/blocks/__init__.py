"""Building blocks the networks share (what MONAI lacks)."""

from bratseg.models.blocks.cp_conv import CPConv3d, cp_rank
from bratseg.models.blocks.meta import built_for_shapes
from bratseg.models.blocks.norms import group_count, make_norm
from bratseg.models.blocks.residual import ConvNormAct, PreActResBlock, ResNetBlock, conv3x3

__all__ = [
    "CPConv3d",
    "ConvNormAct",
    "PreActResBlock",
    "ResNetBlock",
    "built_for_shapes",
    "conv3x3",
    "cp_rank",
    "group_count",
    "make_norm",
]
