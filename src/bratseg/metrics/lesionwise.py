"""Lesion-wise (instance) metrics per BraTS region, as the official panoptica-based evaluation.

Each region mask is split into lesions by 26-connected components. Reference and predicted
lesions are matched one-to-one greedily by decreasing IoU, any overlap (IoU > 0) being enough.
Matched pairs are true positives; unmatched reference lesions are false negatives and unmatched
predicted ones false positives. Per matched pair, Dice and HD95 are computed as in
:mod:`bratseg.metrics` (HD95 in voxel units).

Checked against the official sample: numbers of lesions, TP/FP/FN and the mean Dice of matched
lesions (``sq_dsc``) equal the official JSON for every case and region; the mean HD95 of matched
lesions (``sq_hd95``) equals it on the 1 mm isotropic cases.

:func:`lesionwise_metrics` also reports the BraTS 2023 lesion-wise aggregates, where every
FP/FN lesion counts as Dice 0 and HD95 :data:`~bratseg.metrics.HD95_PENALTY`.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
from scipy import ndimage

from bratseg.components import bounding_box, label_components
from bratseg.errors import BratsInputError
from bratseg.labels import REGIONS
from bratseg.metrics.regions import HD95_PENALTY, dice, hd95, paired_region_masks

logger = logging.getLogger(__name__)

#: 26-connectivity, as the official instance approximation.
LESION_CONNECTIVITY = 3


def _union_box(a: tuple[slice, ...], b: tuple[slice, ...]) -> tuple[slice, ...]:
    return tuple(slice(min(x.start, y.start), max(x.stop, y.stop)) for x, y in zip(a, b))


def match_lesions(
    ref: np.ndarray, pred: np.ndarray, connectivity: int = LESION_CONNECTIVITY
) -> tuple[np.ndarray, np.ndarray, list[tuple[int, int, float]]]:
    """Label lesions and match them one-to-one by decreasing IoU (IoU > 0).

    Args:
        ref: Boolean reference mask (X, Y, Z).
        pred: Boolean predicted mask (X, Y, Z).
        connectivity: 1, 2 or 3 (26-connectivity, default).

    Returns:
        ``(ref_lesions, pred_lesions, matches)``: int32 (X, Y, Z) lesion ids (0 background) of
        both masks, and the list of matched ``(ref_id, pred_id, iou)``.
    """
    ref_lab, n_ref = label_components(ref, connectivity)
    pred_lab, n_pred = label_components(pred, connectivity)
    both = (ref_lab > 0) & (pred_lab > 0)
    pair_ids = ref_lab[both].astype(np.int64) * (n_pred + 1) + pred_lab[both]
    inter = np.bincount(pair_ids, minlength=(n_ref + 1) * (n_pred + 1)).reshape(
        n_ref + 1, n_pred + 1
    )
    size_ref = np.bincount(ref_lab.ravel(), minlength=n_ref + 1)
    size_pred = np.bincount(pred_lab.ravel(), minlength=n_pred + 1)
    ri, pj = np.nonzero(inter)
    keep = (ri > 0) & (pj > 0)
    ri, pj = ri[keep], pj[keep]
    iou = inter[ri, pj] / (size_ref[ri] + size_pred[pj] - inter[ri, pj])
    matches: list[tuple[int, int, float]] = []
    used_ref: set[int] = set()
    used_pred: set[int] = set()
    for k in np.argsort(-iou, kind="stable"):
        i, j = int(ri[k]), int(pj[k])
        if i in used_ref or j in used_pred:
            continue
        used_ref.add(i)
        used_pred.add(j)
        matches.append((i, j, float(iou[k])))
    return ref_lab, pred_lab, matches


def region_lesionwise(
    pred: np.ndarray,
    ref: np.ndarray,
    connectivity: int = LESION_CONNECTIVITY,
    spacing: Sequence[float] = (1.0, 1.0, 1.0),
) -> dict[str, float | int]:
    """Lesion-wise metrics of one region.

    Args:
        pred: Boolean predicted mask (X, Y, Z).
        ref: Boolean reference mask (X, Y, Z).
        connectivity: Lesion connectivity (3 = 26-connected).
        spacing: Millimetres per voxel step along each array axis, for the lesion HD95.

    Returns:
        Dict with ``n_ref``, ``n_pred``, ``tp``, ``fp``, ``fn``, ``sq_dsc`` / ``sq_hd95`` (mean
        Dice / HD95 of matched lesions, NaN without matches), and ``lesionwise_dsc`` /
        ``lesionwise_hd95`` (BraTS 2023 style: FP and FN lesions count as Dice 0 and HD95
        penalty; 1 and 0 when both masks are empty).
    """
    pred = np.asarray(pred, dtype=bool)
    ref = np.asarray(ref, dtype=bool)
    if pred.shape != ref.shape:
        raise BratsInputError(f"prediction shape {pred.shape} differs from reference {ref.shape}")
    box = bounding_box(ref | pred)
    if box is not None:  # lesions never cross the box of both masks: work on it only
        ref, pred = ref[box], pred[box]
    ref_lab, pred_lab, matches = match_lesions(ref, pred, connectivity)
    ref_boxes = ndimage.find_objects(ref_lab)
    pred_boxes = ndimage.find_objects(pred_lab)
    dscs, hds = [], []
    for i, j, _ in matches:
        box = _union_box(ref_boxes[i - 1], pred_boxes[j - 1])
        r = ref_lab[box] == i
        p = pred_lab[box] == j
        dscs.append(dice(p, r))
        hds.append(hd95(p, r, spacing))
    n_ref, n_pred, tp = len(ref_boxes), len(pred_boxes), len(matches)
    fp, fn = n_pred - tp, n_ref - tp
    n_all = tp + fp + fn
    return {
        "n_ref": n_ref,
        "n_pred": n_pred,
        "tp": tp,
        "fp": fp,
        "fn": fn,
        "sq_dsc": float(np.mean(dscs)) if dscs else float("nan"),
        "sq_hd95": float(np.mean(hds)) if hds else float("nan"),
        "lesionwise_dsc": float(np.sum(dscs) / n_all) if n_all else 1.0,
        "lesionwise_hd95": (
            float((np.sum(hds) + (fp + fn) * HD95_PENALTY) / n_all) if n_all else 0.0
        ),
    }


def lesionwise_metrics(
    pred: np.ndarray,
    ref: np.ndarray,
    *,
    pred_convention: str | None = None,
    ref_convention: str | None = None,
    connectivity: int = LESION_CONNECTIVITY,
    spacing: Sequence[float] = (1.0, 1.0, 1.0),
    official_axis_order: bool = True,
) -> dict[str, dict[str, float | int]]:
    """Lesion-wise metrics per region of two label maps.

    Unlike the legacy whole-volume HD95 (voxel units), the official lesion-wise evaluation
    (BraTS 2023+, panoptica) measures each lesion's HD95 with the image spacing, but applies it in
    reversed axis order: SimpleITK's (z, y, x) spacing on the (x, y, z) NIfTI array. Its own
    example shows this (BraTS-MET-00630: 0.86 x 0.86 x 1.5 mm voxels; matched only with the
    spacing reversed). ``official_axis_order=True`` (default) does the same so the numbers match
    the official tool; ``False`` applies each spacing to its own axis. Both agree on isotropic
    data such as the 1 mm BraTS grid.

    Args:
        pred: Integer label map (X, Y, Z).
        ref: Integer label map (X, Y, Z).
        pred_convention: Convention of ``pred`` or None to detect.
        ref_convention: Convention of ``ref`` or None to detect.
        connectivity: Lesion connectivity (3 = 26-connected).
        spacing: Voxel size (x, y, z) in mm of the reference image.
        official_axis_order: Apply ``spacing`` reversed, as the official tool does.

    Returns:
        ``{"wt": {...}, "tc": {...}, "et": {...}}`` with the keys of :func:`region_lesionwise`.
    """
    pm, rm = paired_region_masks(pred, ref, pred_convention, ref_convention)
    steps = tuple(float(s) for s in spacing)
    if official_axis_order:
        steps = steps[::-1]
    return {r: region_lesionwise(pm[r], rm[r], connectivity, steps) for r in REGIONS}


__all__: Sequence[str] = (
    "LESION_CONNECTIVITY",
    "lesionwise_metrics",
    "match_lesions",
    "region_lesionwise",
)
