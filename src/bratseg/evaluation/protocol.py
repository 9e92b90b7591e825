"""The cross-validation protocol's report: per fold, pooled and per stratum, with ET false positives.

Rows are those of :func:`bratseg.evaluation.score_cases` (one per case: Dice, HD95, volumes);
the split file (:mod:`bratseg.training.splits`) says each case's fold and its reference ET.
Groups reported:

- ``pooled``: every scored case;
- ``fold K``: the cases that fold K holds out;
- ``low-et`` / ``enhancing``: the split's strata (reference ET below / above
  :data:`bratseg.training.splits.LOW_ET_ML`);
- ``source NAME``: the cases of each data source (:data:`bratseg.training.splits.SOURCES`), when
  the split holds more than one (scanners and references differ between them);
- ``ET < 1 mL``: the non-enhancing tumours (reference ET below
  :data:`bratseg.training.splits.NON_ENHANCING_ET_ML`), listed even when empty;
- for fold models fine-tuned from earlier weights (rows with ``seen_in_pretraining``): the
  cases those weights never saw (the held-out estimate) and the ones they did, apart.

Each group gives the mean Dice and HD95 per region; ``volume_ratio``: the median predicted /
reference volume of the whole tumour and of the edema (cases whose reference has at least
:data:`RATIO_MIN_ML` of it), a systematic over- or under-segmentation that Dice hides; and
``et_fp``: the cases whose reference ET is empty while the prediction has ET (Dice 0 under the
official rule), the failure a case-level ET decision must avoid.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from typing import Any

import numpy as np

from bratseg.labels import REGIONS
from bratseg.training.splits import NON_ENHANCING_ET_ML, SOURCES, SplitFile, source_of

#: Smallest reference volume (mL) of a region for its predicted / reference ratio to count.
RATIO_MIN_ML = 1.0
#: Regions whose volume ratio the protocol reports.
RATIO_REGIONS = ("wt", "ed")

#: Group of the cases that no weights of the fold model ever saw (its initial weights included).
NEVER_SEEN = "never seen (initial weights included)"
#: Group of the held-out cases that a fine-tuned fold model's initial weights were trained on.
SEEN_IN_PRETRAINING = "seen by the initial weights"


def _group(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {"n": len(rows), "cases": [r["case"] for r in rows]}
    for key in ("dice", "hd95"):
        out[key] = {
            r: round(statistics.fmean(float(row[key][r]) for row in rows), 4) if rows else None
            for r in REGIONS
        }
    out["mean_dice"] = round(statistics.fmean(out["dice"].values()), 4) if rows else None
    out["volume_ratio"] = {region: _median_ratio(rows, region) for region in RATIO_REGIONS}
    out["et_fp"] = sum(
        1 for r in rows if _ref_et(r) == 0 and float((r.get("volume_ml") or {}).get("et", 0)) > 0
    )
    return out


def _median_ratio(rows: Sequence[dict[str, Any]], region: str) -> float | None:
    """Median predicted / reference volume of ``region`` over the rows whose reference has some."""
    ratios = []
    for row in rows:
        ref = float((row.get("ref_volume_ml") or {}).get(region, 0.0))
        pred = (row.get("volume_ml") or {}).get(region)
        if ref >= RATIO_MIN_ML and pred is not None:
            ratios.append(float(pred) / ref)
    return round(statistics.median(ratios), 3) if ratios else None


def _ref_et(row: dict[str, Any]) -> float:
    return float((row.get("ref_volume_ml") or {}).get("et", 0.0))


def protocol_summary(rows: Sequence[dict[str, Any]], split: SplitFile) -> dict[str, dict[str, Any]]:
    """Group rows as the protocol reports them.

    Args:
        rows: One row per scored case (keys ``case``, ``dice``, ``hd95``, ``volume_ml``,
            ``ref_volume_ml``, optional ``seen_in_pretraining``), each case of ``split``.
        split: The split the cases belong to.

    Returns:
        Group name -> ``{"n", "cases", "dice", "hd95", "mean_dice", "volume_ratio", "et_fp"}``
        (means ``None`` for an empty group), in the order pooled, folds, strata, ``ET < 1 mL``,
        the sources (when more than one), then the never-seen and seen-by-the-initial-weights
        groups when some rows were seen in pretraining.

    Raises:
        KeyError: A row's case is not in the split.
    """
    groups: dict[str, dict[str, Any]] = {"pooled": _group(rows)}
    for k in range(split.n_folds):
        members = [r for r in rows if split.fold_of(r["case"]) == k]
        if members:
            groups[f"fold {k}"] = _group(members)
    for stratum in ("low-et", "enhancing"):
        groups[stratum] = _group([r for r in rows if split.cases[r["case"]]["stratum"] == stratum])
    groups[f"ET < {NON_ENHANCING_ET_ML:g} mL"] = _group(
        [r for r in rows if _ref_et(r) < NON_ENHANCING_ET_ML]
    )
    sources = {c: str(split.cases[c].get("source") or source_of(c)) for c in split.cases}
    present = [name for name in SOURCES if name in {sources[r["case"]] for r in rows}]
    if len(present) > 1:
        for name in present:
            groups[f"source {name}"] = _group([r for r in rows if sources[r["case"]] == name])
    if any(r.get("seen_in_pretraining") for r in rows):
        groups[NEVER_SEEN] = _group([r for r in rows if not r.get("seen_in_pretraining")])
        groups[SEEN_IN_PRETRAINING] = _group([r for r in rows if r.get("seen_in_pretraining")])
    return groups


def format_protocol_table(summary: dict[str, dict[str, Any]], title: str = "") -> str:
    """Markdown table of :func:`protocol_summary`: one line per group."""
    lines = [f"**{title}**", ""] if title else []
    lines += [
        "| group | n | Dice WT / TC / ET | mean | HD95 WT / TC / ET | volume WT / ED (median x ref) "
        "| ET FP |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, g in summary.items():
        if not g["n"]:
            lines.append(f"| {name} | 0 | - | - | - | - | - |")
            continue
        dice = " / ".join(f"{g['dice'][r]:.3f}" for r in REGIONS)
        hd = " / ".join(f"{g['hd95'][r]:.1f}" for r in REGIONS)
        ratio = " / ".join(
            "-" if g["volume_ratio"][r] is None else f"x{g['volume_ratio'][r]:.2f}"
            for r in RATIO_REGIONS
        )
        lines.append(
            f"| {name} | {g['n']} | {dice} | {g['mean_dice']:.3f} | {hd} | {ratio} | {g['et_fp']} |"
        )
    return "\n".join(lines)


def paired_bootstrap_interval(
    differences: Sequence[float], draws: int = 10_000, seed: int = 0, level: float = 0.95
) -> tuple[float, float]:
    """Percentile interval of the mean of per-case ``differences`` (new - old, same cases), by
    resampling the cases with replacement (seeded, so a table is reproducible).

    With a handful of cases one case decides much of a mean difference; the interval says how
    much. Returns ``(low, high)``; a single case gives its difference twice.

    Raises:
        ValueError: No differences.
    """
    values = np.asarray(differences, dtype=np.float64)
    if values.size == 0:
        raise ValueError("no per-case differences to resample")
    rng = np.random.default_rng(seed)
    means = values[rng.integers(0, values.size, size=(draws, values.size))].mean(axis=1)
    tail = (1.0 - level) / 2.0 * 100.0
    low, high = np.percentile(means, [tail, 100.0 - tail])
    return float(low), float(high)
