"""Segmentation metrics, identical to the official BraTS evaluation.

- :mod:`~bratseg.metrics.regions`: Dice, HD95, sensitivity, specificity and volumes per BraTS
  region (the whole-mask numbers the official tool reports);
- :mod:`~bratseg.metrics.lesionwise`: the BraTS 2023 lesion-wise metrics.

The region metrics are re-exported here: ``from bratseg.metrics import dice``.
"""

from bratseg.metrics.regions import (
    HD95_PENALTY,
    HD_PERCENTILE,
    SURFACE_CONNECTIVITY,
    RegionMetrics,
    dice,
    dice_regions,
    evaluate_labels,
    hd95,
    paired_region_masks,
    region_metrics,
    surface_distances,
    tumour_volumes_ml,
)

__all__ = [
    "HD95_PENALTY",
    "HD_PERCENTILE",
    "SURFACE_CONNECTIVITY",
    "RegionMetrics",
    "dice",
    "dice_regions",
    "evaluate_labels",
    "hd95",
    "paired_region_masks",
    "region_metrics",
    "surface_distances",
    "tumour_volumes_ml",
]
