"""Normalisation helpers shared by the networks."""

from __future__ import annotations

from torch import nn


def group_count(channels: int, groups: int) -> int:
    """Largest divisor of ``channels`` that is <= ``groups`` (GroupNorm needs C % G == 0)."""
    g = max(1, min(groups, channels))
    while channels % g:
        g -= 1
    return g


def make_norm(kind: str, channels: int, groups: int = 8) -> nn.Module:
    """Build a 3-D normalisation layer.

    Args:
        kind: "group" (GroupNorm, ``groups`` groups, reduced to a divisor of ``channels`` for tiny
            widths) or "instance" (affine InstanceNorm3d).
        channels: number of channels C of the (B, C, X, Y, Z) input.
        groups: requested number of groups for GroupNorm.
    """
    if kind == "group":
        return nn.GroupNorm(group_count(channels, groups), channels)
    if kind == "instance":
        return nn.InstanceNorm3d(channels, affine=True)
    raise ValueError(f"unknown norm {kind!r} (expected 'group' or 'instance')")
