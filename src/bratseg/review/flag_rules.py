"""The case-level review rules: which facts about a prediction make it worth a reviewer's look.

Each rule is a small function of measured facts (volumes, mean probabilities, components) and a
threshold of :class:`bratseg.review.uncertainty.ReviewRules`; it returns a short sentence when it
fires. :func:`review_reasons` applies them all. Kept apart from the maps and hotspots so the
benchmark that tunes the thresholds (``bench/tune_review_flag.py``) can re-apply the rules to
stored facts without recomputing anything.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

import numpy as np

if TYPE_CHECKING:
    from bratseg.review.uncertainty import Hotspot, ReviewRules


def far_component_mm(wt_components: Sequence[Hotspot], spacing: Sequence[float]) -> float:
    """Largest distance (mm) from the largest WT component's centroid to another's (0 for one)."""
    if len(wt_components) < 2:
        return 0.0
    parts = sorted(wt_components, key=lambda h: -h.voxels)
    scale = np.asarray([float(s) for s in spacing])
    main = np.asarray(parts[0].centroid) * scale
    return float(max(np.linalg.norm(np.asarray(p.centroid) * scale - main) for p in parts[1:]))


def review_reasons(
    rules: ReviewRules,
    *,
    uncertain_ml: float,
    volumes_ml: dict[str, float],
    et_mean_prob: float,
    wt_components: Sequence[Hotspot],
    low_components: Sequence[Hotspot],
    spacing: Sequence[float],
) -> list[str]:
    """Short sentences, one per rule that fires (empty: no review needed by these rules).

    Args:
        rules: The thresholds.
        uncertain_ml: Volume of the uncertain voxels (mL).
        volumes_ml: Predicted volumes (``wt``, ``tc``, ``et`` ... in mL).
        et_mean_prob: Mean ET probability over the predicted ET.
        wt_components: Every WT component of at least ``rules.min_hotspot_ml``.
        low_components: The low-confidence components (any region).
        spacing: Voxel size in mm (X, Y, Z).
    """
    reasons: list[str] = []
    wt, et = float(volumes_ml.get("wt", 0.0)), float(volumes_ml.get("et", 0.0))
    if wt <= 0.0:
        reasons.append("No tumour predicted.")
    elif wt < rules.min_wt_ml:
        reasons.append(f"Whole tumour only {wt:.1f} mL (under {rules.min_wt_ml:g} mL).")
    elif wt > rules.max_wt_ml:
        reasons.append(f"Whole tumour {wt:.0f} mL (over {rules.max_wt_ml:g} mL).")
    if uncertain_ml > rules.max_uncertain_ml:
        reasons.append(f"{uncertain_ml:.1f} mL uncertain (over {rules.max_uncertain_ml:g} mL).")
    if et >= rules.min_et_ml and et_mean_prob < rules.min_et_mean_prob:
        reasons.append(f"Enhancing tumour predicted with a low mean probability ({et_mean_prob:.2f}).")
    far = far_component_mm(wt_components, spacing)
    if far > rules.max_component_distance_mm:
        reasons.append(f"Tumour in {len(wt_components)} parts, up to {far:.0f} mm apart.")
    low_ml = float(sum(h.volume_ml for h in low_components))
    if low_ml > rules.max_low_confidence_ml:
        reasons.append(f"{len(low_components)} low-confidence component(s), {low_ml:.1f} mL.")
    return reasons
