"""Flip test-time augmentation (Jiang et al. 2020; Futrega et al. 2021: flips along every subset of the 3 spatial axes)."""

from __future__ import annotations

from itertools import combinations

import torch

from bratseg.errors import BratsInputError


def flip_sets(tta: int) -> list[tuple[int, ...]]:
    """Flip axes (of a (B, C, X, Y, Z) tensor) for ``tta`` = 0 (identity only) or 8 (all subsets).

    Returns:
        List of axis tuples; the first is always ``()`` (no flip).
    """
    tta = int(tta)
    if tta in (0, 1):
        return [()]
    if tta == 8:  # Futrega et al. 2021: 8 flips = every subset of {x, y, z}
        return [c for r in range(4) for c in combinations((2, 3, 4), r)]
    raise BratsInputError(f"tta must be 0 or 8, got {tta}")


def apply_flip(x: torch.Tensor, axes: tuple[int, ...]) -> torch.Tensor:
    """Flip ``x`` (B, C, X, Y, Z) along ``axes`` (a flip is its own inverse)."""
    return torch.flip(x, dims=axes) if axes else x
