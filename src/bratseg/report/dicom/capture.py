"""Secondary-capture series for PACS that cannot show SEG: the overlay burned into the T1Gd slices,
and one summary image with the volume table.

The overlay series has one RGB Secondary Capture instance per source slice, in the source's study,
with the slice's position, orientation and spacing (Image Plane attributes) and its Frame of
Reference, so viewers that honour them link it to the MR series. The summary is one more instance
of its own series: a key slice (largest enhancing, else tumour, area) with the overlay beside the
table of tissue and region volumes, the provenance and the notes.
"""

from __future__ import annotations

import logging
import textwrap
from collections.abc import Sequence
from typing import Any

import numpy as np

from bratseg.components import busiest_slice
from bratseg.labels import LABEL_COLORS, TISSUES, Convention, label_value
from bratseg.report.dicom.source import BODY_PART, MANUFACTURER, SourceSeries, copy_patient_study

logger = logging.getLogger(__name__)

#: Opacity of the burned-in tissue colours.
OVERLAY_ALPHA = 0.45
#: Intensity percentiles (inside the head) mapped to black and white.
WINDOW_PERCENTILES = (0.5, 99.5)


def _orientation_letter(vector: Sequence[float]) -> str:
    """Patient-orientation letter (``L``, ``P``, ``H``, ...) of a direction's main LPS axis (the
    single letters highdicom accepts; an oblique direction gets its dominant one)."""
    letters = (("L", "R"), ("P", "A"), ("H", "F"))
    axis = int(np.argmax(np.abs(np.asarray(vector, dtype=np.float64))))
    return letters[axis][0] if vector[axis] > 0 else letters[axis][1]


def burn_overlay(volume: np.ndarray, labels: np.ndarray, convention: Convention) -> np.ndarray:
    """RGB uint8 volume (X, Y, Z, 3): the grey image windowed, tissues blended in their colours."""
    finite = volume[volume > 0] if np.any(volume > 0) else volume.ravel()
    lo, hi = np.percentile(finite, WINDOW_PERCENTILES)
    grey = np.clip((volume - lo) / max(float(hi - lo), 1e-6), 0.0, 1.0).astype(np.float32)
    rgb = np.repeat(grey[..., None], 3, axis=-1)
    for tissue in TISSUES:
        mask = labels == label_value(tissue, convention)
        color = np.asarray(LABEL_COLORS[tissue][:3], dtype=np.float32)
        rgb[mask] = (1.0 - OVERLAY_ALPHA) * rgb[mask] + OVERLAY_ALPHA * color
    return np.round(rgb * 255.0).astype(np.uint8)


def _sc_image(
    pixels: np.ndarray, source: SourceSeries, series_uid: str, series_number: int, number: int
) -> Any:
    import highdicom as hd

    first = source.first
    ds = hd.sc.SCImage(
        pixel_array=pixels,
        photometric_interpretation="RGB",
        bits_allocated=8,
        coordinate_system="PATIENT",
        study_instance_uid=first.StudyInstanceUID,
        series_instance_uid=series_uid,
        series_number=series_number,
        sop_instance_uid=hd.UID(),
        instance_number=number,
        manufacturer=MANUFACTURER,
        patient_orientation=tuple(  # type: ignore[arg-type]
            _orientation_letter(first.ImageOrientationPatient[i : i + 3]) for i in (0, 3)
        ),
    )
    copy_patient_study(first, ds)
    ds.BodyPartExamined = first.get("BodyPartExamined", None) or BODY_PART  # unpaired
    return ds


