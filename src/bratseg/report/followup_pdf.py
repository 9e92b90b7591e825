"""One-page PDF of a follow-up comparison: both time points side by side, the changes, the
suggested response with its rules. Drawn with matplotlib's Agg canvas; written atomically.

The two axial images are the same slice of the baseline grid (the slice of largest enhancing area
at either time point): the baseline T1Gd with its labels, and the follow-up T1Gd with its labels
after registration onto the baseline; radiological orientation (the patient's left on the right).
"""

from __future__ import annotations

import io
import logging
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from bratseg.components import busiest_slice
from bratseg.errors import BratsInputError
from bratseg.labels import LABEL_VALUES
from bratseg.orientation import reorientation
from bratseg.report.followup import T1GD, Comparison
from bratseg.report.pdf import _overlay, check_pdf_destination, write_pdf_bytes
from bratseg.report.response import CAVEAT

if TYPE_CHECKING:
    from bratseg.io import Case

logger = logging.getLogger(__name__)

#: A4 landscape, inches.
PAGE_SIZE = (11.69, 8.27)
STRUCTURE_NAMES = {"ncr": "NCR", "ed": "ED", "et": "ET", "tc": "TC", "wt": "WT"}


def _key_slice(labels: list[np.ndarray], et: int) -> int:
    """The axial slice with the largest enhancing area of all maps together (else tumour area;
    else the middle)."""
    stacked = np.stack(labels)  # (maps, X, Y, Z): every map's area counts
    for tissue in (stacked == et, stacked > 0):
        k = busiest_slice(tissue, axis=3)
        if k is not None:
            return k
    return labels[0].shape[2] // 2


def _fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def render_followup_pdf(
    comparison: Comparison, baseline: Case, baseline_labels: np.ndarray, convention: str
) -> bytes:
    """The page as PDF bytes (needs the registered follow-up: ``register=True``)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    if comparison.followup_on_baseline is None or comparison.followup_t1gd_on_baseline is None:
        raise BratsInputError(
            "the follow-up page needs the registered follow-up (no --no-register)"
        )
    reo = reorientation(baseline.affine, "LPS")
    before_lab = reo.apply(np.asarray(baseline_labels))
    after_lab = reo.apply(comparison.followup_on_baseline)
    before_img = reo.apply(np.asarray(baseline.image[T1GD], dtype=np.float32))
    after_img = reo.apply(comparison.followup_t1gd_on_baseline)
    z = _key_slice([before_lab, after_lab], LABEL_VALUES[convention]["et"])
    fig = Figure(figsize=PAGE_SIZE)
    FigureCanvasAgg(fig)
    fig.text(0.03, 0.96, "Follow-up comparison", fontsize=15, weight="bold")
    fig.text(
        0.03,
        0.93,
        f"Baseline {comparison.baseline['case_id']}  ->  follow-up "
        f"{comparison.followup['case_id']}   (axial slice {z + 1} of the baseline grid)",
        fontsize=9,
    )
    for i, (title, img, lab) in enumerate(
        (("Baseline", before_img, before_lab), ("Follow-up (registered)", after_img, after_lab))
    ):
        ax = fig.add_axes((0.02 + 0.25 * i, 0.38, 0.24, 0.52))
        plane = img[:, :, z].T
        positive = plane[plane > 0]
        vmin, vmax = np.percentile(positive, [0.5, 99.5]) if positive.size else (0.0, 1.0)
        ax.imshow(plane, cmap="gray", vmin=vmin, vmax=vmax, interpolation="nearest")
        ax.imshow(_overlay(lab[:, :, z].T, convention), interpolation="nearest")
        ax.set_title(title, fontsize=10)
        ax.set_axis_off()
        ax.text(0.01, 0.5, "R", transform=ax.transAxes, color="white", fontsize=8)
        ax.text(0.97, 0.5, "L", transform=ax.transAxes, color="white", fontsize=8)
    table = fig.add_axes((0.54, 0.38, 0.44, 0.52))
    table.set_axis_off()
    header = ["", "baseline mL", "follow-up mL", "change mL", "change %"]
    rows = [
        [
            STRUCTURE_NAMES[key],
            _fmt(row["baseline_ml"], ".2f"),
            _fmt(row["followup_ml"], ".2f"),
            _fmt(row["change_ml"], "+.2f"),
            _fmt(row["change_pct"], "+.1f"),
        ]
        for key, row in comparison.changes().items()
    ]
    spd = comparison.to_dict()["sum_of_products_mm2"]
    rows.append(
        [
            "SPD mm²",
            _fmt(spd["baseline"], ".0f"),
            _fmt(spd["followup"], ".0f"),
            _fmt(spd["change_mm2"], "+.0f"),
            _fmt(spd["change_pct"], "+.1f"),
        ]
    )
    cell = table.table(cellText=rows, colLabels=header, loc="upper center", cellLoc="right")
    cell.auto_set_font_size(False)
    cell.set_fontsize(9)
    cell.scale(1.0, 1.4)
    y = 0.33
    lines = []
    if comparison.registration is not None:
        lines.append(comparison.registration.line())
    if comparison.wt_dice_registered is not None:
        lines.append(
            f"Whole-tumour overlap after registration: Dice {comparison.wt_dice_registered:.3f}"
        )
    lines.append("")
    lines += [s.text for s in comparison.suggestions]
    lines += ["", CAVEAT]
    for line in lines:
        fig.text(0.03, y, line, fontsize=8, wrap=True)
        y -= 0.03
    buffer = io.BytesIO()
    fig.savefig(buffer, format="pdf")
    return buffer.getvalue()


def write_followup_pdf(
    comparison: Comparison,
    path: str | Path,
    baseline: Case,
    baseline_labels: np.ndarray,
    convention: str,
    *,
    overwrite: bool = False,
) -> Path:
    """Render the page and write it to ``path`` atomically (never over a file without
    ``overwrite``)."""
    path = check_pdf_destination(path, overwrite)
    pdf = render_followup_pdf(comparison, baseline, baseline_labels, convention)
    return write_pdf_bytes(path, pdf, overwrite, "follow-up page")
