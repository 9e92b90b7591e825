"""Uncertainty a reviewer can act on: a per-voxel map, hotspots, and a case-level review flag.

:func:`assess_case` turns one case's region probabilities (and, when they ran, the spread of
ensemble members or flip TTA) into a :class:`ReviewAssessment`:

- a per-voxel uncertainty map (:func:`bratseg.review.uncertainty_maps.uncertainty_map`): the binary entropy of the WT/TC/ET
  probabilities (bits, 0 certain .. 1 at p = 0.5), maximum over the regions, or the members'
  disagreement (max - min of a region's probability over the members, maximum over the regions);
- hotspots (:class:`Hotspot`): connected regions of high uncertainty, and components of the
  predicted tumour whose mean probability is low, largest first;
- ``needs_review`` with short reasons, from the rules in :class:`ReviewRules` (thresholds chosen
  on held-out predictions by ``tools/tune_review_flag.py``).

All arrays are in engine order (X, Y, Z), in the case's source storage; no GUI here.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from bratseg.components import gather_flat, mask_components
from bratseg.labels import REGION_NAMES, REGIONS, check_convention, region_masks
from bratseg.metrics import tumour_volumes_ml
from bratseg.review.flag_rules import DEFAULT_RULES, ReviewRules
from bratseg.review.uncertainty_maps import Measure, binary_entropy, uncertainty_map

logger = logging.getLogger(__name__)

HotspotKind = Literal["uncertain", "low-confidence component"]


@dataclass
class Hotspot:
    """One place worth a reviewer's look.

    Attributes:
        kind: ``"uncertain"`` (connected high uncertainty) or ``"low-confidence component"``
            (a predicted component with a low mean probability).
        region: ``"wt"``, ``"tc"`` or ``"et"``: the region most uncertain there, resp. the
            component's region.
        volume_ml: Volume in mL.
        voxels: Number of voxels.
        centroid: Voxel nearest the centre of mass (X, Y, Z), engine order, inside the hotspot.
        bbox_min: Lowest voxel index per axis (X, Y, Z).
        bbox_max: Highest voxel index per axis (X, Y, Z), inclusive.
        mean_probability: Mean probability of ``region`` over the hotspot.
        mean_uncertainty: Mean uncertainty (the assessment's measure) over the hotspot.
    """

    kind: HotspotKind
    region: str
    volume_ml: float
    voxels: int
    centroid: tuple[int, int, int]
    bbox_min: tuple[int, int, int]
    bbox_max: tuple[int, int, int]
    mean_probability: float
    mean_uncertainty: float

    @property
    def label(self) -> str:
        """Short description, e.g. ``"uncertain · Enhancing tumour · 3.2 mL"``."""
        return (
            f"{self.kind} · {REGION_NAMES.get(self.region, self.region)} · {self.volume_ml:.1f} mL"
        )

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict."""
        return dataclasses.asdict(self)


@dataclass
class ReviewAssessment:
    """What :func:`assess_case` found.

    Attributes:
        needs_review: Some rule of :class:`ReviewRules` fired.
        reasons: One short sentence per rule that fired.
        measure: Which uncertainty ``uncertainty`` holds (one of :data:`MEASURES`).
        uncertain_ml: Volume of the uncertain voxels (mL).
        hotspots: Largest first.
        volumes_ml: Predicted volumes (:func:`bratseg.metrics.tumour_volumes_ml`).
        et_mean_prob: Mean ET probability over the predicted ET (0 without ET).
        rules: The rules applied.
        uncertainty: float16 (X, Y, Z) per-voxel uncertainty (not in :meth:`to_dict`).
    """

    needs_review: bool
    reasons: list[str]
    measure: Measure
    uncertain_ml: float
    hotspots: list[Hotspot]
    volumes_ml: dict[str, float] = field(default_factory=dict)
    et_mean_prob: float = 0.0
    rules: ReviewRules = DEFAULT_RULES
    uncertainty: np.ndarray | None = field(default=None, repr=False)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict (without the uncertainty map)."""
        return {
            "needs_review": self.needs_review,
            "reasons": list(self.reasons),
            "measure": self.measure,
            "uncertain_ml": round(float(self.uncertain_ml), 3),
            "hotspots": [h.to_dict() for h in self.hotspots],
            "volumes_ml": {k: round(float(v), 3) for k, v in self.volumes_ml.items()},
            "et_mean_prob": round(float(self.et_mean_prob), 4),
            "rules": self.rules.to_dict(),
        }


# --------------------------------------------------------------------------- hotspots


def _voxel_ml(spacing: Sequence[float]) -> float:
    return float(np.prod([float(s) for s in spacing])) / 1000.0


def _geometry(flat: np.ndarray, shape: tuple[int, ...]) -> tuple[tuple, tuple, tuple]:
    """(centroid voxel inside the set, bbox_min, bbox_max) of the flat indices ``flat``."""
    coords = np.stack(np.unravel_index(flat, shape), axis=1)
    mean = coords.mean(axis=0)
    nearest = coords[int(np.argmin(((coords - mean) ** 2).sum(axis=1)))]
    return (
        tuple(int(v) for v in nearest),
        tuple(int(v) for v in coords.min(axis=0)),
        tuple(int(v) for v in coords.max(axis=0)),
    )


def _groups(flat: np.ndarray, component: np.ndarray, n: int) -> list[np.ndarray]:
    """Flat indices per component id, as a list of arrays."""
    order = np.argsort(component, kind="stable")
    bounds = np.searchsorted(component[order], np.arange(n + 1))
    return [flat[order[bounds[i] : bounds[i + 1]]] for i in range(n)]


def uncertain_hotspots(
    region_probs: np.ndarray,
    uncertainty: np.ndarray,
    threshold: float,
    spacing: Sequence[float],
    rules: ReviewRules = DEFAULT_RULES,
) -> tuple[list[Hotspot], float]:
    """Connected regions of uncertainty at least ``threshold``.

    Args:
        region_probs: float (3, X, Y, Z).
        uncertainty: (X, Y, Z) map from :func:`uncertainty_map` (maximum over the regions).
        threshold: Uncertain from this value on.
        spacing: Voxel size in mm (X, Y, Z).
        rules: ``min_hotspot_ml``, ``connectivity``.

    Returns:
        ``(hotspots, uncertain_ml)``: hotspots of at least ``min_hotspot_ml``, largest first, and
        the volume of all uncertain voxels.
    """
    voxel_ml = _voxel_ml(spacing)
    flat, component, n = mask_components(np.asarray(uncertainty) >= threshold, rules.connectivity)
    out: list[Hotspot] = []
    min_voxels = max(1, int(np.ceil(rules.min_hotspot_ml / voxel_ml - 1e-9)))
    for idx in _groups(flat, component, n):
        if idx.size < min_voxels:
            continue
        probs = np.stack([gather_flat(p, idx).astype(np.float32) for p in region_probs])
        region = int(np.argmax(binary_entropy(probs).sum(axis=1)))
        centroid, lo, hi = _geometry(idx, uncertainty.shape)
        out.append(
            Hotspot(
                "uncertain",
                REGIONS[region],
                idx.size * voxel_ml,
                int(idx.size),
                centroid,
                lo,
                hi,
                float(probs[region].mean()),
                float(gather_flat(uncertainty, idx).astype(np.float32).mean()),
            )
        )
    out.sort(key=lambda h: -h.voxels)
    return out, flat.size * voxel_ml


def component_hotspots(
    region_probs: np.ndarray,
    masks: dict[str, np.ndarray],
    uncertainty: np.ndarray,
    spacing: Sequence[float],
    rules: ReviewRules = DEFAULT_RULES,
    *,
    low_only: bool = True,
) -> list[Hotspot]:
    """Components of the predicted regions with a mean probability below ``low_component_prob``.

    Args:
        region_probs: float (3, X, Y, Z).
        masks: ``{"wt", "tc", "et"}`` bool (X, Y, Z) predicted regions (:func:`region_masks`).
        uncertainty: (X, Y, Z) uncertainty map.
        spacing: Voxel size in mm (X, Y, Z).
        rules: ``low_component_prob``, ``min_hotspot_ml``, ``connectivity``.
        low_only: False returns every component of at least ``min_hotspot_ml`` (for tests and
            the distance rule).

    Returns:
        Hotspots of kind ``"low-confidence component"``, largest first.
    """
    voxel_ml = _voxel_ml(spacing)
    min_voxels = max(1, int(np.ceil(rules.min_hotspot_ml / voxel_ml - 1e-9)))
    out: list[Hotspot] = []
    for r, region in enumerate(REGIONS):
        flat, component, n = mask_components(masks[region], rules.connectivity)
        for idx in _groups(flat, component, n):
            if idx.size < min_voxels:
                continue
            mean_p = float(gather_flat(region_probs[r], idx).astype(np.float32).mean())
            if low_only and mean_p >= rules.low_component_prob:
                continue
            centroid, lo, hi = _geometry(idx, masks[region].shape)
            out.append(
                Hotspot(
                    "low-confidence component",
                    region,
                    idx.size * voxel_ml,
                    int(idx.size),
                    centroid,
                    lo,
                    hi,
                    mean_p,
                    float(gather_flat(uncertainty, idx).astype(np.float32).mean()),
                )
            )
    out.sort(key=lambda h: -h.voxels)
    return out


# --------------------------------------------------------------------------- the case


def assess_case(
    region_probs: np.ndarray,
    labels: np.ndarray,
    spacing: Sequence[float],
    convention: str,
    *,
    members: Any = None,
    rules: ReviewRules | None = None,
    brain_voxels: int | None = None,
) -> ReviewAssessment:
    """Uncertainty map, hotspots and review flag of one case.

    Args:
        region_probs: float (3, X, Y, Z) WT/TC/ET probabilities (e.g.
            :attr:`bratseg.review.ReviewSession.region_probs`).
        labels: uint8 (X, Y, Z) label map in ``convention`` (the working labels or the proposal).
        spacing: Voxel size in mm (X, Y, Z).
        convention: Label convention of ``labels``.
        members: Optional member probabilities or spread (see :func:`uncertainty_map`); the
            measure is then their disagreement instead of the entropy.
        rules: Thresholds (default :data:`DEFAULT_RULES`).
        brain_voxels: Non-zero voxels of the case image
            (:func:`bratseg.review.plausibility.brain_voxel_count`), for the rules on the
            tumour's share of the brain; None skips them.

    Returns:
        :class:`ReviewAssessment`; implausible output
        (:func:`bratseg.review.plausibility.plausibility_reasons`) gives the first reasons.
    """
    from bratseg.review.flag_rules import CaseFacts, review_reasons
    from bratseg.review.plausibility import plausibility_reasons

    rules = rules or DEFAULT_RULES
    convention = check_convention(convention)
    probs = np.asarray(region_probs)
    lab = np.asarray(labels)
    if lab.shape != probs.shape[1:]:
        raise ValueError(f"labels {lab.shape} do not match region_probs {probs.shape}")
    uncertainty, measure = uncertainty_map(probs, members)
    threshold = rules.uncertain_entropy if measure == "entropy" else rules.uncertain_spread
    uncertain, uncertain_ml = uncertain_hotspots(probs, uncertainty, threshold, spacing, rules)
    masks = region_masks(lab, convention)
    et = masks["et"]
    facts = CaseFacts(
        measure=measure,
        uncertain_ml=float(uncertain_ml),
        volumes_ml=tumour_volumes_ml(lab, convention, spacing),
        et_mean_prob=float(probs[2][et].astype(np.float64).mean()) if et.any() else 0.0,
        components=component_hotspots(probs, masks, uncertainty, spacing, rules, low_only=False),
        spacing=tuple(float(s) for s in spacing),  # type: ignore[arg-type]
        implausible=plausibility_reasons(probs, lab, convention, spacing, brain_voxels, rules),
    )
    reasons = review_reasons(rules, facts)
    hotspots = sorted(uncertain + facts.low_components(rules), key=lambda h: -h.voxels)[
        : rules.max_hotspots
    ]
    return ReviewAssessment(
        needs_review=bool(reasons),
        reasons=reasons,
        measure=measure,
        uncertain_ml=float(uncertain_ml),
        hotspots=hotspots,
        volumes_ml=facts.volumes_ml,
        et_mean_prob=facts.et_mean_prob,
        rules=rules,
        uncertainty=uncertainty,
    )
