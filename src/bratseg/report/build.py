"""The clinical report of one case: volumes, lesions, RANO products, AI-vs-corrected, follow-up.

:func:`build_report` turns a label map and its geometry into a :class:`CaseReport`:

* per tissue and region (NCR, ED, ET, TC, WT): the volume from
  :func:`bratseg.metrics.tumour_volumes_ml` (the numbers ``napari-brats evaluate`` prints), the
  number of 26-connected lesions, and, when given, the AI proposal's volume and its Dice with the
  labels (:func:`bratseg.metrics.dice`), the Dice against a reference, and the change since a
  prior report of the same patient (mL and %; no registration, volumes only);
* the ET/TC ratio;
* the lesions and enhancing lesions of :mod:`bratseg.report.lesions`, with the sum of the
  bidimensional products of the target lesions (and its change since the prior report);
* who and what made it: case id, reviewer, status, model names and sha256 (all optional).

The report is a plain JSON object (:meth:`CaseReport.to_dict`); a saved one serves as the prior
of the next.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bratseg.errors import BratsInputError
from bratseg.labels import LABEL_VALUES, Convention, check_convention, region_masks
from bratseg.report.lesions import (
    LESION_CONNECTIVITY,
    EnhancingLesion,
    Lesion,
    brain_mask,
    find_lesions,
)

#: Rows of the report table: tissues NCR, ED, ET, then regions TC, WT.
STRUCTURES: tuple[str, ...] = ("ncr", "ed", "et", "tc", "wt")
#: Version of the report's JSON layout.
REPORT_FORMAT = 1


@dataclass
class ReportInfo:
    """Who and what made the labels (every field optional).

    Attributes:
        case_id: The case's id.
        reviewer: Who reviewed the labels.
        status: Review status (e.g. ``"draft"``, ``"reviewed"``, ``"final"``).
        model_names: Names of the model(s) behind the AI proposal.
        model_sha256: Their checkpoints' sha256.
        notes: Decisions a reader must see, e.g. ``ET removed: no enhancement (...)``.
    """

    case_id: str = ""
    reviewer: str | None = None
    status: str | None = None
    model_names: list[str] = field(default_factory=list)
    model_sha256: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @classmethod
    def from_record(cls, record: dict[str, Any], **overrides: Any) -> ReportInfo:
        """Read a provenance record or a review session's ``session.json``: their ``model`` block,
        ``case_id``, ``reviewer`` and ``status`` (else those of the last sign-off in
        ``signoffs``, an approval meaning ``approved``); ``overrides`` that are not None win."""
        model = record.get("model") or {}
        signoffs = [s for s in record.get("signoffs") or [] if isinstance(s, dict)]
        last = signoffs[-1] if signoffs else {}
        status = record.get("status") or ("approved" if last.get("action") == "approve" else None)
        info = cls(
            case_id=str(record.get("case_id") or ""),
            reviewer=record.get("reviewer") or last.get("reviewer"),
            status=status,
            model_names=[str(n) for n in model.get("names", [])],
            model_sha256=[str(s) for s in model.get("sha256", [])],
        )
        for key, value in overrides.items():
            if value is not None:
                setattr(info, key, value)
        return info


@dataclass
class CaseReport:
    """Everything the report shows; :meth:`to_dict` is its JSON form.

    Attributes:
        info: Case, reviewer, status and model.
        convention: Label convention of the labels.
        spacing_mm: Voxel size per storage axis.
        axcodes: Storage orientation (nibabel axis codes, e.g. ``LPS``).
        regions: ``{structure: row}`` for :data:`STRUCTURES`; each row holds ``volume_ml`` and
            ``lesions``, plus ``proposal_ml``, ``delta_ml``, ``dice_vs_proposal`` with a proposal,
            ``dice_vs_reference`` with a reference and ``prior_ml``, ``change_ml``,
            ``change_pct`` with a prior report (None where undefined, e.g. % of 0 mL).
        et_tc_ratio: ET volume over TC volume (None without tumour core).
        lesions: Tumour lesions, largest first.
        enhancing: Enhancing lesions, largest first, with their RANO measurements.
        sum_of_products_mm2: Sum of the target lesions' bidimensional products.
        prior: ``{"case_id", "generated", "sum_of_products_mm2", "change_mm2", "change_pct"}``
            of the prior report, or None.
        generated: ISO time the report was made.
        rc_ml: Resection cavity volume (BraTS 2024 labels), else None.
    """

    info: ReportInfo
    convention: str
    spacing_mm: list[float]
    axcodes: str
    regions: dict[str, dict[str, Any]]
    et_tc_ratio: float | None
    lesions: list[Lesion]
    enhancing: list[EnhancingLesion]
    sum_of_products_mm2: float
    prior: dict[str, Any] | None = None
    generated: str = ""
    rc_ml: float | None = None

    @property
    def measurable(self) -> list[EnhancingLesion]:
        """Measurable enhancing lesions (both diameters >= 10 mm), largest product first."""
        return sorted(
            (e for e in self.enhancing if e.rano.measurable), key=lambda e: -e.rano.product_mm2
        )

    def to_dict(self) -> dict[str, Any]:
        """The report as one JSON-able object."""
        return {
            "format": REPORT_FORMAT,
            "case_id": self.info.case_id,
            "reviewer": self.info.reviewer,
            "status": self.info.status,
            "model": {"names": list(self.info.model_names), "sha256": list(self.info.model_sha256)},
            "notes": list(self.info.notes),
            "generated": self.generated,
            "convention": self.convention,
            "spacing_mm": self.spacing_mm,
            "axcodes": self.axcodes,
            "regions": self.regions,
            "rc_ml": self.rc_ml,
            "et_tc_ratio": self.et_tc_ratio,
            "n_lesions": len(self.lesions),
            "lesions": [lesion.to_dict() for lesion in self.lesions],
            "n_measurable": len(self.measurable),
            "enhancing_lesions": [e.to_dict() for e in self.enhancing],
            "sum_of_products_mm2": self.sum_of_products_mm2,
            "prior": self.prior,
        }


def structure_masks(labels: np.ndarray, convention: Convention) -> dict[str, np.ndarray]:
    """Boolean masks of the :data:`STRUCTURES` (tissues NCR, ED, ET; regions TC, WT), (X, Y, Z)."""
    values = LABEL_VALUES[check_convention(convention)]
    masks = {tissue: np.asarray(labels) == values[tissue] for tissue in ("ncr", "ed", "et")}
    regions = region_masks(labels, convention)
    masks["tc"], masks["wt"] = regions["tc"], regions["wt"]
    return masks


def _check_same_grid(name: str, array: np.ndarray | None, shape: tuple[int, ...]) -> None:
    if array is not None and tuple(np.shape(array)[-3:]) != tuple(shape):
        raise BratsInputError(
            f"{name} shape {tuple(np.shape(array)[-3:])} differs from the labels' {tuple(shape)}"
        )


def _change(now: float, before: float | None) -> tuple[float | None, float | None]:
    if before is None:
        return None, None
    return now - before, (100.0 * (now - before) / before if before > 0 else None)


def build_report(
    labels: np.ndarray,
    convention: Convention | str,
    affine: np.ndarray,
    spacing: Sequence[float] | None = None,
    *,
    images: np.ndarray | None = None,
    proposal: np.ndarray | None = None,
    reference: np.ndarray | None = None,
    reference_convention: str | None = None,
    prior: dict[str, Any] | None = None,
    info: ReportInfo | None = None,
) -> CaseReport:
    """The clinical report of one label map.

    Args:
        labels: Integer label map (X, Y, Z) (the corrected segmentation).
        convention: Its label convention (see :mod:`bratseg.labels`).
        affine: (4, 4) voxel-to-world matrix.
        spacing: Voxel size in mm per axis (default: the affine's column norms).
        images: Optional MRI (C, X, Y, Z) or (X, Y, Z): the brain mask (> 0) for the midline.
        proposal: Optional AI proposal (X, Y, Z) in ``convention``.
        reference: Optional reference segmentation (X, Y, Z).
        reference_convention: Its convention (default ``convention``).
        prior: Optional earlier report of the same patient (:meth:`CaseReport.to_dict`).
        info: Case, reviewer, status and model.

    Returns:
        The :class:`CaseReport`.

    Raises:
        BratsInputError: Shapes that differ or an unusable prior report.
    """
    from bratseg.components import mask_components
    from bratseg.labels import convert_labels
    from bratseg.metrics import dice, tumour_volumes_ml
    from bratseg.orientation import axcodes

    conv = check_convention(convention)
    labels = np.asarray(labels)
    affine = np.asarray(affine, dtype=np.float64)
    if spacing is None:
        spacing = tuple(float(v) for v in np.linalg.norm(affine[:3, :3], axis=0))
    spacing = tuple(float(s) for s in spacing)
    for name, array in (("images", images), ("AI proposal", proposal), ("reference", reference)):
        _check_same_grid(name, array, labels.shape)
    volumes = tumour_volumes_ml(labels, conv, spacing)
    masks = structure_masks(labels, conv)
    ai = structure_masks(proposal, conv) if proposal is not None else None
    ai_ml = tumour_volumes_ml(proposal, conv, spacing) if proposal is not None else None
    ref = None
    if reference is not None:
        ref = structure_masks(
            convert_labels(
                reference, check_convention(reference_convention or conv), conv, drop_rc=True
            ),
            conv,
        )
    prior_regions = _prior_regions(prior) if prior is not None else None
    regions: dict[str, dict[str, Any]] = {}
    for key in STRUCTURES:
        row: dict[str, Any] = {
            "volume_ml": volumes[key],
            "lesions": mask_components(masks[key], LESION_CONNECTIVITY)[2],
        }
        if ai is not None and ai_ml is not None:
            row.update(
                proposal_ml=ai_ml[key],
                delta_ml=volumes[key] - ai_ml[key],
                dice_vs_proposal=dice(ai[key], masks[key]),
            )
        if ref is not None:
            row["dice_vs_reference"] = dice(masks[key], ref[key])
        if prior_regions is not None:
            before = prior_regions.get(key)
            change_ml, change_pct = _change(volumes[key], before)
            row.update(prior_ml=before, change_ml=change_ml, change_pct=change_pct)
        regions[key] = row
    brain = brain_mask(images) if images is not None else None
    lesions, enhancing = find_lesions(labels, conv, affine, spacing, brain)
    spd = float(sum(e.rano.product_mm2 for e in enhancing if e.target))
    prior_summary = None
    if prior is not None:
        before = prior.get("sum_of_products_mm2")
        change_mm2, change_pct = _change(spd, float(before) if before is not None else None)
        prior_summary = {
            "case_id": prior.get("case_id"),
            "generated": prior.get("generated"),
            "sum_of_products_mm2": before,
            "change_mm2": change_mm2,
            "change_pct": change_pct,
        }
    return CaseReport(
        info=info or ReportInfo(),
        convention=conv,
        spacing_mm=list(spacing),
        axcodes="".join(axcodes(affine)),
        regions=regions,
        et_tc_ratio=volumes["et"] / volumes["tc"] if volumes["tc"] > 0 else None,
        lesions=lesions,
        enhancing=enhancing,
        sum_of_products_mm2=spd,
        prior=prior_summary,
        generated=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        rc_ml=volumes.get("rc"),
    )


def _prior_regions(prior: dict[str, Any]) -> dict[str, float | None]:
    """``{structure: volume_ml}`` of a prior report, checked."""
    regions = prior.get("regions") if isinstance(prior, dict) else None
    if not isinstance(regions, dict) or not all(
        isinstance(regions.get(k), dict) for k in STRUCTURES
    ):
        raise BratsInputError(
            "prior report has no 'regions' table with NCR, ED, ET, TC and WT volumes"
        )
    out: dict[str, float | None] = {}
    for key in STRUCTURES:
        value = regions[key].get("volume_ml")
        if value is not None and not isinstance(value, (int, float)):
            raise BratsInputError(
                f"prior report: volume of {key.upper()} is not a number ({value!r})"
            )
        out[key] = None if value is None else float(value)
    return out


def load_json_record(path: str | Path, what: str = "report") -> dict[str, Any]:
    """A JSON object from a file (a prior report, a provenance record, a ``session.json``).

    Raises:
        BratsInputError: Missing, unreadable or not a JSON object; for a prior ``report`` also
            one without a regions table.
    """
    path = Path(path)
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BratsInputError(f"{what} file not found", path) from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BratsInputError(
            f"cannot read {what} JSON: {' '.join(str(exc).split())}", path
        ) from None
    if not isinstance(record, dict):
        raise BratsInputError(f"{what} file is not a JSON object", path)
    if what == "report":
        try:
            _prior_regions(record)
        except BratsInputError as exc:
            raise BratsInputError(exc.reason, path) from None
    return record
