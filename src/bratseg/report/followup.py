"""Follow-up: two scans of one patient compared, the later one registered onto the earlier.

Volumes, lesions and RANO products are measured on each scan's own grid (no resampling touches
them); the follow-up report carries the baseline as its prior, so every structure's change in mL
and % and the change of the sum of products come from :func:`bratseg.report.build_report`. The
follow-up's T1Gd is rigidly registered onto the baseline's (:func:`bratseg.io.align.rigid_transform`,
mutual information) and its labels resampled (nearest neighbour) onto the baseline grid, for the
side-by-side view and the overlap of the two whole tumours. The response category is a suggestion
with its rule (:mod:`bratseg.report.response`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import nibabel as nib
import numpy as np

from bratseg.io.align import AlignmentReport, rigid_transform, to_sitk
from bratseg.labels import Convention, region_masks
from bratseg.report.build import ReportInfo, build_report
from bratseg.report.response import CAVEAT, ResponseSuggestion, suggest_response

if TYPE_CHECKING:
    from bratseg.io import Case

logger = logging.getLogger(__name__)

T1GD = 1  # index of the T1Gd in a case's (4, X, Y, Z) image


@dataclass
class Comparison:
    """Two time points of one patient.

    Attributes:
        baseline: Report of the baseline (:meth:`CaseReport.to_dict` form).
        followup: Report of the follow-up, with ``prior`` = the baseline and per structure
            ``prior_ml``, ``change_ml``, ``change_pct``.
        registration: The rigid registration of the follow-up onto the baseline (None if skipped).
        followup_on_baseline: uint8 follow-up labels (X, Y, Z) on the baseline grid, in the
            baseline's convention (None without registration).
        followup_t1gd_on_baseline: float32 follow-up T1Gd (X, Y, Z) on the baseline grid.
        wt_dice_registered: Dice of the two whole tumours on the baseline grid (overlap, not
            accuracy: a changing tumour lowers it).
        suggestions: Suggested response categories with their rules.
    """

    baseline: dict[str, Any]
    followup: dict[str, Any]
    registration: AlignmentReport | None = None
    followup_on_baseline: np.ndarray | None = None
    followup_t1gd_on_baseline: np.ndarray | None = None
    wt_dice_registered: float | None = None
    suggestions: list[ResponseSuggestion] = field(default_factory=list)

    def changes(self) -> dict[str, dict[str, float | None]]:
        """``{structure: {baseline_ml, followup_ml, change_ml, change_pct}}``."""
        return {
            key: {
                "baseline_ml": row.get("prior_ml"),
                "followup_ml": row["volume_ml"],
                "change_ml": row.get("change_ml"),
                "change_pct": row.get("change_pct"),
            }
            for key, row in self.followup["regions"].items()
        }

    def to_dict(self) -> dict[str, Any]:
        """JSON form (without the resampled labels)."""
        reg = self.registration
        return {
            "baseline": self.baseline,
            "followup": self.followup,
            "changes": self.changes(),
            "sum_of_products_mm2": {
                "baseline": self.baseline["sum_of_products_mm2"],
                "followup": self.followup["sum_of_products_mm2"],
                "change_mm2": (self.followup.get("prior") or {}).get("change_mm2"),
                "change_pct": (self.followup.get("prior") or {}).get("change_pct"),
            },
            "registration": None
            if reg is None
            else {
                "rotation_deg": reg.rotation_deg,
                "translation_mm": reg.translation_mm,
                "mi_before": reg.mi_before,
                "mi_after": reg.mi_after,
                "poor": reg.poor,
                "seconds": reg.seconds,
                "line": reg.line(),
            },
            "wt_dice_registered": self.wt_dice_registered,
            "suggestions": [s.to_dict() for s in self.suggestions],
            "caveat": CAVEAT,
        }


def register_followup(
    baseline: Case, followup: Case, followup_labels: np.ndarray
) -> tuple[np.ndarray, np.ndarray, AlignmentReport]:
    """Register the follow-up T1Gd onto the baseline T1Gd.

    Returns:
        ``(labels, t1gd, report)``: the follow-up labels (uint8, nearest neighbour) and T1Gd
        (float32, linear) resampled onto the baseline grid (X, Y, Z), and the registration's report.
    """
    import SimpleITK as sitk

    fixed_img = nib.Nifti1Image(baseline.image[T1GD], baseline.affine)
    moving_img = nib.Nifti1Image(followup.image[T1GD], followup.affine)
    fixed, moving = to_sitk(fixed_img), to_sitk(moving_img)
    transform, report = rigid_transform(fixed, moving, "follow-up T1Gd", target="baseline T1Gd")
    labels = sitk.GetImageFromArray(np.ascontiguousarray(followup_labels.transpose(2, 1, 0)))
    labels.CopyInformation(moving)  # the follow-up's grid
    moved = sitk.Resample(labels, fixed, transform, sitk.sitkNearestNeighbor, 0.0, sitk.sitkUInt8)
    image = sitk.Resample(moving, fixed, transform, sitk.sitkLinear, 0.0, sitk.sitkFloat32)
    return (
        np.ascontiguousarray(sitk.GetArrayFromImage(moved).transpose(2, 1, 0)),
        np.ascontiguousarray(sitk.GetArrayFromImage(image).transpose(2, 1, 0)),
        report,
    )


def compare_cases(
    baseline: Case,
    baseline_labels: np.ndarray,
    baseline_convention: Convention,
    followup: Case,
    followup_labels: np.ndarray,
    followup_convention: Convention,
    *,
    register: bool = True,
) -> Comparison:
    """Compare two time points.

    Args:
        baseline: The earlier :class:`bratseg.io.Case`; ``baseline_labels`` (X, Y, Z) on its grid.
        baseline_convention: Their convention.
        followup: The later case; ``followup_labels`` (X', Y', Z') on its own grid.
        followup_convention: Their convention.
        register: Register the follow-up onto the baseline (needs SimpleITK).

    Returns:
        The :class:`Comparison`.
    """
    from bratseg.labels import convert_labels
    from bratseg.metrics import dice

    before = build_report(
        baseline_labels,
        baseline_convention,
        baseline.affine,
        baseline.spacing,
        images=baseline.image,
        info=ReportInfo(case_id=baseline.case_id),
    ).to_dict()
    after = build_report(
        followup_labels,
        followup_convention,
        followup.affine,
        followup.spacing,
        images=followup.image,
        prior=before,
        info=ReportInfo(case_id=followup.case_id),
    ).to_dict()
    result = Comparison(before, after, suggestions=suggest_response(before, after))
    if register:
        moved, t1gd, report = register_followup(baseline, followup, followup_labels)
        moved = convert_labels(moved, followup_convention, baseline_convention, drop_rc=True)
        result.registration = report
        result.followup_on_baseline = moved.astype(np.uint8)
        result.followup_t1gd_on_baseline = t1gd
        result.wt_dice_registered = float(
            dice(
                region_masks(baseline_labels, baseline_convention)["wt"],
                region_masks(moved, baseline_convention)["wt"],
            )
        )
        logger.info("%s", report.line())
    return result
