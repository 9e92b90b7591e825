"""One-page PDF of a clinical report, drawn with matplotlib's Agg canvas (no GUI toolkit).

The page holds the case, model, reviewer and status; the per-structure table; the lesion table;
and three orthogonal slices through the largest lesion with the labels overlaid in the project's
tissue colours (:data:`bratseg.labels.LABEL_COLORS`) and a scale bar. Slices are shown as the
viewer shows them (:mod:`napari_brats._layers`): volumes brought to LPS axes by flips and a
permutation (no resampling), axial and coronal in radiological orientation (the patient's left
on the right of the image), sagittal with anterior on the left. The axial slice is the one the
largest lesion's main enhancing part was measured on, with its two diameters drawn.

The file is written atomically (:func:`bratseg.atomic.atomic_write`): a complete PDF or nothing.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from bratseg.atomic import atomic_write
from bratseg.errors import BratsInputError
from bratseg.labels import LABEL_COLORS, LABEL_NAMES, LABEL_VALUES
from bratseg.orientation import reorientation
from bratseg.report.build import CaseReport
from bratseg.report.table import info_lines, lesion_table, region_table, summary_lines

logger = logging.getLogger(__name__)

#: A4 portrait, inches.
PAGE_SIZE = (8.27, 11.69)
#: Opacity of the label overlay.
OVERLAY_ALPHA = 0.45
#: Length of the scale bar.
SCALE_BAR_MM = 20.0
#: Height of one table row, as a fraction of the page.
ROW_HEIGHT = 0.018
#: Lesion rows shown on the page (the JSON has them all).
MAX_LESION_ROWS = 8
#: Every text on the page is drawn literally: a ``$`` in a reviewer, status or case name is a
#: dollar sign, never the start of matplotlib mathtext (which would rewrite or crash on it).
LITERAL_TEXT: dict[Any, Any] = {"text.parse_math": False, "text.usetex": False}


def _overlay(labels: np.ndarray, convention: str) -> np.ndarray:
    """RGBA float (…, 4) image of a label slice in the tissue colours (background clear)."""
    lut = np.zeros((256, 4))
    for tissue, value in LABEL_VALUES[convention].items():
        lut[value] = (*LABEL_COLORS[tissue][:3], OVERLAY_ALPHA)
    return lut[labels.astype(np.uint8)]


def _focus(report: dict[str, Any]) -> tuple[np.ndarray | None, dict[str, Any] | None]:
    """Storage point the slices go through, and the enhancing lesion whose diameters are drawn."""
    if not report["lesions"]:
        return None, None
    largest = report["lesions"][0]
    point = np.asarray(largest["centroid_voxel"], dtype=np.float64)
    enhancing = [e for e in report["enhancing_lesions"] if e["lesion"] == largest["id"]]
    if not enhancing:
        return point, None
    main = max(enhancing, key=lambda e: e["rano"]["product_mm2"])
    point[main["rano"]["axial_axis"]] = main["rano"]["slice_index"]
    return point, main


def _draw_views(
    fig: Any,
    rects: Sequence[tuple[float, float, float, float]],
    report: dict[str, Any],
    labels: np.ndarray,
    affine: np.ndarray,
    spacing: Sequence[float],
    image: np.ndarray | None,
) -> None:
    from mpl_toolkits.axes_grid1.anchored_artists import AnchoredSizeBar  # type: ignore[import-untyped]

    reo = reorientation(affine, "LPS")
    lab = reo.apply(np.asarray(labels))
    img = reo.apply(np.asarray(image, dtype=np.float32)) if image is not None else None
    sx, sy, sz = reo.spacing(spacing)
    shape = np.asarray(labels).shape
    point, main = _focus(report)
    centre = reo.point(point, shape) if point is not None else (np.asarray(lab.shape) - 1) / 2.0
    x0, y0, z0 = (round(float(np.clip(c, 0, n - 1))) for c, n in zip(centre, lab.shape))
    if img is not None and np.any(img > 0):
        vmin, vmax = np.percentile(img[img > 0][::7], [0.5, 99.5])
        box = [
            np.flatnonzero((img > 0).any(axis=tuple(b for b in range(3) if b != a)))
            for a in range(3)
        ]
    else:
        vmin, vmax = 0.0, 1.0
        box = [np.arange(n) for n in lab.shape]
    lim = [
        (max(int(b[0]) - 4, 0) - 0.5, min(int(b[-1]) + 4, n - 1) + 0.5)
        for b, n in zip(box, lab.shape)
    ]
    nx, ny, nz = lab.shape
    views = [  # title, label slice (rows, cols), image slice, (col, row) spacing, limits, corner letters
        (
            "Axial",
            lab[:, :, z0].T,
            None if img is None else img[:, :, z0].T,
            (sx, sy),
            "upper",
            (lim[0], lim[1]),
            ("R", "L", "A", "P"),
            f"slice {z0 + 1}/{nz}",
        ),
        (
            "Coronal",
            lab[:, y0, :].T,
            None if img is None else img[:, y0, :].T,
            (sx, sz),
            "lower",
            (lim[0], lim[2]),
            ("R", "L", "S", "I"),
            f"slice {y0 + 1}/{ny}",
        ),
        (
            "Sagittal",
            lab[x0, :, :].T,
            None if img is None else img[x0, :, :].T,
            (sy, sz),
            "lower",
            (lim[1], lim[2]),
            ("A", "P", "S", "I"),
            f"slice {x0 + 1}/{nx}",
        ),
    ]
    for k, (title, lab2, img2, (sc, sr), origin, (cl, rl), letters, where) in enumerate(views):
        ax = fig.add_axes(rects[k])
        ax.set_facecolor("black")
        rows, cols = lab2.shape
        extent = (
            (-0.5 * sc, (cols - 0.5) * sc, (rows - 0.5) * sr, -0.5 * sr)
            if origin == "upper"
            else (-0.5 * sc, (cols - 0.5) * sc, -0.5 * sr, (rows - 0.5) * sr)
        )
        if img2 is not None:
            ax.imshow(
                img2,
                cmap="gray",
                vmin=vmin,
                vmax=vmax,
                origin=origin,
                extent=extent,
                interpolation="nearest",
            )
        ax.imshow(
            _overlay(lab2, report["convention"]),
            origin=origin,
            extent=extent,
            interpolation="nearest",
        )
        ax.set_xlim(cl[0] * sc, cl[1] * sc)
        ax.set_ylim((rl[1] * sr, rl[0] * sr) if origin == "upper" else (rl[0] * sr, rl[1] * sr))
        ax.set_aspect("equal")
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_title(f"{title} ({where})", fontsize=8)
        style = {"color": "white", "fontsize": 8, "fontweight": "bold", "transform": ax.transAxes}
        ax.text(0.02, 0.5, letters[0], ha="left", va="center", **style)
        ax.text(0.98, 0.5, letters[1], ha="right", va="center", **style)
        ax.text(0.5, 0.98, letters[2], ha="center", va="top", **style)
        ax.text(0.5, 0.02, letters[3], ha="center", va="bottom", **style)
        ax.add_artist(
            AnchoredSizeBar(
                ax.transData,
                SCALE_BAR_MM,
                f"{SCALE_BAR_MM:g} mm",
                "lower right",
                color="white",
                frameon=False,
                size_vertical=0.8,
                fontproperties={"size": 7},
                pad=0.3,
            )
        )
        if k == 0 and main is not None:
            for key, colour in (("longest_ends", "cyan"), ("perpendicular_ends", "magenta")):
                ends = np.array([reo.point(p, shape) for p in main["rano"][key]])
                ax.plot(ends[:, 0] * sx, ends[:, 1] * sy, color=colour, linewidth=1.2)


def _draw_table(
    fig: Any, top: float, header: list[str], rows: list[list[str]], title: str
) -> float:
    """Draw a table of :data:`ROW_HEIGHT` rows from ``top`` (figure fraction); returns its bottom."""
    height = ROW_HEIGHT * (len(rows) + 1)
    ax = fig.add_axes((0.06, top - height, 0.88, height))
    ax.axis("off")
    fig.text(0.06, top + 0.006, title, fontsize=9, fontweight="bold")
    if not rows:
        ax.text(0.0, 0.5, "none", fontsize=8, transform=ax.transAxes)
        return top - height
    table = ax.table(cellText=rows, colLabels=header, bbox=(0.0, 0.0, 1.0, 1.0), cellLoc="center")
    table.auto_set_font_size(False)
    table.set_fontsize(7.5)
    for (r, _c), cell in table.get_celld().items():
        cell.set_linewidth(0.4)
        if r == 0:
            cell.set_facecolor("#e6e6e6")
    return top - height


def render_report_pdf(
    report: CaseReport | dict[str, Any],
    labels: np.ndarray,
    affine: np.ndarray,
    spacing: Sequence[float],
    image: np.ndarray | None = None,
) -> bytes:
    """The report page as PDF bytes.

    Args:
        report: The report (:class:`CaseReport` or its :meth:`~CaseReport.to_dict`).
        labels: The label map it describes (X, Y, Z).
        affine: (4, 4) voxel-to-world matrix.
        spacing: Voxel size in mm per storage axis.
        image: Optional background volume (X, Y, Z), e.g. the T1Gd.

    User text (case, reviewer, status) is drawn literally, on one line each
    (:func:`bratseg.text.one_line`, :data:`LITERAL_TEXT`).
    """
    import matplotlib

    with matplotlib.rc_context(LITERAL_TEXT):
        return _render(report, labels, affine, spacing, image)


def _render(
    report: CaseReport | dict[str, Any],
    labels: np.ndarray,
    affine: np.ndarray,
    spacing: Sequence[float],
    image: np.ndarray | None,
) -> bytes:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    data = report.to_dict() if isinstance(report, CaseReport) else report
    fig = Figure(figsize=PAGE_SIZE)
    FigureCanvasAgg(fig)
    fig.text(0.06, 0.965, "Brain tumour segmentation report", fontsize=14, fontweight="bold")
    for k, line in enumerate(info_lines(data)):
        fig.text(0.06, 0.95 - 0.015 * k, line, fontsize=8)
    header, rows = region_table(data)
    y = _draw_table(fig, 0.885, header, rows, "Volumes per tissue and region") - 0.018
    for line in summary_lines(data):
        fig.text(0.06, y, line, fontsize=8)
        y -= 0.014
    header, rows = lesion_table(data, MAX_LESION_ROWS)
    extra = len(data["lesions"]) - len(rows)
    title = "Lesions (26-connected), largest first" + (
        f"; {extra} smaller not shown" if extra > 0 else ""
    )
    top = _draw_table(fig, y - 0.02, header, rows, title) - 0.03
    bottom, half = 0.075, (top - 0.075 - 0.025) / 2
    rects = (
        (0.03, bottom, 0.47, top - bottom),
        (0.52, bottom + half + 0.025, 0.45, half),
        (0.52, bottom, 0.45, half),
    )
    _draw_views(fig, rects, data, labels, affine, spacing, image)
    handles = [
        Patch(color=LABEL_COLORS[t][:3], label=LABEL_NAMES[t])
        for t in LABEL_VALUES[data["convention"]]
    ]
    fig.legend(
        handles=handles,
        loc="lower center",
        ncol=len(handles),
        fontsize=7,
        frameon=False,
        bbox_to_anchor=(0.5, 0.045),
    )
    fig.text(
        0.06,
        0.025,
        "Slices through the largest lesion, radiological orientation (the patient's left on "
        "the right of the image).\nCyan and magenta: longest and perpendicular diameters of its "
        "enhancing part (RANO, Wen et al. 2010).",
        fontsize=6.5,
    )
    buffer = io.BytesIO()
    fig.savefig(buffer, format="pdf")
    return buffer.getvalue()


def check_pdf_destination(path: str | Path, overwrite: bool) -> Path:
    """``path`` as a Path, checked before a page is rendered: its folder exists, and it is no
    existing file unless ``overwrite``.

    Raises:
        BratsInputError: Either check fails.
    """
    path = Path(path)
    if not path.parent.is_dir():
        raise BratsInputError("folder of the PDF does not exist", path.parent)
    if path.exists() and not overwrite:
        raise BratsInputError("file exists; refusing to overwrite (use --overwrite)", path)
    return path


def write_pdf_bytes(path: Path, pdf: bytes, overwrite: bool, what: str) -> Path:
    """Write a rendered page atomically (a file that appeared meanwhile is not replaced without
    ``overwrite``); returns ``path``.

    Raises:
        BratsInputError: ``path`` exists and not ``overwrite``.
    """
    try:
        with atomic_write(path, overwrite=overwrite) as handle:
            handle.write(pdf)
    except FileExistsError:
        raise BratsInputError(
            "file exists; refusing to overwrite (use --overwrite)", path
        ) from None
    logger.info("wrote %s %s (%d bytes)", what, path, len(pdf))
    return path


def write_report_pdf(
    report: CaseReport | dict[str, Any],
    path: str | Path,
    labels: np.ndarray,
    affine: np.ndarray,
    spacing: Sequence[float],
    image: np.ndarray | None = None,
    *,
    overwrite: bool = False,
) -> Path:
    """Render the report page and write it to ``path`` atomically; returns the path.

    Raises:
        BratsInputError: ``path`` exists and not ``overwrite``, or its folder does not exist.
    """
    path = check_pdf_destination(path, overwrite)
    pdf = render_report_pdf(report, labels, affine, spacing, image)
    return write_pdf_bytes(path, pdf, overwrite, "report")
