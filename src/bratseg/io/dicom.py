"""DICOM series as case channels: one series folder per sequence, read with SimpleITK.

A channel may be a folder holding one DICOM series (``--map t1=DIR``), and a case folder may hold
four series folders instead of NIfTI files; they are matched to T1, T1Gd, T2 and FLAIR by their
SeriesDescription (an explicit mapping decides anything ambiguous). SimpleITK's series reader
sorts the slices by position; the volume becomes an in-memory NIfTI image (RAS affine from the
DICOM LPS geometry), so every check and output of a NIfTI case applies unchanged.

SimpleITK is an optional dependency (``pip install "napari-brats[dicom]"``).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np

from bratseg.errors import BratsInputError

#: SeriesDescription patterns per channel, most specific first (case-insensitive).
_DESCRIPTION_PATTERNS: tuple[tuple[str, str], ...] = (
    ("flair", r"flair|t2[\s_-]*f\b|\bt2f\b"),
    ("t1ce", r"t1.*(ce|gd|gad|post|contrast|\+c)|\bt1c\b|mprage.*post"),
    ("t2", r"\bt2\b|t2[\s_-]*w|t2[\s_-]*tse|t2[\s_-]*frfse"),
    ("t1", r"\bt1\b|t1[\s_-]*w|t1[\s_-]*n\b|mprage|\bt1[\s_-]*(se|tse|pre)"),
)


def _sitk():
    try:
        import SimpleITK as sitk
    except ImportError:
        raise BratsInputError(
            'reading DICOM needs SimpleITK: pip install "napari-brats[dicom]"'
        ) from None
    sitk.ProcessObject_SetGlobalWarningDisplay(False)  # no ITK chatter on stderr: errors are ours
    return sitk


def _looks_like_dicom(folder: Path, probe: int = 8) -> bool:
    """A few of the folder's files carry the DICOM preamble ("DICM" at byte 128)."""
    for i, item in enumerate(sorted(p for p in folder.iterdir() if p.is_file())):
        if i >= probe:
            break
        try:
            with open(item, "rb") as fh:
                fh.seek(128)
                if fh.read(4) == b"DICM":
                    return True
        except OSError:
            continue
    return False


def is_dicom_folder(path: str | Path) -> bool:
    """True when ``path`` is a folder holding at least one DICOM series (no SimpleITK: False)."""
    path = Path(path)
    if not path.is_dir() or not _looks_like_dicom(path):
        return False
    try:
        sitk = _sitk()
    except BratsInputError:
        return False
    return bool(sitk.ImageSeriesReader.GetGDCMSeriesIDs(str(path)))


def series_description(folder: str | Path) -> str:
    """SeriesDescription (0008|103e) of the series in ``folder`` ('' when absent)."""
    sitk = _sitk()
    files = sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(folder))
    if not files:
        return ""
    reader = sitk.ImageFileReader()
    reader.SetFileName(files[0])
    reader.LoadPrivateTagsOff()
    reader.ReadImageInformation()
    return reader.GetMetaData("0008|103e").strip() if reader.HasMetaDataKey("0008|103e") else ""


def channel_of_description(description: str) -> str | None:
    """The channel a SeriesDescription names, or None."""
    text = description.lower()
    for channel, pattern in _DESCRIPTION_PATTERNS:
        if re.search(pattern, text):
            return channel
    return None


def read_dicom_series(folder: str | Path) -> nib.Nifti1Image:
    """The one DICOM series in ``folder`` as an in-memory NIfTI image (RAS affine).

    Raises:
        BratsInputError: No series, several series (ambiguous), not 3D, or unreadable.
    """
    sitk = _sitk()
    folder = Path(folder)
    ids = sitk.ImageSeriesReader.GetGDCMSeriesIDs(str(folder))
    if not ids:
        raise BratsInputError("no DICOM series in the folder", folder)
    if len(ids) > 1:
        raise BratsInputError(
            f"{len(ids)} DICOM series in one folder; give each series its own folder", folder
        )
    files = sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(folder), ids[0])
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(files)
    reader.MetaDataDictionaryArrayUpdateOn()  # each slice's position, for the gap check
    try:
        image = reader.Execute()
    except RuntimeError as exc:
        raise BratsInputError(
            f"unreadable DICOM series ({str(exc).splitlines()[0]})", folder
        ) from None
    _check_even_slices(reader, files, image, folder)
    if image.GetDimension() != 3 or image.GetNumberOfComponentsPerPixel() != 1:
        raise BratsInputError(
            f"expected a 3D single-channel series, got dimension {image.GetDimension()}", folder
        )
    data = np.ascontiguousarray(sitk.GetArrayFromImage(image).transpose(2, 1, 0))  # (x, y, z)
    direction = np.asarray(image.GetDirection(), dtype=np.float64).reshape(3, 3)
    lps = np.eye(4)
    lps[:3, :3] = direction * np.asarray(image.GetSpacing(), dtype=np.float64)
    lps[:3, 3] = image.GetOrigin()
    affine = np.diag([-1.0, -1.0, 1.0, 1.0]) @ lps  # DICOM LPS+ world -> NIfTI RAS+ world
    out = nib.Nifti1Image(data, affine)
    out.header.set_xyzt_units("mm")
    return out


def _check_even_slices(reader: Any, files: Sequence[str], image: Any, folder: Path) -> None:
    """Refuse a series whose slices are not evenly spaced along its normal (a slice missing, or a
    damaged file GDCM left out): the volume would be read with shifted slices.

    Raises:
        BratsInputError: Naming the folder, the spacing range and any file left out of the series.
    """
    normal = np.asarray(image.GetDirection(), dtype=np.float64).reshape(3, 3)[:, 2]
    positions = []
    for index in range(len(files)):
        if not reader.HasMetaDataKey(index, "0020|0032"):
            return  # no positions to compare (GDCM ordered the files some other way)
        xyz = [float(v) for v in reader.GetMetaData(index, "0020|0032").split("\\")]
        positions.append(float(np.dot(xyz, normal)))
    steps = np.abs(np.diff(np.sort(positions)))
    if len(steps) < 2 or steps.max() - steps.min() <= 0.01 * float(np.median(steps)) + 1e-3:
        return
    used = {Path(f).name for f in files}
    left_out = sorted(p.name for p in folder.iterdir() if p.is_file() and p.name not in used)
    extra = f"; not read: {', '.join(left_out[:3])}" if left_out else ""
    raise BratsInputError(
        f"DICOM slices are not evenly spaced ({steps.min():.3g} to {steps.max():.3g} mm apart): a "
        f"slice is missing or damaged{extra}",
        folder,
    )


def find_dicom_channels(folder: Path, taken: dict[str, Path]) -> dict[str, Path]:
    """Series sub-folders of a case folder matched to channels not in ``taken``, by description.

    Raises:
        BratsInputError: Two series match one channel (pass an explicit mapping).
    """
    found: dict[str, list[tuple[Path, str]]] = {}
    for sub in sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")):
        if not is_dicom_folder(sub):
            continue
        description = series_description(sub)
        channel = channel_of_description(description) or channel_of_description(sub.name)
        if channel is not None and channel not in taken:
            found.setdefault(channel, []).append((sub, description))
    out = {}
    for channel, hits in found.items():
        if len(hits) > 1:
            names = ", ".join(f"{p.name} ({d!r})" for p, d in hits)
            raise BratsInputError(
                f"several DICOM series look like {channel}: {names}; pass an explicit "
                f"mapping (--map {channel}=DIR)",
                folder,
            )
        out[channel] = hits[0][0]
    return out
