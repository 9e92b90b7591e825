"""The source MR series every DICOM output references: the case's own T1Gd series, or a new one.

A case read from DICOM series folders keeps its scanner identity: the T1Gd series' files are read
back with pydicom, matched slice by slice to the case volume (position and orientation checked),
and every output shares its Study, Frame of Reference and patient attributes.

A case read from NIfTI has no DICOM identity. Then a consistent new study is made: new Study,
Series and Frame of Reference UIDs, and the T1Gd volume itself is written as an MR series
(:func:`synthesize_series`) so that SEG and RTSTRUCT can reference real instances. The series and
every output say so (:func:`synthesized_note`).

Voxel ``(i, j, k)`` of the case volume (RAS affine, as :mod:`bratseg.io.dicom` builds it) is pixel
``(row j, column i)`` of slice ``k``: frames are ``volume[:, :, k].T``.
"""

from __future__ import annotations

import datetime as _dt
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from pydicom.uid import UID

from bratseg.errors import BratsInputError

logger = logging.getLogger(__name__)

#: DICOM UID of MR Image Storage.
MR_IMAGE_STORAGE = UID("1.2.840.10008.5.1.4.1.1.4")
#: Manufacturer attributes of every object written.
MANUFACTURER = "napari-brats"
#: BodyPartExamined of new series (an unpaired part: no Laterality).
BODY_PART = "BRAIN"


def synthesized_note(shown: str = "T1Gd") -> str:
    """What every output of a case without DICOM identity says; ``shown`` names the series
    written (``"T1Gd"``, or e.g. ``"T1 in place of the missing T1Gd"``)."""
    return (
        "No source DICOM: the case was read from NIfTI, so a new study was created (new Study, "
        f"Series and Frame of Reference UIDs) and the volume shown ({shown}) written as its MR "
        "series."
    )


#: Positions of a matched slice may differ by this fraction of the voxel size.
_POSITION_TOLERANCE = 0.1

RAS_TO_LPS = np.diag([-1.0, -1.0, 1.0, 1.0])


#: Patient and General Study attributes every object written copies from its source series, so
#: that a PACS files them all under the same patient and study.
PATIENT_STUDY_KEYWORDS: tuple[str, ...] = (
    "PatientName",
    "PatientID",
    "PatientBirthDate",
    "PatientSex",
    "StudyInstanceUID",
    "StudyDate",
    "StudyTime",
    "StudyID",
    "AccessionNumber",
    "ReferringPhysicianName",
)


def copy_patient_study(source: Any, target: Any) -> None:
    """Give ``target`` the patient and study attributes of ``source`` (pydicom datasets).

    Every keyword of :data:`PATIENT_STUDY_KEYWORDS` is set, empty where ``source`` lacks it (the
    attributes are required, empty allowed, in every IOD written here).
    """
    for keyword in PATIENT_STUDY_KEYWORDS:
        setattr(target, keyword, source.get(keyword, ""))


@dataclass
class SourceSeries:
    """The MR series the outputs reference, one dataset per case slice ``k``.

    Attributes:
        datasets: pydicom datasets in slice order ``k = 0 .. Z-1`` (pixel data included).
        synthesized: True when the series was made here from a NIfTI case.
        lps_affine: (4, 4) voxel ``(i, j, k)`` to DICOM patient (LPS, mm) matrix.
    """

    datasets: list[Any]
    synthesized: bool
    lps_affine: np.ndarray

    @property
    def first(self) -> Any:
        """The first slice's dataset (study, patient and frame-of-reference attributes)."""
        return self.datasets[0]


def lps_geometry(affine: np.ndarray) -> tuple[np.ndarray, list[float], list[float], float]:
    """Orientation and spacing of a case grid in DICOM terms.

    Args:
        affine: (4, 4) voxel-to-RAS matrix of the case.

    Returns:
        ``(lps_affine, image_orientation, pixel_spacing, slice_step)``: the LPS matrix, the six
        ImageOrientationPatient cosines (row = +i, column = +j), PixelSpacing ``[row, column]``
        (= ``[dj, di]``) and the signed slice step along the slice normal in mm.

    Raises:
        BratsInputError: The voxel axes are not orthogonal (a sheared grid has no DICOM slices).
    """
    lps = RAS_TO_LPS @ np.asarray(affine, dtype=np.float64)
    axes = lps[:3, :3]
    sizes = np.linalg.norm(axes, axis=0)
    unit = axes / sizes
    if np.max(np.abs(unit.T @ unit - np.eye(3))) > 1e-4:
        raise BratsInputError(
            "the case's voxel axes are not orthogonal; DICOM slices need an orthogonal grid "
            "(resample the case first)"
        )
    normal = np.cross(unit[:, 0], unit[:, 1])
    step = float(np.dot(axes[:, 2], normal))
    orientation = [ds_value(v) for v in (*unit[:, 0], *unit[:, 1])]
    return lps, orientation, [ds_value(sizes[1]), ds_value(sizes[0])], ds_value(step)


