"""Per-voxel uncertainty of a prediction: binary entropy of the region probabilities, or the
spread of ensemble members / flip TTA (what :func:`bratseg.review.uncertainty.assess_case` finds
hotspots in and the Hotspots dock shows).

Arrays are (3, X, Y, Z) WT/TC/ET probabilities, or (X, Y, Z) maps; float16 probabilities (what
inference keeps) take their entropy from a table of all 65,536 float16 values.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np

from bratseg.labels import REGIONS

Measure = Literal["entropy", "ensemble disagreement", "TTA disagreement"]
MEASURES: tuple[Measure, ...] = ("entropy", "ensemble disagreement", "TTA disagreement")

#: Probabilities are clipped to [EPS, 1 - EPS] before the logarithms.
_EPS = 1e-6


def _entropy_float32(prob: np.ndarray) -> np.ndarray:
    """Binary entropy in bits, computed in float32 (see :func:`binary_entropy`)."""
    p = np.clip(np.asarray(prob, dtype=np.float32), _EPS, 1.0 - _EPS)
    q = 1.0 - p
    out = p * np.log2(p)
    out += q * np.log2(q)
    np.negative(out, out=out)
    return out


#: :func:`binary_entropy` of every float16 bit pattern, indexed by the pattern (a float16 holds one
#: of 65,536 values, so a table lookup gives exactly what computing it would; NaN patterns -> NaN).
with np.errstate(invalid="ignore"):  # the NaN patterns
    _FLOAT16_ENTROPY = _entropy_float32(np.arange(2**16, dtype=np.uint16).view(np.float16))
_FLOAT16_ENTROPY_AS_FLOAT16 = _FLOAT16_ENTROPY.astype(np.float16)


def binary_entropy(prob: np.ndarray) -> np.ndarray:
    """Binary entropy in bits of probabilities ``prob`` (any shape): 0 at 0 or 1, 1 at 0.5.

    float16 input (what the inference keeps) is looked up in a table of all its values, about
    ten times faster than the logarithms and equal to them.

    Returns:
        float32 array of ``prob``'s shape.
    """
    array = np.asarray(prob)
    if array.dtype == np.float16:
        return _FLOAT16_ENTROPY[np.ascontiguousarray(array).view(np.uint16)]
    return _entropy_float32(array)


def _as_member_spread(members: Any) -> tuple[np.ndarray, Measure]:
    """(spread (3, X, Y, Z) or (X, Y, Z), measure) from a list of member probabilities or a
    spread object with ``values`` and ``kind`` (:class:`bratseg.inference.MemberSpread`)."""
    if hasattr(members, "values") and hasattr(members, "kind"):
        kind = str(members.kind)
        if kind not in MEASURES[1:]:
            raise ValueError(f"unknown member spread kind {kind!r}")
        return np.asarray(members.values), kind
    arrays = [np.asarray(m) for m in members]
    if len(arrays) < 2:
        raise ValueError("member disagreement needs at least two members")
    low = arrays[0].astype(np.float32)
    high = low.copy()
    for a in arrays[1:]:
        np.minimum(low, a, out=low)
        np.maximum(high, a, out=high)
    high -= low
    return high, "ensemble disagreement"


def uncertainty_map(
    region_probs: np.ndarray, members: Any = None, *, per_region: bool = False
) -> tuple[np.ndarray, Measure]:
    """Per-voxel uncertainty of a prediction.

    Args:
        region_probs: float (3, X, Y, Z) WT/TC/ET probabilities.
        members: ``None`` (entropy of ``region_probs``), a sequence of member region
            probabilities (each (3, X, Y, Z): their max - min), or a member-spread object with
            ``values`` ((3, X, Y, Z) or (X, Y, Z)) and ``kind``
            (``"ensemble disagreement"`` / ``"TTA disagreement"``).
        per_region: Return (3, X, Y, Z) instead of the maximum over the regions.

    Returns:
        ``(values, measure)``: float16 (X, Y, Z) (or (3, X, Y, Z)) in [0, 1], and the measure's
        name (one of :data:`MEASURES`).
    """
    probs = np.asarray(region_probs)
    if probs.ndim != 4 or probs.shape[0] != len(REGIONS):
        raise ValueError(f"region_probs must be (3, X, Y, Z), got {probs.shape}")
    if members is not None:
        spread, measure = _as_member_spread(members)
        if spread.shape[-3:] != probs.shape[1:]:
            raise ValueError(f"member spread {spread.shape} does not match {probs.shape}")
        if spread.ndim == 3:
            if per_region:
                raise ValueError("this member spread has no regions")
            return spread.astype(np.float16), measure
        return (spread if per_region else spread.max(axis=0)).astype(np.float16), measure
    entropy = _entropy_float16 if probs.dtype == np.float16 else _entropy_rounded
    if per_region:
        return np.stack([entropy(p) for p in probs]), "entropy"
    out = entropy(probs[0])
    for p in probs[1:]:
        np.maximum(out, entropy(p), out=out)  # rounding is monotone: max then round == this
    return out, "entropy"


def _entropy_float16(prob: np.ndarray) -> np.ndarray:
    """:func:`binary_entropy` of float16 ``prob`` rounded to float16, by table lookup."""
    return _FLOAT16_ENTROPY_AS_FLOAT16[np.ascontiguousarray(prob).view(np.uint16)]


def _entropy_rounded(prob: np.ndarray) -> np.ndarray:
    """:func:`binary_entropy` rounded to float16."""
    return binary_entropy(prob).astype(np.float16)
