"""RT Structure Set of the tumour regions: one ROI each for WT, TC and ET, planar contours per slice.

Written with pydicom (no maintained RTSTRUCT library is needed for writing: rt-utils has had no
release since January 2023). Each slice's region mask is traced with ``skimage.measure.find_contours`` at
the 0.5 iso-level (half-way between voxel centres, so rasterising the polygons at the voxel centres
gives the mask back); holes are contours of their own, read with the even-odd rule that planning
systems use. ROIs are typed GTV; their names are the BraTS region names (WT, TC, ET) and the
description says which tissues each holds.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
from pydicom.uid import UID

from bratseg.labels import (
    LABEL_COLORS,
    REGION_NAMES,
    REGION_TISSUES,
    REGIONS,
    Convention,
    region_masks,
)
from bratseg.report.dicom.source import (
    MANUFACTURER,
    SourceSeries,
    copy_patient_study,
    now_date_time,
    person_name,
)

logger = logging.getLogger(__name__)

RT_STRUCTURE_SET_STORAGE = UID("1.2.840.10008.5.1.4.1.1.481.3")
#: Display colour of each ROI (of the tissue that defines its outer edge).
_ROI_COLOR_TISSUE = {"wt": "ed", "tc": "ncr", "et": "et"}


def _contours(mask: np.ndarray) -> list[np.ndarray]:
    """Closed contours (N, 2) in voxel (i, j) coordinates of a 2D mask (X, Y)."""
    from skimage.measure import find_contours

    padded = np.pad(mask.astype(np.float32), 1)  # closes contours that touch the border
    out = []
    for contour in find_contours(padded, 0.5):
        points = contour - 1.0
        if len(points) > 1 and np.allclose(points[0], points[-1]):
            points = points[:-1]  # DICOM closes CLOSED_PLANAR contours implicitly
        if len(points) >= 3:
            out.append(points)
    return out


def build_rtstruct(
    labels: np.ndarray,
    convention: Convention,
    source: SourceSeries,
    *,
    series_number: int,
    reviewer: str | None = None,
    algorithm_type: str = "AUTOMATIC",
    description: str = "",
) -> Any:
    """The RTSTRUCT dataset of the WT, TC and ET regions of ``labels`` on the source grid.

    Args:
        labels: Integer label map (X, Y, Z) in ``convention``.
        convention: Its label convention.
        source: The referenced MR series (one dataset per slice ``k``).
        series_number: SeriesNumber of the new series.
        reviewer: ROI interpreter (the reviewer), when known.
        algorithm_type: ROIGenerationAlgorithm: AUTOMATIC, SEMIAUTOMATIC or MANUAL.
        description: StructureSetDescription (provenance, synthesized-study note).
    """
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.sequence import Sequence
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    from bratseg import __version__

    first = source.first
    date, time = now_date_time()
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = RT_STRUCTURE_SET_STORAGE
    ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID = RT_STRUCTURE_SET_STORAGE
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID
    ds.SpecificCharacterSet = "ISO_IR 192"
    copy_patient_study(first, ds)
    ds.Modality = "RTSTRUCT"
    ds.SeriesInstanceUID = generate_uid()
    ds.SeriesNumber = series_number
    ds.SeriesDescription = "Tumour regions (RTSTRUCT)"
    ds.OperatorsName = person_name(reviewer) if reviewer else ""
    ds.Manufacturer = MANUFACTURER
    ds.SoftwareVersions = __version__
    ds.FrameOfReferenceUID = first.FrameOfReferenceUID
    ds.PositionReferenceIndicator = ""
    ds.StructureSetLabel = "BraTS regions"
    ds.StructureSetName = "WT TC ET"
    ds.StructureSetDescription = description[:1024]
    ds.StructureSetDate, ds.StructureSetTime = date, time
    ds.InstanceNumber = 1

    def image_ref(k: int) -> Dataset:
        ref = Dataset()
        ref.ReferencedSOPClassUID = source.datasets[k].SOPClassUID
        ref.ReferencedSOPInstanceUID = source.datasets[k].SOPInstanceUID
        return ref

    series_ref = Dataset()
    series_ref.SeriesInstanceUID = first.SeriesInstanceUID
    series_ref.ContourImageSequence = Sequence([image_ref(k) for k in range(len(source.datasets))])
    study_ref = Dataset()
    study_ref.ReferencedSOPClassUID = "1.2.840.10008.3.1.2.3.1"  # Study Component Management
    study_ref.ReferencedSOPInstanceUID = first.StudyInstanceUID
    study_ref.RTReferencedSeriesSequence = Sequence([series_ref])
    frame_ref = Dataset()
    frame_ref.FrameOfReferenceUID = first.FrameOfReferenceUID
    frame_ref.RTReferencedStudySequence = Sequence([study_ref])
    ds.ReferencedFrameOfReferenceSequence = Sequence([frame_ref])

    masks = region_masks(labels, convention)
    rois, contours, observations = [], [], []
    for number, region in enumerate(REGIONS, start=1):
        roi = Dataset()
        roi.ROINumber = number
        roi.ReferencedFrameOfReferenceUID = first.FrameOfReferenceUID
        roi.ROIName = region.upper()
        tissues = "+".join(t.upper() for t in REGION_TISSUES[region])
        roi.ROIDescription = f"{REGION_NAMES[region]} ({tissues})"
        roi.ROIGenerationAlgorithm = algorithm_type
        rois.append(roi)
        item = Dataset()
        item.ReferencedROINumber = number
        item.ROIDisplayColor = [round(255 * c) for c in LABEL_COLORS[_ROI_COLOR_TISSUE[region]][:3]]
        item.ContourSequence = Sequence(_slice_contours(masks[region], source, image_ref))
        contours.append(item)
        observation = Dataset()
        observation.ObservationNumber = number
        observation.ReferencedROINumber = number
        observation.ROIObservationLabel = region.upper()
        observation.RTROIInterpretedType = "GTV"
        observation.ROIInterpreter = person_name(reviewer) if reviewer else ""
        observations.append(observation)
    ds.StructureSetROISequence = Sequence(rois)
    ds.ROIContourSequence = Sequence(contours)
    ds.RTROIObservationsSequence = Sequence(observations)
    ds.ApprovalStatus = "UNAPPROVED"
    return ds


def _slice_contours(mask: np.ndarray, source: SourceSeries, image_ref: Any) -> list[Any]:
    from pydicom.dataset import Dataset
    from pydicom.sequence import Sequence

    items = []
    for k in np.flatnonzero(mask.any(axis=(0, 1))):
        for points in _contours(mask[:, :, k]):
            ijk = np.column_stack([points, np.full(len(points), k), np.ones(len(points))])
            world = (source.lps_affine @ ijk.T).T[:, :3]
            contour = Dataset()
            contour.ContourImageSequence = Sequence([image_ref(int(k))])
            contour.ContourGeometricType = "CLOSED_PLANAR"
            contour.NumberOfContourPoints = len(world)
            contour.ContourData = [f"{v:.4f}".rstrip("0").rstrip(".") for v in world.ravel()]
            items.append(contour)
    return items


def rasterize_rtstruct(
    ds: Any, lps_affine: np.ndarray, shape: tuple[int, int, int]
) -> dict[str, np.ndarray]:
    """ROI name -> boolean mask (X, Y, Z) of an RTSTRUCT's contours (even-odd rule per slice).

    Args:
        ds: The RTSTRUCT dataset.
        lps_affine: (4, 4) voxel-to-LPS matrix of the grid to rasterise on.
        shape: That grid's shape.
    """
    from skimage.draw import polygon2mask

    inverse = np.linalg.inv(lps_affine)
    names = {int(r.ROINumber): str(r.ROIName) for r in ds.StructureSetROISequence}
    out = {}
    for item in ds.ROIContourSequence:
        mask = np.zeros(shape, dtype=bool)
        for contour in item.get("ContourSequence", []):
            world = np.asarray(contour.ContourData, dtype=np.float64).reshape(-1, 3)
            ijk = (inverse @ np.column_stack([world, np.ones(len(world))]).T).T
            k = int(round(float(np.mean(ijk[:, 2]))))
            mask[:, :, k] ^= polygon2mask(shape[:2], ijk[:, :2])
        out[names[int(item.ReferencedROINumber)]] = mask
    return out