def build_overlay_series(
    volume: np.ndarray,
    labels: np.ndarray,
    convention: Convention,
    source: SourceSeries,
    *,
    series_number: int,
    note: str = "",
    description: str = "T1Gd with tumour overlay (burned in)",
) -> list[Any]:
    """One RGB Secondary Capture per slice of ``volume`` (X, Y, Z) with the tissues burned in
    (``description``: its SeriesDescription, which names the series shown)."""
    import highdicom as hd

    rgb = burn_overlay(volume, labels, convention)
    series_uid = hd.UID()
    out = []
    for k, src in enumerate(source.datasets):
        frame = np.ascontiguousarray(rgb[:, :, k, :].transpose(1, 0, 2))  # (rows, columns, 3)
        ds = _sc_image(frame, source, series_uid, series_number, k + 1)
        ds.SeriesDescription = description[:64]
        ds.BurnedInAnnotation = "YES"
        ds.FrameOfReferenceUID = src.FrameOfReferenceUID
        ds.ImagePositionPatient = src.ImagePositionPatient
        ds.ImageOrientationPatient = src.ImageOrientationPatient
        ds.PixelSpacing = src.PixelSpacing
        if "SliceThickness" in src:
            ds.SliceThickness = src.SliceThickness
        ds.ImageComments = ("Not for diagnosis on its own: derived overlay. " + note)[:10240]
        out.append(ds)
    return out


def key_slice(labels: np.ndarray, convention: Convention) -> int:
    """The axial slice with the largest enhancing area (else tumour area; else the middle)."""
    for tissue in (labels == label_value("et", convention), labels > 0):
        k = busiest_slice(tissue, axis=2)
        if k is not None:
            return k
    return labels.shape[2] // 2


def render_summary(
    volume: np.ndarray,
    labels: np.ndarray,
    convention: Convention,
    rows: Sequence[tuple[str, float]],
    lines: Sequence[str],
) -> np.ndarray:
    """RGB uint8 image (rows, columns, 3): key slice with overlay, volume table and text lines
    (drawn literally: a ``$`` in a reviewer's name or status is never matplotlib mathtext)."""
    import matplotlib

    from bratseg.report.pdf import LITERAL_TEXT

    with matplotlib.rc_context(LITERAL_TEXT):
        return _render_summary(volume, labels, convention, rows, lines)


def _render_summary(
    volume: np.ndarray,
    labels: np.ndarray,
    convention: Convention,
    rows: Sequence[tuple[str, float]],
    lines: Sequence[str],
) -> np.ndarray:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    k = key_slice(labels, convention)
    rgb = burn_overlay(volume[:, :, k : k + 1], labels[:, :, k : k + 1], convention)
    fig = Figure(figsize=(10.24, 5.12), dpi=100, facecolor="black")
    ax = fig.add_axes((0.0, 0.0, 0.5, 1.0))
    ax.imshow(rgb[:, :, 0, :].transpose(1, 0, 2), interpolation="nearest")
    ax.set_axis_off()
    ax.text(4, 12, f"slice {k + 1}", color="white", fontsize=9)
    text = fig.add_axes((0.52, 0.0, 0.48, 1.0))
    text.set_axis_off()
    y = 0.95
    text.text(0.0, y, "Tumour volumes", color="white", fontsize=14, weight="bold")
    for name, ml in rows:
        y -= 0.065
        text.text(0.0, y, name, color="white", fontsize=11, family="monospace")
        text.text(0.75, y, f"{ml:8.2f} mL", color="white", fontsize=11, family="monospace")
    y -= 0.04
    for line in (piece for given in lines for piece in textwrap.wrap(given, 80) or [""]):
        y -= 0.055  # wrapped here: matplotlib's wrap=True parses mathtext even when told not to
        text.text(0.0, y, line, color="#cccccc", fontsize=8)
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    image = np.asarray(canvas.buffer_rgba())[:, :, :3]
    return np.ascontiguousarray(image)


def build_summary(
    image: np.ndarray, source: SourceSeries, *, series_number: int, note: str = ""
) -> Any:
    """One RGB Secondary Capture of the rendered summary ``image`` (rows, columns, 3)."""
    import highdicom as hd

    ds = _sc_image(image, source, hd.UID(), series_number, 1)
    ds.SeriesDescription = "Tumour volumes (summary)"
    ds.BurnedInAnnotation = "YES"
    ds.ImageComments = ("Derived summary of the segmentation. " + note)[:10240]
    return ds
