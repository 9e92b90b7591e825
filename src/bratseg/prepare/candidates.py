"""The series of a raw study folder, described for a person choosing the four channels.

:func:`list_series` lists every candidate series (a NIfTI file or a DICOM series folder) with what
a clinician recognises it by: description, image count, slice thickness, acquisition time;
:func:`guess_channels` pre-selects one series per channel (T1, T1Gd, T2, FLAIR) with the same rules
as :func:`~bratseg.prepare.series.pick_series` (BraTS-style endings, then DICOM SeriesDescription
or the protocol words of a file name) and names every channel it cannot decide: two candidates
are never guessed between, the person chooses. :func:`middle_slice` gives a small thumbnail.

Headers only, except :func:`middle_slice` (one slice): listing a study of a few series takes
well under a second.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np

from bratseg.errors import BratsInputError
from bratseg.io import MODALITIES, match_modality
from bratseg.io.dicom import channel_of_description, is_dicom_folder
from bratseg.io.nifti import is_nifti_name, strip_nifti_suffix

#: DICOM tags read for a description: SeriesDescription, ProtocolName, SliceThickness,
#: AcquisitionTime, SeriesTime, SeriesNumber.
_TAGS = {
    "description": "0008|103e",
    "protocol": "0018|1030",
    "thickness": "0018|0050",
    "acquired": "0008|0032",
    "series_time": "0008|0031",
    "number": "0020|0011",
}


@dataclass(frozen=True)
class SeriesCandidate:
    """One series of a raw study folder.

    Attributes:
        path: The NIfTI file or the DICOM series folder (what ``--map`` takes).
        kind: ``"nifti"`` or ``"dicom"``.
        description: DICOM SeriesDescription (or ProtocolName), or the file name without suffix.
        images: Number of images (DICOM files; slices of a NIfTI volume).
        shape: Voxel grid (X, Y, Z) of a NIfTI file; of one image and the count for DICOM.
        slice_mm: Slice thickness in mm (DICOM SliceThickness, else the largest voxel side), or
            None when unknown.
        acquired: Acquisition (else series) time ``HH:MM:SS``, or None when unknown (NIfTI).
        series_number: DICOM SeriesNumber, or None.
        channel: The channel its description or name suggests (``t1`` ... ``flair``), or None.
    """

    path: Path
    kind: str
    description: str
    images: int
    shape: tuple[int, ...]
    slice_mm: float | None
    acquired: str | None = None
    series_number: int | None = None
    channel: str | None = None

    @property
    def name(self) -> str:
        """The file or folder name."""
        return self.path.name


@dataclass
class ChannelGuess:
    """The pre-selection of the four channels.

    Attributes:
        chosen: Channel -> the one candidate path that suggests it (absent when none or several).
        ambiguous: Channel -> the candidate paths that all suggest it (two or more): the person
            must choose.
        missing: Channels no candidate suggests.
    """

    chosen: dict[str, Path] = field(default_factory=dict)
    ambiguous: dict[str, list[Path]] = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        """All four channels chosen, nothing ambiguous."""
        return len(self.chosen) == len(MODALITIES) and not self.ambiguous


def list_series(folder: str | Path) -> list[SeriesCandidate]:
    """Every candidate series of a raw study folder, in name order.

    NIfTI files (``.nii``/``.nii.gz``, not hidden, not a ``_seg``/``_brainmask`` map) and
    sub-folders holding one DICOM series.

    Raises:
        BratsInputError: The folder is missing or holds no series.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise BratsInputError("study folder not found", folder)
    out: list[SeriesCandidate] = []
    for entry in sorted(folder.iterdir()):
        if entry.name.startswith("."):
            continue
        if entry.is_file() and is_nifti_name(entry.name):
            stem = strip_nifti_suffix(entry.name)
            if match_modality(entry.name) == "seg" or stem.lower().endswith("brainmask"):
                continue
            out.append(_nifti_candidate(entry))
        elif entry.is_dir() and is_dicom_folder(entry):
            out.append(_dicom_candidate(entry))
    if not out:
        raise BratsInputError(
            "no series found (NIfTI files or DICOM series folders); choose the study folder",
            folder,
        )
    return out


