"""A *suggested* response category between two time points, with the rule that gave it.

Never a diagnosis: RANO also needs the clinical status, the corticosteroid dose, a confirmation
scan and the radiologist's reading of new lesions and non-measurable disease, none of which is
known here. Each suggestion carries the rule it applied so the reader can check it.

- **Enhancing disease**, RANO 2.0 (Wen et al., J Clin Oncol 2023), on the ET label:
  bidimensional (sum of products of perpendicular diameters, SPD): PD at >= +25 %, PR at <= -50 %;
  volumetric (ET volume): PD at >= +40 %, PR at <= -65 %; CR when no enhancing tumour is left.
- **Non-enhancing disease**, RANO-LGG (van den Bent et al., Lancet Oncol 2011), on the T2/FLAIR
  abnormality (here the whole tumour, WT), in its volumetric form: the bidimensional thresholds
  (PD +25 %, PR -50 %, minor response -25 % of the product) taken to volumes of a sphere-like
  lesion, ``(1 + p) ** 1.5``: PD at >= +40 %, PR at <= -65 %, MR at <= -35 %.

A baseline smaller than :data:`MIN_BASELINE_ML` (or without a measurable enhancing lesion for the
bidimensional rule) is "not evaluable": a percentage of almost nothing means nothing.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

#: Smallest baseline volume (mL) a volumetric rule is applied to.
MIN_BASELINE_ML = 1.0
#: Below this volume (mL) a follow-up region counts as gone (complete response).
GONE_ML = 0.01
#: (progression at >= %, partial response at <= %, minor response at <= % or None) per rule.
THRESHOLDS: dict[str, tuple[float, float, float | None]] = {
    "enhancing-bidimensional": (25.0, -50.0, None),
    "enhancing-volumetric": (40.0, -65.0, None),
    "non-enhancing-volumetric": (40.0, -65.0, -35.0),
}
RULE_SOURCES = {
    "enhancing-bidimensional": "RANO 2.0 bidimensional (SPD of enhancing lesions)",
    "enhancing-volumetric": "RANO 2.0 volumetric (enhancing tumour volume)",
    "non-enhancing-volumetric": "RANO-LGG, volumetric equivalent (T2/FLAIR abnormality = WT)",
}
CAVEAT = (
    "Suggestion only: RANO also needs clinical status, steroid dose, a confirmation scan and "
    "the reading of new and non-measurable lesions."
)


@dataclass
class ResponseSuggestion:
    """One rule applied to one kind of disease.

    Attributes:
        rule: Key of :data:`THRESHOLDS`.
        category: ``CR``, ``PR``, ``MR``, ``SD``, ``PD`` or ``not evaluable``.
        baseline: The baseline quantity (mL or mm²).
        followup: The follow-up quantity.
        change_pct: Change in % (None when not evaluable).
        text: The rule as applied, in one line ("suggestion: ...").
    """

    rule: str
    category: str
    baseline: float
    followup: float
    change_pct: float | None
    text: str

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return asdict(self)


def _rule_line(rule: str) -> str:
    pd, pr, mr = THRESHOLDS[rule]
    parts = [f"PD >= +{pd:g}%", f"PR <= {pr:g}%"]
    if mr is not None:
        parts.append(f"MR <= {mr:g}%")
    return f"{RULE_SOURCES[rule]}: " + ", ".join(parts) + ", else SD"


def classify(
    rule: str,
    baseline: float,
    followup: float,
    unit: str,
    *,
    evaluable: bool = True,
    gone: bool = False,
) -> ResponseSuggestion:
    """Apply ``rule`` to a baseline and a follow-up quantity (volume in mL or SPD in mm²).

    Args:
        rule: Key of :data:`THRESHOLDS`.
        baseline: Baseline quantity.
        followup: Follow-up quantity.
        unit: Its unit, for the text.
        evaluable: False when the baseline is not measurable.
        gone: The disease the rule follows has disappeared (complete response).
    """
    pd, pr, mr = THRESHOLDS[rule]
    rule_text = _rule_line(rule)
    if not evaluable or baseline <= 0:
        return ResponseSuggestion(
            rule,
            "not evaluable",
            baseline,
            followup,
            None,
            f"suggestion: not evaluable (baseline {baseline:.2f} {unit} is not measurable); "
            f"rule {rule_text}",
        )
    change = 100.0 * (followup - baseline) / baseline
    if gone:
        category = "CR"
    elif change >= pd:
        category = "PD"
    elif change <= pr:
        category = "PR"
    elif mr is not None and change <= mr:
        category = "MR"
    else:
        category = "SD"
    return ResponseSuggestion(
        rule,
        category,
        baseline,
        followup,
        change,
        f"suggestion: {category} ({baseline:.2f} -> {followup:.2f} {unit}, {change:+.1f}%); "
        f"rule {rule_text}",
    )


def suggest_response(
    baseline: dict[str, Any], followup: dict[str, Any]
) -> list[ResponseSuggestion]:
    """Suggestions of every rule from two reports (:meth:`CaseReport.to_dict` form).

    Returns:
        Enhancing bidimensional, enhancing volumetric and non-enhancing volumetric, in that order.
    """
    b_et = float(baseline["regions"]["et"]["volume_ml"])
    f_et = float(followup["regions"]["et"]["volume_ml"])
    b_wt = float(baseline["regions"]["wt"]["volume_ml"])
    f_wt = float(followup["regions"]["wt"]["volume_ml"])
    b_spd = float(baseline.get("sum_of_products_mm2") or 0.0)
    f_spd = float(followup.get("sum_of_products_mm2") or 0.0)
    measurable = int(baseline.get("n_measurable") or 0) > 0
    et_gone, wt_gone = f_et <= GONE_ML, f_wt <= GONE_ML
    return [
        classify(
            "enhancing-bidimensional", b_spd, f_spd, "mm²", evaluable=measurable, gone=et_gone
        ),
        classify(
            "enhancing-volumetric",
            b_et,
            f_et,
            "mL",
            evaluable=b_et >= MIN_BASELINE_ML,
            gone=et_gone,
        ),
        classify(
            "non-enhancing-volumetric",
            b_wt,
            f_wt,
            "mL",
            evaluable=b_wt >= MIN_BASELINE_ML,
            gone=wt_gone,
        ),
    ]
