"""Helpers building DICOM series for tests: any volume as a scanner-like series
(:func:`write_dicom_series`, the one DICOM writer of the tests), and small copies of the raw
clinical case (TCGA-FG-6692), decimated in-plane and written as a DICOM study with decoy series."""

from __future__ import annotations

import time
from pathlib import Path

import nibabel as nib
import numpy as np

#: UID root of the test series (a study UID, and ``.N`` series UIDs under it).
UID_ROOT = "1.2.826.0.1.3680043.2.1125.77"

#: Series folder -> (channel whose raw file it holds, SeriesDescription); decoys last.
DICOM_SERIES = {
    "s02": ("t2", "MRHR T2 AX"),
    "s05": ("flair", "MRHR FLAIR AX"),
    "s10": ("t1", "T1 AX SE"),
    "s13": ("t1ce", "MRHR T1 AX POST GAD"),
    "s11": ("t1", "T1 AX SE repeat"),  # decoy: a second T1
    "s07": ("t2", "DWI b1000 AX"),  # decoy
    "s01": ("t1", "3-plane loc"),  # decoy
}


def decimated(src: Path, dest: Path, step: int = 2) -> None:
    """``src`` with every ``step``-th voxel in-plane (voxels ``step`` times larger) at ``dest``."""
    img = nib.load(src)
    affine = img.affine.copy()
    affine[:3, :2] *= step
    data = np.asarray(img.dataobj)[::step, ::step, :]
    nib.save(nib.Nifti1Image(data, affine), dest)


def write_dicom_series(
    image,
    folder: Path,
    description: str,
    number: int,
    *,
    study_uid: str = UID_ROOT,
    series_uid: str | None = None,
    frame_of_reference: str | None = None,
) -> None:
    """A 3D image as one DICOM series (one file per slice) in ``folder``, as a scanner writes it.

    Args:
        image: A SimpleITK image, or the path of a NIfTI file.
        folder: Series folder to create.
        description: SeriesDescription.
        number: SeriesNumber (and the series UID ``UID_ROOT.number`` unless given).
        study_uid: StudyInstanceUID shared by the series of one study.
        series_uid: SeriesInstanceUID (SOP instance UIDs are ``series_uid.slice``).
        frame_of_reference: FrameOfReferenceUID, when the series of a study share one.
    """
    import SimpleITK as sitk

    if isinstance(image, (str, Path)):
        image = sitk.ReadImage(str(image))
    folder.mkdir(parents=True)
    d = image.GetDirection()
    uid = series_uid or f"{UID_ROOT}.{number}"
    common = [
        ("0008|0060", "MR"),
        ("0008|0021", time.strftime("%Y%m%d")),
        ("0008|0031", time.strftime("%H%M%S")),
        ("0008|0032", f"10{number:02d}00"),
        ("0018|0050", f"{image.GetSpacing()[2]:.1f}"),
        ("0020|000e", uid),
        ("0020|000d", study_uid),
        ("0020|0011", str(number)),
        ("0020|0037", "\\".join(map(str, (d[0], d[3], d[6], d[1], d[4], d[7])))),
        ("0008|103e", description),
    ]
    if frame_of_reference:
        common.append(("0020|0052", frame_of_reference))
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()
    for z in range(image.GetDepth()):
        piece = image[:, :, z]
        for tag, value in common:
            piece.SetMetaData(tag, value)
        point = image.TransformIndexToPhysicalPoint((0, 0, z))
        piece.SetMetaData("0020|0032", "\\".join(map(str, point)))
        piece.SetMetaData("0020|0013", str(z + 1))
        piece.SetMetaData("0008|0018", f"{uid}.{z + 1}")
        writer.SetFileName(str(folder / f"IM{z:04d}.dcm"))
        writer.Execute(piece)


def write_dicom_study(raw_map: dict[str, Path], root: Path, step: int = 2) -> Path:
    """The raw series (decimated ``step`` x in-plane) as a DICOM study folder ``root`` with the
    series of :data:`DICOM_SERIES` (a second T1, a DWI, a localizer among them)."""
    import SimpleITK as sitk

    root.mkdir(parents=True)
    for name, (channel, description) in DICOM_SERIES.items():
        path = root.parent / f".{root.name}-{name}.nii"
        decimated(raw_map[channel], path, step)
        img = nib.load(path)
        nib.save(nib.Nifti1Image(np.asarray(img.dataobj).astype(np.int16), img.affine), path)
        write_dicom_series(sitk.ReadImage(str(path)), root / name, description, int(name[1:]))
        path.unlink()
    return root