def guess_channels(candidates: list[SeriesCandidate]) -> ChannelGuess:
    """One candidate per channel where exactly one suggests it; ambiguity and gaps named."""
    by_channel: dict[str, list[Path]] = {}
    for cand in candidates:
        if cand.channel is not None:
            by_channel.setdefault(cand.channel, []).append(cand.path)
    guess = ChannelGuess()
    for key in MODALITIES:
        paths = by_channel.get(key, [])
        if len(paths) == 1:
            guess.chosen[key] = paths[0]
        elif paths:
            guess.ambiguous[key] = paths
        else:
            guess.missing.append(key)
    return guess


def middle_slice(candidate: SeriesCandidate, size: int = 96) -> np.ndarray:
    """A thumbnail of the middle slice: uint8 (rows, cols), at most ``size`` pixels a side,
    intensities scaled between the 1st and 99th percentile (rows = the image's second axis)."""
    if candidate.kind == "dicom":
        plane = _dicom_middle(candidate.path)
    else:
        img: Any = nib.load(candidate.path)
        data = img.dataobj
        if len(img.shape) < 3:
            plane = np.asarray(data, dtype=np.float32)
        else:
            index = (slice(None), slice(None), img.shape[2] // 2) + (0,) * (len(img.shape) - 3)
            plane = np.asarray(data[index], dtype=np.float32).T[::-1]  # rows = Y, top last
    step = max(1, int(np.ceil(max(plane.shape) / size)))
    plane = plane[::step, ::step]
    low, high = np.percentile(plane, [1.0, 99.0]) if plane.size else (0.0, 1.0)
    scaled = (plane - low) / max(float(high - low), 1e-6)
    return (np.clip(scaled, 0.0, 1.0) * 255).astype(np.uint8)


def _channel_of_name(name: str) -> str | None:
    key = match_modality(name)
    if key in MODALITIES:
        return key
    return channel_of_description(strip_nifti_suffix(name).replace("_", " "))


def _nifti_candidate(path: Path) -> SeriesCandidate:
    try:
        img: Any = nib.load(path)
    except Exception as exc:
        raise BratsInputError(f"unreadable NIfTI file ({exc})", path) from None
    shape = tuple(int(s) for s in img.shape)
    zooms = [float(z) for z in img.header.get_zooms()[:3]]
    return SeriesCandidate(
        path=path,
        kind="nifti",
        description=strip_nifti_suffix(path.name),
        images=shape[2] if len(shape) >= 3 else 1,
        shape=shape,
        slice_mm=max(zooms) if zooms else None,
        channel=_channel_of_name(path.name),
    )


def _dicom_files(folder: Path) -> list[str]:
    import SimpleITK as sitk

    return list(sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(folder)))


def _dicom_candidate(folder: Path) -> SeriesCandidate:
    import SimpleITK as sitk

    files = _dicom_files(folder)
    reader = sitk.ImageFileReader()
    reader.SetFileName(files[0])
    reader.LoadPrivateTagsOff()
    reader.ReadImageInformation()

    def tag(name: str) -> str:
        key = _TAGS[name]
        return reader.GetMetaData(key).strip() if reader.HasMetaDataKey(key) else ""

    description = tag("description") or tag("protocol")
    thickness = _float_or_none(tag("thickness"))
    if thickness is None and len(reader.GetSpacing()) >= 3:
        thickness = float(reader.GetSpacing()[2])
    number = tag("number")
    size = tuple(int(s) for s in reader.GetSize()[:2])
    return SeriesCandidate(
        path=folder,
        kind="dicom",
        description=description,
        images=len(files),
        shape=(*size, len(files)),
        slice_mm=thickness,
        acquired=_hhmmss(tag("acquired") or tag("series_time")),
        series_number=int(number) if number.lstrip("-").isdigit() else None,
        channel=channel_of_description(description) or channel_of_description(folder.name),
    )


def _dicom_middle(folder: Path) -> np.ndarray:
    import SimpleITK as sitk

    files = _dicom_files(folder)
    image = sitk.ReadImage(files[len(files) // 2])
    array = sitk.GetArrayFromImage(image).astype(np.float32)  # (1, rows, cols) or (rows, cols)
    return array.reshape(array.shape[-2:])


def _float_or_none(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if value > 0 else None


def _hhmmss(text: str) -> str | None:
    """DICOM TM (``HHMMSS.FFFFFF``) as ``HH:MM:SS`` (None when absent or malformed)."""
    digits = text.split(".")[0]
    if len(digits) < 4 or not digits.isdigit():
        return None
    digits = digits.ljust(6, "0")[:6]
    return f"{digits[0:2]}:{digits[2:4]}:{digits[4:6]}"
