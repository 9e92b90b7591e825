"""Segmentation metrics per BraTS region, identical to the official BraTS evaluation.

The official tool (``brats-evaluation``, 'gli' configuration, built on panoptica) reports, per
region, ``global_bin_dsc`` and ``global_bin_hd95`` on the whole binary masks. This module
reproduces them exactly:

* Dice = 2|P ∩ R| / (|P| + |R|); 1 when both masks are empty, 0 when exactly one is.
* HD95: the surface of a mask is the mask minus its binary erosion by the 6-connected
  (face) structuring element, outside the image counting as background. The Euclidean
  distance transform (``sampling`` = voxel spacing) of the complement of each surface gives the
  distances from every surface voxel of the other mask; HD95 is the 95th percentile (linear
  interpolation, NumPy's default) of both directions pooled. 0 when both masks are empty, the
  BraTS penalty :data:`HD95_PENALTY` when exactly one is.

The official tool measures HD95 on the voxel grid: it does not pass the voxel spacing to its
distance computation (checked on its own sample, where the two anisotropic cases match only in
voxel units). :func:`region_metrics` and :func:`evaluate_labels` therefore default to
``hd95_in_mm=False`` (official; identical to mm on BraTS's 1 mm isotropic grid) and scale by the
spacing only when asked. Volumes always use the spacing.

HD95 is computed on the bounding box of both masks padded by one voxel, which is exact (every
surface voxel lies inside that box) and avoids distance transforms of the full volume.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
from scipy import ndimage
from scipy.spatial import KDTree

from bratseg.components import bounding_box
from bratseg.errors import BratsInputError
from bratseg.labels import (
    LABEL_VALUES,
    REGIONS,
    Convention,
    check_convention,
    detect_convention,
    rc_mask,
    region_masks,
)

logger = logging.getLogger(__name__)

#: HD95 reported by BraTS when exactly one of prediction / reference is empty (mm).
HD95_PENALTY = 373.13

#: Face connectivity (6-neighbourhood) of the erosion that defines a mask's surface, as in the
#: official evaluation.
SURFACE_CONNECTIVITY = 1

#: Percentile of the pooled surface distances.
HD_PERCENTILE = 95.0


@dataclass
class RegionMetrics:
    """Metrics of one region (WT, TC or ET).

    Attributes:
        dice: Dice similarity coefficient in [0, 1].
        hd95: 95th percentile Hausdorff distance (:data:`HD95_PENALTY` if penalised), in voxel
            units like the official evaluation (mm on a 1 mm grid) unless computed in mm.
        sensitivity: TP / (TP + FN); 1.0 when the reference is empty.
        specificity: TN / (TN + FP); 1.0 when the reference covers the whole image.
        volume_pred_ml: Predicted volume in millilitres.
        volume_ref_ml: Reference volume in millilitres.
        hd95_penalty: True when hd95 is the penalty (exactly one mask empty).
    """

    dice: float
    hd95: float
    sensitivity: float
    specificity: float
    volume_pred_ml: float
    volume_ref_ml: float
    hd95_penalty: bool

    def as_dict(self) -> dict[str, float | bool]:
        """Plain JSON-able dict of all fields."""
        return asdict(self)


def _check_pair(pred: np.ndarray, ref: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    pred = np.asarray(pred, dtype=bool)
    ref = np.asarray(ref, dtype=bool)
    if pred.shape != ref.shape:
        raise BratsInputError(
            f"prediction shape {pred.shape} differs from reference shape {ref.shape}"
        )
    return pred, ref


def _spacing_tuple(spacing: Sequence[float] | float, ndim: int) -> tuple[float, ...]:
    if np.isscalar(spacing):
        return (float(spacing),) * ndim  # type: ignore[arg-type]
    values = tuple(float(s) for s in spacing)  # type: ignore[union-attr]
    if len(values) != ndim or any(not np.isfinite(s) or s <= 0 for s in values):
        raise BratsInputError(f"invalid voxel spacing {values} for a {ndim}-D mask")
    return values


def dice(pred: np.ndarray, ref: np.ndarray) -> float:
    """Dice coefficient of two boolean masks of the same shape (1.0 when both are empty)."""
    pred, ref = _check_pair(pred, ref)
    n_pred = int(np.count_nonzero(pred))
    n_ref = int(np.count_nonzero(ref))
    if n_pred + n_ref == 0:
        return 1.0
    inter = int(np.count_nonzero(pred & ref))
    return 2.0 * inter / (n_pred + n_ref)


def _surface(mask: np.ndarray) -> np.ndarray:
    """Mask minus its 1-voxel erosion (face connectivity), outside the array as background."""
    structure = ndimage.generate_binary_structure(mask.ndim, SURFACE_CONNECTIVITY)
    return mask & ~ndimage.binary_erosion(mask, structure=structure, iterations=1, border_value=0)


def surface_distances(
    pred: np.ndarray, ref: np.ndarray, spacing: Sequence[float] | float = 1.0
) -> np.ndarray:
    """Pooled two-way surface distances of two non-empty boolean masks.

    Args:
        pred: Boolean mask (X, Y, Z), not empty.
        ref: Boolean mask (X, Y, Z), not empty.
        spacing: Voxel size in mm per axis.

    Returns:
        float64 array (n_pred_surface + n_ref_surface,): distances (mm) from every prediction
        surface voxel to the reference surface, followed by the reverse direction.
    """
    pred, ref = _check_pair(pred, ref)
    sampling = _spacing_tuple(spacing, pred.ndim)
    box = bounding_box(pred | ref, pad=1)
    if box is None or not pred.any() or not ref.any():
        raise BratsInputError("surface distances need two non-empty masks")
    # Pad with one background voxel on every side so the erosion treats the image border
    # exactly as the full-volume computation does (border_value=0) and the crop is exact.
    p = np.pad(pred[box], 1)
    r = np.pad(ref[box], 1)
    p_surf = _surface(p)
    r_surf = _surface(r)
    # Exact nearest-surface-voxel distances with a k-d tree over the surface voxels: identical to
    # the official distance_transform_edt(~surface, sampling=spacing) read at the other surface,
    # but proportional to the number of surface voxels rather than the box volume.
    scale = np.asarray(sampling, dtype=np.float64)
    p_pts = np.argwhere(p_surf) * scale
    r_pts = np.argwhere(r_surf) * scale
    d_to_ref, _ = KDTree(r_pts).query(p_pts, k=1)
    d_to_pred, _ = KDTree(p_pts).query(r_pts, k=1)
    return np.concatenate([d_to_ref, d_to_pred])


def hd95(
    pred: np.ndarray,
    ref: np.ndarray,
    spacing: Sequence[float] | float = 1.0,
    penalty: float = HD95_PENALTY,
) -> float:
    """95th percentile symmetric Hausdorff distance (mm), as the official BraTS evaluation.

    Args:
        pred: Boolean mask (X, Y, Z).
        ref: Boolean mask (X, Y, Z).
        spacing: Voxel size in mm per axis.
        penalty: Value returned when exactly one mask is empty.

    Returns:
        HD95 in mm; 0.0 when both masks are empty.
    """
    pred, ref = _check_pair(pred, ref)
    has_pred, has_ref = bool(pred.any()), bool(ref.any())
    if not has_pred and not has_ref:
        return 0.0
    if has_pred != has_ref:
        return float(penalty)
    return float(np.percentile(surface_distances(pred, ref, spacing), HD_PERCENTILE))


def region_metrics(
    pred: np.ndarray,
    ref: np.ndarray,
    spacing: Sequence[float] | float = (1.0, 1.0, 1.0),
    *,
    hd95_in_mm: bool = False,
) -> RegionMetrics:
    """All metrics of one region.

    Args:
        pred: Boolean predicted mask (X, Y, Z).
        ref: Boolean reference mask (X, Y, Z).
        spacing: Voxel size in mm per axis (volumes; HD95 too when ``hd95_in_mm``).
        hd95_in_mm: Scale HD95 distances by ``spacing``. False (default) measures them in voxel
            units like the official BraTS evaluation.

    Returns:
        :class:`RegionMetrics`.
    """
    pred, ref = _check_pair(pred, ref)
    sampling = _spacing_tuple(spacing, pred.ndim)
    voxel_ml = float(np.prod(sampling)) / 1000.0
    n_pred = int(np.count_nonzero(pred))
    n_ref = int(np.count_nonzero(ref))
    tp = int(np.count_nonzero(pred & ref))
    fp = n_pred - tp
    fn = n_ref - tp
    tn = pred.size - tp - fp - fn
    penalised = (n_pred == 0) != (n_ref == 0)
    return RegionMetrics(
        dice=1.0 if n_pred + n_ref == 0 else 2.0 * tp / (n_pred + n_ref),
        hd95=hd95(pred, ref, sampling if hd95_in_mm else 1.0),
        sensitivity=1.0 if n_ref == 0 else tp / n_ref,
        specificity=1.0 if tn + fp == 0 else tn / (tn + fp),
        volume_pred_ml=n_pred * voxel_ml,
        volume_ref_ml=n_ref * voxel_ml,
        hd95_penalty=penalised,
    )


def paired_region_masks(
    pred: np.ndarray,
    ref: np.ndarray,
    pred_convention: str | None = None,
    ref_convention: str | None = None,
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """WT/TC/ET masks of a predicted and a reference label map, conventions resolved together.

    Args:
        pred: Integer label map (X, Y, Z).
        ref: Integer label map of the same shape.
        pred_convention: ``"2021"``/``"2023"`` or None to detect; an ambiguous prediction (only
            0/1/2) takes the reference's convention.
        ref_convention: ``"2021"``/``"2023"`` or None to detect.

    Returns:
        ``(pred_masks, ref_masks)``, each ``{"wt", "tc", "et"}`` -> bool (X, Y, Z).

    Raises:
        BratsInputError: Different shapes or invalid label values.
    """
    pred = np.asarray(pred)
    ref = np.asarray(ref)
    if pred.shape != ref.shape:
        raise BratsInputError(
            f"prediction shape {pred.shape} differs from reference shape {ref.shape}"
        )
    ref_conv = detect_convention(ref, override=ref_convention)
    pred_conv = detect_convention(pred, override=pred_convention, default=ref_conv)
    pm, rm = region_masks(pred, pred_conv), region_masks(ref, ref_conv)
    p_rc, r_rc = rc_mask(pred, pred_conv), rc_mask(ref, ref_conv)
    if (p_rc is not None and p_rc.any()) or (r_rc is not None and r_rc.any()):
        empty = np.zeros(pred.shape, dtype=bool)
        pm["rc"] = p_rc if p_rc is not None else empty
        rm["rc"] = r_rc if r_rc is not None else empty
    return pm, rm


def evaluate_labels(
    pred: np.ndarray,
    ref: np.ndarray,
    *,
    spacing: Sequence[float] | float = (1.0, 1.0, 1.0),
    pred_convention: str | None = None,
    ref_convention: str | None = None,
    hd95_in_mm: bool = False,
) -> dict[str, dict[str, float | bool]]:
    """Per-region metrics of a predicted label map against a reference label map.

    Args:
        pred: Integer label map (X, Y, Z).
        ref: Integer label map (X, Y, Z).
        spacing: Voxel size in mm per axis.
        pred_convention: ``"2021"``/``"2023"`` or None to detect from the values.
        ref_convention: Same for the reference.
        hd95_in_mm: Scale HD95 by ``spacing`` (default False: voxel units, as the official
            evaluation).

    Returns:
        ``{"wt": {...}, "tc": {...}, "et": {...}}``, each with the keys of :class:`RegionMetrics`,
        plus ``"rc"`` (resection cavity, its own region) when either map holds RC (BraTS 2024).
    """
    pm, rm = paired_region_masks(pred, ref, pred_convention, ref_convention)
    return {
        r: region_metrics(pm[r], rm[r], spacing, hd95_in_mm=hd95_in_mm).as_dict()
        for r in (*REGIONS, "rc")
        if r in pm
    }


def dice_regions(pred: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """Dice of stacked region masks, vectorised (for training validation).

    Args:
        pred: Boolean array (3, ...) (or (C, ...)), regions in :data:`REGIONS` order.
        ref: Boolean array of the same shape.

    Returns:
        float64 array (C,): Dice per channel; 1.0 where both masks are empty.
    """
    pred, ref = _check_pair(pred, ref)
    c = pred.shape[0]
    p = pred.reshape(c, -1)
    r = ref.reshape(c, -1)
    inter = np.count_nonzero(p & r, axis=1).astype(np.float64)
    total = (np.count_nonzero(p, axis=1) + np.count_nonzero(r, axis=1)).astype(np.float64)
    out = np.ones(c, dtype=np.float64)
    nonempty = total > 0
    out[nonempty] = 2.0 * inter[nonempty] / total[nonempty]
    return out


def tumour_volumes_ml(
    labels: np.ndarray,
    convention: Convention | str,
    spacing: Sequence[float] | float = (1.0, 1.0, 1.0),
) -> dict[str, float]:
    """Tissue and region volumes of a label map in millilitres.

    Args:
        labels: Integer label map (X, Y, Z).
        convention: Label convention of ``labels``.
        spacing: Voxel size in mm per axis.

    Returns:
        ``{"ncr", "ed", "et", "tc", "wt"}`` -> volume in mL, plus ``"rc"`` for BraTS 2024.
    """
    values = LABEL_VALUES[check_convention(convention)]
    lab = np.asarray(labels)
    voxel_ml = float(np.prod(_spacing_tuple(spacing, lab.ndim))) / 1000.0
    n = {t: int(np.count_nonzero(lab == v)) for t, v in values.items()}
    out = {t: n[t] * voxel_ml for t in ("ncr", "ed", "et")}
    out["tc"] = (n["ncr"] + n["et"]) * voxel_ml
    out["wt"] = (n["ncr"] + n["ed"] + n["et"]) * voxel_ml
    if "rc" in n:  # BraTS 2024: the resection cavity, not part of any tumour region
        out["rc"] = n["rc"] * voxel_ml
    return out
