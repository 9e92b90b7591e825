"""DICOM Segmentation (SEG) of a BraTS label map with highdicom: one segment per tissue.

Segments 1, 2, 3 are NCR, ED and ET, coded as DCMQI and the Imaging Data Commons code BraTS
segmentations: category "Morphologically Abnormal Structure" (SCT 49755003), types "Necrosis"
(SCT 6574001), "Edema" (SCT 79654002) and "Enhancing Lesion" (NCIt C113842); anatomic region
"Brain" (SCT 12738006). The algorithm (model names, versions, checkpoint sha256) and the reviewer
travel in the object; without a model the labels are taken as drawn by hand (MANUAL).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from bratseg.labels import LABEL_COLORS, TISSUES, Convention, label_value
from bratseg.report.dicom.source import (
    MANUFACTURER,
    SourceSeries,
    copy_patient_study,
    frame_of,
    person_name,
)

logger = logging.getLogger(__name__)

#: (segment label, property type (scheme, value, meaning)) per tissue, in segment order.
SEGMENT_CODES: dict[str, tuple[str, tuple[str, str, str]]] = {
    "ncr": ("NCR necrotic and non-enhancing tumour core", ("SCT", "6574001", "Necrosis")),
    "ed": ("ED peritumoral edema", ("SCT", "79654002", "Edema")),
    "et": ("ET enhancing tumour", ("NCIt", "C113842", "Enhancing Lesion")),
}
CATEGORY = ("SCT", "49755003", "Morphologically Abnormal Structure")
ANATOMIC_REGION = ("SCT", "12738006", "Brain")


@dataclass
class Provenance:
    """Who and what made the labels (every field optional).

    Attributes:
        model_names: Names of the model(s) behind the AI proposal (empty: drawn by hand).
        model_versions: Their versions (same order; shorter lists leave the rest unknown).
        model_sha256: Their checkpoints' sha256.
        reviewer: Who reviewed the labels.
        status: Review status, e.g. ``approved``.
        approved_at: ISO time of the approval, when signed off.
    """

    model_names: list[str] = field(default_factory=list)
    model_versions: list[str] = field(default_factory=list)
    model_sha256: list[str] = field(default_factory=list)
    reviewer: str | None = None
    status: str | None = None
    approved_at: str | None = None

    @classmethod
    def from_record(
        cls, record: dict[str, Any], reviewer: str | None = None, status: str | None = None
    ) -> Provenance:
        """Read a provenance record, a review ``session.json`` or an export's provenance: the
        ``model`` block, reviewer and status (see :meth:`ReportInfo.from_record`) and the time of
        the approval in force; ``reviewer`` and ``status`` that are not None win."""
        from bratseg.report.build import ReportInfo
        from bratseg.text import one_line

        info = ReportInfo.from_record(record, reviewer=reviewer, status=status)
        model = record.get("model") or {}
        approval = record.get("approval") or {}
        signoffs = [s for s in record.get("signoffs") or [] if isinstance(s, dict)]
        last = signoffs[-1] if signoffs else {}
        approved_at = approval.get("time") or (
            last.get("time") if last.get("action") == "approve" else None
        )
        return cls(
            model_names=info.model_names,
            model_versions=[str(v) for v in model.get("versions", [])],
            model_sha256=info.model_sha256,
            reviewer=one_line(info.reviewer) if info.reviewer else None,  # user text: one line
            status=one_line(info.status) if info.status else None,
            approved_at=one_line(approved_at) if approved_at else None,
        )

    def algorithm_type(self) -> str:
        """SEG algorithm type: AUTOMATIC, SEMIAUTOMATIC (a model, then a reviewer) or MANUAL."""
        if not self.model_names:
            return "MANUAL"
        return "SEMIAUTOMATIC" if self.reviewer else "AUTOMATIC"

    def summary(self) -> str:
        """One line: models, reviewer and status."""
        parts = []
        if self.model_names:
            parts.append("model " + ", ".join(self.model_names))
        else:
            parts.append("no model named (labels taken as drawn by hand)")
        if self.reviewer:
            parts.append(f"reviewer {self.reviewer}")
        if self.status:
            parts.append(
                f"status {self.status}" + (f" {self.approved_at}" if self.approved_at else "")
            )
        return "; ".join(parts)


def _code(triple: tuple[str, str, str]) -> Any:
    from highdicom.sr import CodedConcept

    scheme, value, meaning = triple
    return CodedConcept(value=value, scheme_designator=scheme, meaning=meaning)


def _algorithm(provenance: Provenance) -> Any:
    import highdicom as hd
    from pydicom.sr.codedict import codes

    if not provenance.model_names:
        return None
    params = {}
    for i, sha in enumerate(provenance.model_sha256):
        params[f"sha256_{i + 1}"] = sha[:64]
    versions = provenance.model_versions or ["unknown"]
    return hd.AlgorithmIdentificationSequence(
        name=" + ".join(provenance.model_names)[:64],
        family=codes.cid7162.ArtificialIntelligence,
        version=" + ".join(versions)[:64],
        source=MANUFACTURER,
        parameters=params or None,
    )


def _lab_color(tissue: str) -> Any:
    from highdicom.color import CIELabColor

    r, g, b, _ = LABEL_COLORS[tissue]
    return CIELabColor.from_rgb(255.0 * r, 255.0 * g, 255.0 * b)


def build_seg(
    labels: np.ndarray,
    convention: Convention,
    source: SourceSeries,
    provenance: Provenance,
    *,
    series_number: int,
    note: str = "",
) -> Any:
    """The SEG object of ``labels`` on the grid of ``source``.

    Args:
        labels: Integer label map (X, Y, Z) in ``convention``, on the source's grid.
        convention: Its label convention.
        source: The referenced MR series (one dataset per slice ``k``).
        provenance: Models and reviewer.
        series_number: SeriesNumber of the new series.
        note: Extra sentence for the content description (e.g. the synthesized-study note).

    Returns:
        A ``highdicom.seg.Segmentation`` (a pydicom dataset) with segments 1..3 = NCR, ED, ET.
    """
    import highdicom as hd

    from bratseg import __version__

    n_slices = labels.shape[2]
    pixels = np.zeros((n_slices, labels.shape[1], labels.shape[0], len(TISSUES)), dtype=bool)
    for s, tissue in enumerate(TISSUES):
        mask = labels == label_value(tissue, convention)
        for k in range(n_slices):
            pixels[k, :, :, s] = frame_of(mask, k)
    algorithm = _algorithm(provenance)
    algorithm_type = provenance.algorithm_type()
    descriptions = [
        hd.seg.SegmentDescription(
            segment_number=s + 1,
            segment_label=SEGMENT_CODES[tissue][0][:64],
            segmented_property_category=_code(CATEGORY),
            segmented_property_type=_code(SEGMENT_CODES[tissue][1]),
            algorithm_type=algorithm_type,
            algorithm_identification=algorithm,
            tracking_uid=hd.UID(),
            tracking_id=f"BraTS {tissue.upper()}",
            anatomic_regions=[_code(ANATOMIC_REGION)],
            display_color=_lab_color(tissue),
        )
        for s, tissue in enumerate(TISSUES)
    ]
    description = f"BraTS tissues NCR/ED/ET; {provenance.summary()}"
    if note:
        description += f". {note}"
    seg = hd.seg.Segmentation(
        source_images=source.datasets,
        pixel_array=pixels,
        segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=descriptions,
        series_instance_uid=hd.UID(),
        series_number=series_number,
        sop_instance_uid=hd.UID(),
        instance_number=1,
        manufacturer=MANUFACTURER,
        manufacturer_model_name="napari-brats",
        software_versions=__version__,
        device_serial_number="none",
        content_description=description[:64],
        content_creator_name=person_name(provenance.reviewer) if provenance.reviewer else None,
        content_label="BRATS_TISSUES",
        series_description="Tumour segmentation (SEG)",
    )
    copy_patient_study(source.first, seg)  # highdicom copies most; the one list decides
    seg.ImageComments = description[:10240]
    return seg


def read_seg_labels(seg: Any, source_datasets: list[Any], convention: Convention) -> np.ndarray:
    """The label map (X, Y, Z) a SEG written by :func:`build_seg` holds.

    Args:
        seg: The SEG (a pydicom dataset or ``highdicom.seg.Segmentation``).
        source_datasets: The referenced MR instances in slice order ``k`` (as read from disk).
        convention: Convention of the label map returned.
    """
    import highdicom as hd

    if not isinstance(seg, hd.seg.Segmentation):
        seg = hd.seg.Segmentation.from_dataset(seg)
    frames = seg.get_pixels_by_source_instance(
        source_sop_instance_uids=[str(ds.SOPInstanceUID) for ds in source_datasets],
        segment_numbers=[1, 2, 3],
        combine_segments=True,
        assert_missing_frames_are_empty=True,  # empty frames are not stored
    )  # (Z, rows, columns), values = segment numbers
    lut = np.zeros(len(TISSUES) + 1, dtype=np.uint8)
    for s, tissue in enumerate(TISSUES):
        lut[s + 1] = label_value(tissue, convention)
    return np.ascontiguousarray(lut[frames.astype(np.intp)].transpose(2, 1, 0))
