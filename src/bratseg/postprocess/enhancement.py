"""Case-level "no enhancement" decision: ET only where T1Gd shows contrast uptake.

A network that has seen mostly enhancing glioblastomas paints an ET rim on tumours that have
none (low-grade, non-enhancing gliomas): a confident red region that the images do not support.
Enhancement is what defines ET, and it can be measured on the images themselves: inside the
predicted ET, T1Gd is bright relative to normal-appearing white matter, while T1 is not. So

    enhancement = median T1Gd in ET / median (a T1 + b) in ET

is about 1 where T1Gd only repeats T1's contrast, and above it where contrast agent
accumulates. "What T1 predicts" is a straight line T1Gd ~ a T1 + b fitted on the brain outside
the predicted tumour (grey and white matter, CSF): the same mapping that relates the two
series in tissue without contrast uptake.

When the ratio is below ``PostprocessConfig.et_enhancement_min``, every ET voxel becomes NCR (it
stays in the tumour core). The decision and its evidence are returned, so that front ends can
say "ET removed: no enhancement" with the number, and a reviewer can put ET back by turning the
rule off for the case.

A second piece of evidence looks at the prediction only: the share of the predicted tumour core
that is ET (``PostprocessConfig.et_core_fraction_min``). Removing the contrast from a tumour leaves
its core but little ET (a thin, unsure rim), while enhancing tumours keep a large share. The
BraTS 2023 paediatric winner uses the same idea on the whole tumour (ET into NCR below an ET/WT
ratio of 0.04, field survey); nnU-Net's BraTS entry uses an ET volume tuned on
cross-validation. Either piece of evidence turns all ET into NCR; the evidence says which.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np

#: Fewest brain voxels outside the tumour for the T1 -> T1Gd fit; fewer gives no decision.
MIN_REFERENCE_VOXELS = 500
#: Every n-th voxel of the brain outside the tumour enters the fit (speed; 1 mm volumes).
REFERENCE_STRIDE = 7


@dataclass(frozen=True)
class EnhancementEvidence:
    """What the no-enhancement decision measured and decided for one case.

    Attributes:
        ratio: T1Gd inside the predicted ET over what T1 predicts for it (see the module
            docstring); ``None`` when it could not be measured or its rule is off.
        threshold: The image rule's threshold (``et_enhancement_min``; 0 = off).
        et_voxels: Predicted ET voxels the decision was taken on.
        removed: Whether the decision turned the ET into NCR.
        core_fraction: Predicted ET over the predicted tumour core (voxels); ``None`` when its
            rule is off.
        core_fraction_min: That rule's threshold (``et_core_fraction_min``; 0 = off).
    """

    ratio: float | None
    threshold: float
    et_voxels: int
    removed: bool
    core_fraction: float | None = None
    core_fraction_min: float = 0.0

    @property
    def no_uptake(self) -> bool:
        """Whether the images show no contrast uptake in the predicted ET (the ratio rule fired)."""
        return self.ratio is not None and self.ratio < self.threshold

    @property
    def little_et(self) -> bool:
        """Whether the ET is too small a share of the core (the core-fraction rule fired)."""
        return self.core_fraction is not None and self.core_fraction < self.core_fraction_min

    def message(self, voxel_ml: float | None = None) -> str:
        """One line for a reviewer, e.g. ``ET removed: no enhancement (T1Gd/T1 1.02 < 1.10)``."""
        ratio = f"T1Gd/T1 {self.ratio:.2f}" if self.ratio is not None else ""
        share = f"ET {self.core_fraction:.0%} of the core" if self.core_fraction is not None else ""
        if self.removed:
            why = [f"{ratio} < {self.threshold:.2f}"] if self.no_uptake else []
            if self.little_et:
                why.append(f"{share} < {self.core_fraction_min:.0%}")
            size = f"; {self.et_voxels * voxel_ml:.1f} mL became NCR" if voxel_ml else ""
            return f"ET removed: no enhancement ({'; '.join(why)}{size})"
        kept = []
        if self.threshold > 0:
            kept.append(
                f"enhancement {ratio} >= {self.threshold:.2f}"
                if ratio
                else "enhancement could not be measured"
            )
        if share:
            kept.append(f"{share} >= {self.core_fraction_min:.0%}")
        return "ET kept: " + "; ".join(kept)

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (JSON-able)."""
        return asdict(self)


@dataclass(frozen=True)
class ReferenceFit:
    """The straight line T1Gd ~ ``slope`` * T1 + ``intercept`` of the brain outside the tumour."""

    slope: float
    intercept: float


def fit_reference(t1_t1ce: tuple[np.ndarray, np.ndarray], wt: np.ndarray) -> ReferenceFit | None:
    """Fit what T1 predicts for T1Gd on the brain outside the tumour (every
    :data:`REFERENCE_STRIDE`-th voxel).

    Args:
        t1_t1ce: T1 and T1Gd, each (X, Y, Z) float intensities as loaded (zero outside the
            brain).
        wt: bool (X, Y, Z) predicted tumour (excluded from the fit).

    Returns:
        The fit, or ``None`` when the brain outside the tumour is too small or T1 constant.
    """
    t1, t1ce = t1_t1ce
    brain = (t1 > 0) & (t1ce > 0) & ~wt
    x = t1[brain][::REFERENCE_STRIDE].astype(np.float64)
    y = t1ce[brain][::REFERENCE_STRIDE].astype(np.float64)
    if x.size < MIN_REFERENCE_VOXELS or float(x.std()) <= 0:
        return None
    slope, intercept = np.polyfit(x, y, 1)
    return ReferenceFit(float(slope), float(intercept))


