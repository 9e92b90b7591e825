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

Other rules of the field, for comparison (field survey): the BraTS 2023 paediatric winner turns
ET into NCR below an ET/WT ratio of 0.04; nnU-Net's BraTS entry below an ET volume tuned on
cross-validation. Both look at the prediction only; this one at the images.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

#: Fewest brain voxels outside the tumour for the T1 -> T1Gd fit; fewer gives no decision.
MIN_REFERENCE_VOXELS = 500
#: Every n-th voxel of the brain outside the tumour enters the fit (speed; 1 mm volumes).
REFERENCE_STRIDE = 7


@dataclass(frozen=True)
class EnhancementEvidence:
    """What the no-enhancement rule measured and decided for one case.

    Attributes:
        ratio: T1Gd inside the predicted ET over what T1 predicts for it (see the module
            docstring); ``None`` when it could not be measured.
        threshold: The rule's threshold (``et_enhancement_min``).
        et_voxels: Predicted ET voxels the ratio was measured on.
        removed: Whether the rule turned the ET into NCR.
    """

    ratio: float | None
    threshold: float
    et_voxels: int
    removed: bool

    def message(self, voxel_ml: float | None = None) -> str:
        """One line for a reviewer, e.g. ``ET removed: no enhancement (T1Gd/T1 1.02 < 1.10)``."""
        if self.ratio is None:
            return "ET kept: enhancement could not be measured"
        size = f"; {self.et_voxels * voxel_ml:.1f} mL became NCR" if voxel_ml else ""
        if self.removed:
            return (
                f"ET removed: no enhancement (T1Gd/T1 {self.ratio:.2f} < {self.threshold:.2f}"
                f"{size})"
            )
        return f"ET kept: enhancement T1Gd/T1 {self.ratio:.2f} >= {self.threshold:.2f}"

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
) -> EnhancementEvidence | None:
    """Turn all ET into NCR (in place, ``et`` cleared) when the case shows no enhancement.

    Args:
        t1_t1ce: T1 and T1Gd (X, Y, Z) intensities, or ``None`` (no decision without images).
        wt: bool (X, Y, Z) tumour mask.
        et: bool (X, Y, Z) ET mask, cleared in place when the rule fires.
        threshold: ``et_enhancement_min``; 0 disables the rule.
        fits: The case's fit cache (None: fit afresh).

    Returns:
        The evidence, or ``None`` when the rule is off, there are no images or no ET.
    """
    if threshold <= 0 or t1_t1ce is None or not et.any():
        return None
    if t1_t1ce[0].shape != et.shape or t1_t1ce[1].shape != et.shape:
        return None
    ratio = enhancement_ratio(t1_t1ce, wt, et, fits)
    n = int(et.sum())
    removed = ratio is not None and ratio < threshold
    if removed:
        et[...] = False
    return EnhancementEvidence(ratio=ratio, threshold=threshold, et_voxels=n, removed=removed)
