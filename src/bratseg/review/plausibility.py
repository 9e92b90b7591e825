"""Is a model's output plausible at all? Checks of a finished prediction, before anyone trusts it.

A damaged or unsuitable model can give a confident-looking answer: no tumour at all (one broken
member of an ensemble outvoted by the others), or "tumour" over most of the brain. These rules
catch such output whatever the model. Their reasons join the needs-review flag of
:func:`bratseg.review.uncertainty.assess_case` (the Segment and Hotspots docks, the worklist) and
the ``predict`` command's summary line. Thresholds live in
:class:`bratseg.review.flag_rules.ReviewRules`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from bratseg.labels import check_convention, region_masks
from bratseg.review.flag_rules import DEFAULT_RULES, ReviewRules

if TYPE_CHECKING:
    from bratseg.inference import Prediction


def brain_voxel_count(image: np.ndarray) -> int:
    """Voxels where any channel of the image (C, X, Y, Z) is non-zero (the skull-stripped brain)."""
    array = np.asarray(image)
    return int(np.count_nonzero(np.any(array != 0, axis=0)))


def plausibility_reasons(
    region_probs: np.ndarray | None,
    labels: np.ndarray,
    convention: str,
    spacing: Sequence[float],
    brain_voxels: int | None = None,
    rules: ReviewRules | None = None,
) -> list[str]:
    """Short sentences, one per sign that the output cannot be right (empty: none found).

    Args:
        region_probs: float (3, X, Y, Z) WT/TC/ET probabilities, or None when not kept.
        labels: uint8 (X, Y, Z) label map in ``convention``.
        convention: Label convention of ``labels``.
        spacing: Voxel size in mm (X, Y, Z).
        brain_voxels: Non-zero voxels of the image (:func:`brain_voxel_count`); None skips the
            rules that need it.
        rules: Thresholds (default :data:`DEFAULT_RULES`).

    Returns:
        Reasons: non-finite probabilities; whole or enhancing tumour over an implausible share
        of the brain; an empty result although part of the brain has a WT probability of at
        least ``rules.empty_doubt_prob`` (an ensemble's members, or flips, disagree).
    """
    rules = rules or DEFAULT_RULES
    reasons: list[str] = []
    masks = region_masks(np.asarray(labels), check_convention(convention))
    wt, et = int(np.count_nonzero(masks["wt"])), int(np.count_nonzero(masks["et"]))
    if region_probs is not None:
        probs = np.asarray(region_probs)
        bad = int(probs.size - np.count_nonzero(np.isfinite(probs)))
        if bad:
            reasons.append(
                f"Implausible output: {bad} probabilities are not finite (NaN); a model is broken."
            )
    voxel_ml = float(np.prod([float(s) for s in spacing])) / 1000.0
    if brain_voxels:
        for name, count, limit in (
            ("whole tumour", wt, rules.max_wt_brain_fraction),
            ("enhancing tumour", et, rules.max_et_brain_fraction),
        ):
            if count > limit * brain_voxels:
                reasons.append(
                    f"Implausible output: {name} of {count * voxel_ml:.0f} mL is "
                    f"{100 * count / brain_voxels:.0f}% of the brain's volume "
                    f"({brain_voxels * voxel_ml:.0f} mL; over {100 * limit:g}%): check the model "
                    "and the input channels."
                )
    if wt == 0 and region_probs is not None:
        wt_prob = np.nan_to_num(np.asarray(region_probs)[0], nan=0.0)
        doubt_ml = float(np.count_nonzero(wt_prob >= rules.empty_doubt_prob)) * voxel_ml
        if doubt_ml > rules.min_wt_ml:
            reasons.append(
                f"Implausible output: no tumour, although {doubt_ml:.1f} mL has a whole-tumour "
                f"probability of at least {rules.empty_doubt_prob:g} (the models disagree)."
            )
    return reasons


def prediction_plausibility(
    prediction: Prediction, image: np.ndarray | None, spacing: Sequence[float]
) -> list[str]:
    """:func:`plausibility_reasons` of a :class:`bratseg.inference.Prediction` on its case image
    (C, X, Y, Z); ``image=None`` skips the brain-share rules."""
    return plausibility_reasons(
        getattr(prediction, "region_probs", None),
        prediction.labels,
        str(prediction.convention),
        spacing,
        brain_voxel_count(image) if image is not None else None,
    )


__all__ = ["brain_voxel_count", "plausibility_reasons", "prediction_plausibility"]