def ds_value(value: float) -> float:
    """``value`` rounded to 6 decimals: its shortest form fits a DICOM DS (16 characters)."""
    return round(float(value), 6)


def slice_position(lps_affine: np.ndarray, k: int) -> list[float]:
    """ImagePositionPatient (LPS, mm) of slice ``k``: the centre of voxel ``(0, 0, k)``."""
    return [ds_value(v) for v in (lps_affine @ np.array([0.0, 0.0, float(k), 1.0]))[:3]]


def frame_of(volume: np.ndarray, k: int) -> np.ndarray:
    """Slice ``k`` of an (X, Y, Z) volume as a DICOM frame (rows = Y, columns = X)."""
    return np.ascontiguousarray(volume[:, :, k].T)


def person_name(name: str) -> str:
    """A free-text name as a DICOM PN: the whole text as family name (``Dr Who`` -> ``Dr Who^``)."""
    name = " ".join(name.split())
    return name if "^" in name or not name else f"{name}^"


def now_date_time() -> tuple[str, str]:
    """DICOM DA and TM strings for now (UTC)."""
    now = _dt.datetime.now(_dt.timezone.utc)
    return now.strftime("%Y%m%d"), now.strftime("%H%M%S")


def read_source_series(
    folder: Path, affine: np.ndarray, shape: tuple[int, int, int]
) -> SourceSeries:
    """The DICOM series in ``folder`` matched to the case grid, slice by slice.

    Raises:
        BratsInputError: Not one series, or a slice count, orientation, spacing or position that
            does not match the case (the case was resampled or registered away from it).
    """
    import pydicom

    lps, orientation, spacing, _ = lps_geometry(affine)
    datasets = []
    for path in sorted(p for p in folder.iterdir() if p.is_file()):
        try:
            ds = pydicom.dcmread(path)
        except Exception:  # noqa: BLE001 - not DICOM: not part of the series
            continue
        if "ImagePositionPatient" in ds and "PixelData" in ds:
            datasets.append(ds)
    series = {str(ds.SeriesInstanceUID) for ds in datasets}
    if len(series) != 1:
        raise BratsInputError(f"expected one DICOM image series, found {len(series)}", folder)
    if len(datasets) != shape[2]:
        raise BratsInputError(
            f"{len(datasets)} slices but the case grid has {shape[2]}; the case is not on this "
            "series' grid (load it with --align to take the T1Gd grid)",
            folder,
        )
    tol = _POSITION_TOLERANCE * min(spacing)
    by_position = {}
    for ds in datasets:
        if np.max(np.abs(np.asarray(ds.ImageOrientationPatient, float) - orientation)) > 1e-3:
            raise BratsInputError(
                "slice orientation differs from the case grid's (load the case with --align to "
                "take the T1Gd grid)",
                folder,
            )
        by_position[tuple(np.asarray(ds.ImagePositionPatient, float))] = ds
    ordered = []
    for k in range(shape[2]):
        want = np.asarray(slice_position(lps, k))
        best = min(by_position, key=lambda p: float(np.linalg.norm(np.asarray(p) - want)))
        if np.linalg.norm(np.asarray(best) - want) > tol:
            raise BratsInputError(
                f"no slice at the case's slice {k} position {want.round(3).tolist()}; the case "
                "is not on this series' grid (load it with --align to take the T1Gd grid)",
                folder,
            )
        ordered.append(by_position.pop(best))
    first = ordered[0]
    if (int(first.Rows), int(first.Columns)) != (shape[1], shape[0]):
        raise BratsInputError(
            f"slices are {first.Rows}x{first.Columns}, the case {shape[1]}x{shape[0]}", folder
        )
    if "FrameOfReferenceUID" not in first:
        raise BratsInputError("the series has no FrameOfReferenceUID", folder)
    step = float(np.linalg.norm(lps[:3, 2]))
    for ds in ordered:  # type 2 (may be empty); the SEG's pixel measures need a value
        if not ds.get("SliceThickness", None):
            ds.SliceThickness = step  # in memory only: the source files are never written
    logger.info("referencing DICOM series %s (%d slices)", first.SeriesInstanceUID, len(ordered))
    return SourceSeries(datasets=ordered, synthesized=False, lps_affine=lps)


