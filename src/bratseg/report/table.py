"""Text tables of a report (shared by the command line and the PDF page)."""

from __future__ import annotations

from typing import Any

from bratseg.report.build import STRUCTURES
from bratseg.text import one_line

#: Display names of the table rows.
STRUCTURE_NAMES = {"ncr": "NCR", "ed": "ED", "et": "ET", "tc": "TC", "wt": "WT"}


def _num(value: Any, fmt: str) -> str:
    return "–" if value is None else format(value, fmt)


def region_table(report: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """``(header, rows)`` of the per-structure table; columns only for the data present."""
    regions = report["regions"]
    first = regions[STRUCTURES[0]]
    header = ["Structure", "Volume mL", "Components"]
    with_ai, with_ref, with_prior = (
        "proposal_ml" in first,
        "dice_vs_reference" in first,
        "prior_ml" in first,
    )
    if with_ai:
        header += ["AI mL", "Δ vs AI mL", "Dice vs AI"]
    if with_ref:
        header += ["Dice vs ref."]
    if with_prior:
        header += ["Prior mL", "Change mL", "Change %"]
    rows = []
    for key in STRUCTURES:
        row = regions[key]
        cells = [STRUCTURE_NAMES[key], _num(row["volume_ml"], ".2f"), str(row["lesions"])]
        if with_ai:
            cells += [
                _num(row["proposal_ml"], ".2f"),
                _num(row["delta_ml"], "+.2f"),
                _num(row["dice_vs_proposal"], ".3f"),
            ]
        if with_ref:
            cells += [_num(row["dice_vs_reference"], ".3f")]
        if with_prior:
            cells += [
                _num(row["prior_ml"], ".2f"),
                _num(row["change_ml"], "+.2f"),
                _num(row["change_pct"], "+.1f"),
            ]
        rows.append(cells)
    return header, rows


def lesion_table(
    report: dict[str, Any], limit: int | None = None
) -> tuple[list[str], list[list[str]]]:
    """``(header, rows)``: one row per tumour lesion, with its largest enhancing lesion's diameters."""
    enhancing = {e["id"]: e for e in report["enhancing_lesions"]}
    header = [
        "Lesion",
        "Side",
        "Volume mL",
        "ET mL",
        "Midline mm",
        "Diameters mm",
        "Product mm²",
        "Target",
    ]
    rows = []
    for lesion in report["lesions"][:limit]:
        measured = [enhancing[i] for i in lesion["enhancing"] if enhancing[i]["rano"]["measurable"]]
        best = max(measured, key=lambda e: e["rano"]["product_mm2"]) if measured else None
        targets = sum(bool(enhancing[i]["target"]) for i in lesion["enhancing"])
        rows.append(
            [
                str(lesion["id"]),
                lesion["hemisphere"],
                f"{lesion['volume_ml']:.2f}",
                f"{lesion['tissue_ml']['et']:.2f}",
                f"{lesion['midline_distance_mm']:.0f}",
                f"{best['rano']['longest_mm']:.0f} × {best['rano']['perpendicular_mm']:.0f}"
                if best
                else "–",
                f"{best['rano']['product_mm2']:.0f}" if best else "–",
                str(targets) if targets else "–",
            ]
        )
    return header, rows


def summary_lines(report: dict[str, Any]) -> list[str]:
    """Short lines: lesion counts, sum of products (and its change), ET/TC ratio, and the notes
    (e.g. the no-enhancement ET decision)."""
    ratio = report["et_tc_ratio"]
    lines = [
        (
            f"{report['n_lesions']} lesion(s); {len(report['enhancing_lesions'])} enhancing, "
            f"{report['n_measurable']} measurable (both diameters >= 10 mm)"
        ),
        f"Sum of bidimensional products (up to 5 target lesions): {report['sum_of_products_mm2']:.0f} mm²",
        f"ET/TC ratio: {_num(ratio, '.3f')}",
    ]
    prior = report.get("prior")
    if prior:
        lines.append(
            f"Since prior report ({one_line(prior.get('case_id') or '?')}, "
            f"{one_line(prior.get('generated') or '?')}): "
            f"sum of products {_num(prior.get('change_mm2'), '+.0f')} mm² "
            f"({_num(prior.get('change_pct'), '+.1f')} %)"
        )
    if report.get("rc_ml") is not None:
        lines.append(f"Resection cavity: {report['rc_ml']:.2f} mL")
    lines += [one_line(str(note)) for note in report.get("notes") or []]
    return lines


def info_lines(report: dict[str, Any]) -> list[str]:
    """Case, model, reviewer and status lines (user text as one line each: no newlines)."""
    model = report.get("model") or {}
    names = ", ".join(model.get("names") or []) or "–"
    shas = ", ".join(s[:12] for s in model.get("sha256") or []) or "–"
    lines = [
        (
            f"Case: {report['case_id'] or '–'}   Labels: BraTS {report['convention']}   "
            f"Voxel: {' × '.join(f'{s:g}' for s in report['spacing_mm'])} mm ({report['axcodes']})"
        ),
        f"Model: {names}   sha256: {shas}",
        (
            f"Reviewer: {report.get('reviewer') or '–'}   Status: {report.get('status') or '–'}   "
            f"Generated: {report.get('generated') or '–'}"
        ),
    ]
    return [one_line(line) for line in lines]