class ReferenceFitCache:
    """The reference fit of one case, reused while the tumour mask it excludes is unchanged.

    The fit reads every brain voxel; the ratio only the ET voxels. A caller that postprocesses
    the same case again and again (a review session whose settings move) holds one of these, so
    a change that leaves the whole tumour as it was (an ET or TC threshold, the rule's own
    threshold) does not refit. One cache serves one case's images.

    Attributes:
        fits: How many fits were computed (not reused) so far.
    """

    def __init__(self) -> None:
        self.fits = 0
        self._images: tuple[tuple[int, tuple[int, ...], tuple[int, ...]], ...] | None = None
        self._wt: np.ndarray | None = None
        self._fit: ReferenceFit | None = None

    def fit(self, t1_t1ce: tuple[np.ndarray, np.ndarray], wt: np.ndarray) -> ReferenceFit | None:
        """:func:`fit_reference` of ``t1_t1ce`` and ``wt``, computed unless the last call had
        the same images (same memory) and an equal tumour mask."""
        images = tuple((a.__array_interface__["data"][0], a.shape, a.strides) for a in t1_t1ce)
        if images == self._images and self._wt is not None and np.array_equal(wt, self._wt):
            return self._fit
        self._fit = fit_reference(t1_t1ce, wt)
        self._images, self._wt = images, np.array(wt, dtype=bool, copy=True)
        self.fits += 1
        return self._fit


def enhancement_ratio(
    t1_t1ce: tuple[np.ndarray, np.ndarray],
    wt: np.ndarray,
    et: np.ndarray,
    fits: ReferenceFitCache | None = None,
) -> float | None:
    """T1Gd inside ``et`` over what T1 predicts for it, from the normal-appearing brain.

    Args:
        t1_t1ce: T1 and T1Gd, each (X, Y, Z) float intensities as loaded (before
            normalisation; zero outside the brain).
        wt: bool (X, Y, Z) predicted tumour (excluded from the fit).
        et: bool (X, Y, Z) predicted ET.
        fits: The case's fit cache (None: fit afresh).

    Returns:
        The ratio, or ``None`` when ET is empty, the brain outside the tumour too small, or the
        prediction of T1Gd from T1 not positive.
    """
    if not et.any():
        return None
    fit = fits.fit(t1_t1ce, wt) if fits is not None else fit_reference(t1_t1ce, wt)
    if fit is None:
        return None
    t1, t1ce = t1_t1ce
    expected = float(np.median(t1[et].astype(np.float64) * fit.slope + fit.intercept))
    if expected <= 0:
        return None
    return float(np.median(t1ce[et])) / expected


def apply_enhancement_rule(
    t1_t1ce: tuple[np.ndarray, np.ndarray] | None,
    wt: np.ndarray,
    et: np.ndarray,
    threshold: float,
    fits: ReferenceFitCache | None = None,
    *,
    tc: np.ndarray | None = None,
    core_fraction_min: float = 0.0,
) -> EnhancementEvidence | None:
    """Turn all ET into NCR (in place, ``et`` cleared) when the case shows no enhancement.

    Args:
        t1_t1ce: T1 and T1Gd (X, Y, Z) intensities, or ``None`` (no image evidence).
        wt: bool (X, Y, Z) tumour mask.
        et: bool (X, Y, Z) ET mask, cleared in place when the decision fires.
        threshold: ``et_enhancement_min``; 0 disables the image rule.
        fits: The case's fit cache (None: fit afresh).
        tc: bool (X, Y, Z) tumour-core mask, for the core-fraction rule (None: that rule off).
        core_fraction_min: ``et_core_fraction_min``; 0 disables the core-fraction rule.

    Returns:
        The evidence, or ``None`` when both rules are off (or cannot look: no images, no core),
        or there is no ET.
    """
    images = (
        t1_t1ce
        if threshold > 0
        and t1_t1ce is not None
        and t1_t1ce[0].shape == et.shape
        and t1_t1ce[1].shape == et.shape
        else None
    )
    core = int(np.count_nonzero(tc)) if core_fraction_min > 0 and tc is not None else 0
    if (images is None and not core) or not et.any():
        return None
    n = int(np.count_nonzero(et))
    evidence = EnhancementEvidence(
        ratio=enhancement_ratio(images, wt, et, fits) if images is not None else None,
        threshold=threshold if images is not None else 0.0,
        et_voxels=n,
        removed=False,
        core_fraction=n / core if core else None,
        core_fraction_min=core_fraction_min if core else 0.0,
    )
    if evidence.no_uptake or evidence.little_et:
        et[...] = False
        evidence = replace(evidence, removed=True)
    return evidence