def _int16_volume(volume: np.ndarray) -> np.ndarray:
    """The volume as int16, unchanged when its values are integers in range, else scaled."""
    finite = np.asarray(volume, dtype=np.float64)
    lo, hi = float(finite.min()), float(finite.max())
    if np.array_equal(finite, np.round(finite)) and lo >= -32768 and hi <= 32767:
        return finite.astype(np.int16)
    logger.info("T1Gd values are not int16; scaled %.4g..%.4g to 0..4095", lo, hi)
    return np.round((finite - lo) / max(hi - lo, 1e-12) * 4095.0).astype(np.int16)


def synthesize_series(
    volume: np.ndarray,
    affine: np.ndarray,
    case_id: str,
    source_file: str,
    shown: str = "T1Gd",
) -> SourceSeries:
    """A new MR study and series holding ``volume`` (the case's T1Gd), one instance per slice.

    Args:
        volume: (X, Y, Z) intensities.
        affine: (4, 4) voxel-to-RAS matrix.
        case_id: Patient ID and name of the new study.
        source_file: The NIfTI file the volume came from (named in the series).
        shown: What the volume is (``"T1Gd"``, or what stood in for it), said in the
            SeriesDescription and the image comments.
    """
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    from bratseg import __version__

    lps, orientation, spacing, step = lps_geometry(affine)
    pixels = _int16_volume(volume)
    study, series, frame_of_reference = generate_uid(), generate_uid(), generate_uid()
    date, time = now_date_time()
    lo, hi = np.percentile(pixels[pixels > 0], [1, 99]) if np.any(pixels > 0) else (0, 1)
    study_block = Dataset()  # the new study's patient and study attributes
    study_block.PatientName = person_name(case_id)
    study_block.PatientID = case_id
    study_block.StudyInstanceUID = study
    study_block.StudyDate, study_block.StudyTime = date, time
    study_block.StudyID = "1"
    datasets = []
    for k in range(pixels.shape[2]):
        ds = Dataset()
        ds.file_meta = FileMetaDataset()
        ds.file_meta.MediaStorageSOPClassUID = MR_IMAGE_STORAGE
        ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds.SOPClassUID = MR_IMAGE_STORAGE
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID
        ds.SpecificCharacterSet = "ISO_IR 192"
        copy_patient_study(study_block, ds)
        ds.StudyDescription = f"napari-brats study of {case_id}"
        ds.Modality = "MR"
        ds.SeriesInstanceUID = series
        ds.SeriesNumber = 1
        ds.SeriesDescription = f"{shown} (from NIfTI)"[:64]
        ds.SeriesDate, ds.SeriesTime = date, time
        ds.Manufacturer = MANUFACTURER
        ds.SoftwareVersions = __version__
        ds.FrameOfReferenceUID = frame_of_reference
        ds.PositionReferenceIndicator = ""
        ds.ImageType = ["DERIVED", "SECONDARY", "OTHER"]
        ds.BodyPartExamined = BODY_PART
        ds.PatientPosition = ""
        ds.InstanceNumber = k + 1
        ds.ContentDate, ds.ContentTime = date, time
        ds.ImageComments = synthesized_note(shown)
        ds.DerivationDescription = f"converted from NIfTI {Path(source_file).name}"[:1024]
        ds.ScanningSequence = "RM"
        ds.SequenceVariant = "NONE"
        ds.ScanOptions = ""
        ds.MRAcquisitionType = "3D"
        ds.RepetitionTime = ""
        ds.EchoTime = ""
        ds.EchoTrainLength = ""
        ds.ImagePositionPatient = slice_position(lps, k)
        ds.ImageOrientationPatient = orientation
        ds.PixelSpacing = spacing
        ds.SliceThickness = abs(step)
        ds.SliceLocation = ds_value(
            np.dot(slice_position(lps, k), np.cross(orientation[:3], orientation[3:]))
        )
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        frame = frame_of(pixels, k)
        ds.Rows, ds.Columns = frame.shape
        ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, 16, 15
        ds.PixelRepresentation = 1
        ds.WindowCenter = ds_value((lo + hi) / 2)
        ds.WindowWidth = ds_value(max(hi - lo, 1))
        ds.PixelData = frame.astype("<i2").tobytes()
        datasets.append(ds)
    return SourceSeries(datasets=datasets, synthesized=True, lps_affine=lps)
