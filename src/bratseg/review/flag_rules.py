"""The case-level review rules: which facts about a prediction make it worth a reviewer's look.

Each rule is a small function of measured facts (volumes, mean probabilities, components) and a
threshold of :class:`bratseg.review.uncertainty.ReviewRules`; it returns a short sentence when it
fires. :func:`review_reasons` applies them all. Kept apart from the maps and hotspots so the
tool that tunes the thresholds (``tools/tune_review_flag.py``) can re-apply the rules to
stored facts without recomputing anything.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

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


@dataclass
class CaseFacts:
    """What the rules look at, measured once per case.

    Attributes:
        measure: The uncertainty measure (``"entropy"`` or a disagreement).
        uncertain_ml: Volume (mL) of the voxels at or above the measure's uncertain threshold.
        volumes_ml: Predicted volumes (:func:`bratseg.metrics.tumour_volumes_ml`).
        et_mean_prob: Mean ET probability over the predicted ET (0 without ET).
        components: Every component of at least ``min_hotspot_ml`` of each predicted region,
            with its mean probability (kind ``"low-confidence component"`` whatever its
            probability; the rules pick the low ones).
        spacing: Voxel size in mm (X, Y, Z).
    """

    measure: str
    uncertain_ml: float
    volumes_ml: dict[str, float]
    et_mean_prob: float
    components: list[Hotspot] = field(default_factory=list)
    spacing: tuple[float, float, float] = (1.0, 1.0, 1.0)

    def low_components(self, rules: ReviewRules) -> list[Hotspot]:
        """The components whose mean probability is below ``rules.low_component_prob``."""
        return [c for c in self.components if c.mean_probability < rules.low_component_prob]


def review_reasons(rules: ReviewRules, facts: CaseFacts) -> list[str]:
    """Short sentences, one per rule that fires (empty: no review needed by these rules)."""
    reasons: list[str] = []
    wt, et = float(facts.volumes_ml.get("wt", 0.0)), float(facts.volumes_ml.get("et", 0.0))
    if wt <= 0.0:
        reasons.append("No tumour predicted.")
    elif wt < rules.min_wt_ml:
        reasons.append(f"Whole tumour only {wt:.1f} mL (under {rules.min_wt_ml:g} mL).")
    elif wt > rules.max_wt_ml:
        reasons.append(f"Whole tumour {wt:.0f} mL (over {rules.max_wt_ml:g} mL).")
    entropy = facts.measure == "entropy"
    limit = rules.max_uncertain_ml if entropy else rules.max_disagreement_ml
    fraction = rules.max_uncertain_fraction if entropy else rules.max_disagreement_fraction
    what = "uncertain" if entropy else f"uncertain ({facts.measure})"
    if facts.uncertain_ml > limit:
        reasons.append(f"{facts.uncertain_ml:.1f} mL {what} (over {limit:g} mL).")
    elif wt > 0.0 and facts.uncertain_ml > fraction * max(wt, rules.min_wt_ml):
        reasons.append(
            f"{facts.uncertain_ml:.1f} mL {what}, {facts.uncertain_ml / wt:.1f} times the whole "
            f"tumour (over {fraction:g})."
        )
    if wt > 0.0 and et < rules.min_et_fraction * wt:
        reasons.append(
            f"Little enhancing tumour: {et:.1f} mL, {100 * et / wt:.0f}% of the whole tumour "
            f"(under {100 * rules.min_et_fraction:g}%)."
        )
    if et >= rules.min_et_ml and facts.et_mean_prob < rules.min_et_mean_prob:
        reasons.append(
            f"Enhancing tumour predicted with a low mean probability ({facts.et_mean_prob:.2f})."
        )
    wt_parts = [c for c in facts.components if c.region == "wt"]
    far = far_component_mm(wt_parts, facts.spacing)
    if far > rules.max_component_distance_mm:
        reasons.append(f"Tumour in {len(wt_parts)} parts, up to {far:.0f} mm apart.")
    low = facts.low_components(rules)
    low_ml = float(sum(h.volume_ml for h in low))
    if low_ml > rules.max_low_confidence_ml:
        reasons.append(f"{len(low)} low-confidence component(s), {low_ml:.1f} mL.")
    return reasons
