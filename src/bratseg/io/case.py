"""BraTS case folders: find the four MRI modalities (and the label map), load and validate them.

The files are found by :func:`bratseg.io.case_files.find_case_files` (names, explicit mappings,
DICOM series sub-folders).

All modalities must share one shape and one affine (within :data:`AFFINE_TOLERANCE` of the voxel
size) and hold only finite values. The image is read once, straight into one float32 array of
shape (4, X, Y, Z), channels in :data:`MODALITIES` order.

A label map whose header disagrees with its images while it lies on the same voxel grid (same
shape, same voxel axes and sizes, only the origin differs, as in one public BraTS 2017 case) is
refused unless ``seg_on_image_grid=True`` is given, which takes the images' geometry for it and
logs a warning naming the file and the offset.
"""

from __future__ import annotations

import logging
from collections.abc import Generator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import nibabel as nib
import numpy as np

from bratseg.errors import BratsInputError
from bratseg.io.align import align_series
from bratseg.io.case_files import find_case_files
from bratseg.io.channels import (
    AFFINE_TOLERANCE,
    MODALITIES,
    MODALITY_NAMES,
    SUBSTITUTES,
)
from bratseg.io.nifti import (
    affine_difference,
    open_nifti,
    read_labels,
    read_volume,
    voxel_spacing,
)
from bratseg.io.readiness import InputFinding, check_input
from bratseg.labels import Convention, detect_convention
from bratseg.progress import Progress, run_to_end

logger = logging.getLogger(__name__)


@dataclass
class Case:
    """One loaded BraTS case.

    Attributes:
        case_id: Case name (the folder name).
        image: float32 array (4, X, Y, Z), channels in :data:`MODALITIES` order.
        affine: (4, 4) float64 voxel-to-world matrix (of the T1 file).
        header: NIfTI header of the T1 file, to write outputs in the source geometry.
        spacing: Voxel size in mm.
        files: Channel (and ``"seg"`` when present) -> file.
        seg: uint8 label map (X, Y, Z), values as on disk, or ``None``.
        seg_convention: Detected convention of ``seg`` or ``None``.
        folder: The case folder.
        alignment: What ``align`` did to each series (empty when the series shared one grid).
        findings: Why the case is not BraTS-ready (empty: ready; see :mod:`bratseg.io.readiness`).
        substituted: Missing series -> the series copied in its place (``allow_missing``; empty
            when all four were there), see :data:`bratseg.io.channels.SUBSTITUTES`.
    """

    case_id: str
    image: np.ndarray
    affine: np.ndarray
    header: nib.Nifti1Header
    spacing: tuple[float, float, float]
    files: dict[str, Path] = field(default_factory=dict)
    seg: np.ndarray | None = None
    seg_convention: Convention | None = None
    folder: Path | None = None
    alignment: list = field(default_factory=list)
    findings: list[InputFinding] = field(default_factory=list)
    substituted: dict[str, str] = field(default_factory=dict)

    @property
    def shape(self) -> tuple[int, int, int]:
        """Spatial shape (X, Y, Z)."""
        x, y, z = self.image.shape[1:]
        return int(x), int(y), int(z)

    def missing_sequence_notes(self) -> list[str]:
        """One line per missing series and what stands in for it (empty for a complete case)."""
        return [missing_sequence_note(m, s) for m, s in self.substituted.items()]


def missing_sequence_note(missing: str, substitute: str) -> str:
    """E.g. ``FLAIR missing: T2 used in its place; edema extent less reliable, review it``."""
    effect = {
        "flair": "edema extent less reliable, review it",
        "t2": "edema extent less reliable, review it",
        "t1": "necrosis less reliable and enhancement not checked, review it",
        "t1ce": "enhancing tumour cannot be assessed without contrast (ET becomes NCR)",
    }[missing]
    return (
        f"{MODALITY_NAMES[missing]} missing: {MODALITY_NAMES[substitute]} used in its place; "
        f"{effect}"
    )


def load_case(
    path: str | Path,
    mapping: Mapping[str, str | Path] | None = None,
    load_seg: bool = True,
    *,
    seg_on_image_grid: bool = False,
    labels: str | None = None,
    case_id: str | None = None,
    align: str = "none",
    allow_missing: bool = False,
) -> Case:
    """Load and validate a case folder: :func:`iter_load_case` run to its end (same arguments)."""
    return run_to_end(
        iter_load_case(
            path,
            mapping,
            load_seg,
            seg_on_image_grid=seg_on_image_grid,
            labels=labels,
            case_id=case_id,
            align=align,
            allow_missing=allow_missing,
        )
    )


def iter_load_case(
    path: str | Path,
    mapping: Mapping[str, str | Path] | None = None,
    load_seg: bool = True,
    *,
    seg_on_image_grid: bool = False,
    labels: str | None = None,
    case_id: str | None = None,
    align: str = "none",
    allow_missing: bool = False,
) -> Generator[Progress, None, Case]:
    """Load and validate a case folder, reporting progress while series are aligned (the slow
    part: a registration takes seconds per series); closing the generator at a report stops
    before the next series.

    Args:
        path: Case folder.
        mapping: Optional explicit channel -> file (see :func:`find_case_files`).
        load_seg: Also load the label map when one is present.
        seg_on_image_grid: Accept a label map whose affine differs from the images' only in
            its origin (same shape, voxel axes and sizes): it is taken on the images' grid, with
            a warning. Off by default: such a map is refused like any misaligned file.
        labels: Label convention of the seg (see :data:`bratseg.labels.CONVENTIONS`), or
            ``None`` to detect it from the values.
        case_id: The case's id (default: the folder's name; an nnU-Net dataset's cases share
            one folder).
        align: ``"none"`` (series must share one grid), ``"resample"`` or ``"register"`` into
            the T1Gd grid (see :mod:`bratseg.io.align`); the case then has the T1Gd's geometry.
        allow_missing: Load a case that lacks a series whose stand-in is there (FLAIR <-> T2,
            T1 <-> T1Gd): the stand-in's intensities are copied into the missing channel and
            the case's ``substituted`` says so (a warning is logged). For predicting only: the
            models saw four real series.

    Yields:
        :class:`~bratseg.progress.Progress` before each aligned series (none without ``align``).

    Returns:
        :class:`Case` with ``image`` float32 (4, X, Y, Z), ``seg`` uint8 (X, Y, Z) or ``None``.

    Raises:
        BratsInputError: One line naming the file and the problem: missing channel, not NIfTI,
            4D, truncated/corrupt, shape or affine mismatch, non-finite voxels, bad labels.
    """
    folder = Path(path)
    files = find_case_files(folder, mapping, seg=load_seg, allow_missing=allow_missing)
    present = [m for m in MODALITIES if m in files]
    substituted = {m: SUBSTITUTES[m] for m in MODALITIES if m not in files}
    images = {m: open_nifti(files[m]) for m in present}
    ref_key = "t1ce" if align != "none" else present[0]
    ref_key = ref_key if ref_key in images else SUBSTITUTES[ref_key]
    ref = images[ref_key]
    shape = tuple(int(s) for s in ref.shape[:3])
    affine = np.asarray(ref.affine, dtype=np.float64)
    spacing = voxel_spacing(ref.header)
    reports = []
    if align != "none":
        reports = yield from align_series(images, files, ref_key, align)
    for key in (k for k in present if k != ref_key):
        _check_geometry(
            images[key],
            files[key],
            shape,
            affine,
            spacing,
            files[ref_key],
            hint="" if align != "none" else ALIGN_HINT,
        )
    seg_img = None
    if load_seg and "seg" in files:
        seg_img = open_nifti(files["seg"])
        if seg_on_image_grid:
            _check_same_grid(seg_img, files["seg"], shape, affine, spacing, files[ref_key])
        else:
            _check_geometry(seg_img, files["seg"], shape, affine, spacing, files[ref_key])

    seg = convention = None
    if seg_img is not None:  # first: small and quick to read, so a bad seg fails fast
        seg = read_labels(seg_img, files["seg"])
        convention = detect_convention(seg, override=labels, source=str(files["seg"]))
    try:
        image = np.empty((len(MODALITIES), *shape), dtype=np.float32)
    except MemoryError:
        need = len(MODALITIES) * int(np.prod(shape)) * 4 / 2**30
        raise BratsInputError(
            f"case too large for this machine's memory: its four series of shape {shape} need "
            f"{need:.1f} GiB as float32",
            folder,
        ) from None
    for key in present:
        read_volume(images[key], files[key], out=image[MODALITIES.index(key)])
    for key, stand_in in substituted.items():
        image[MODALITIES.index(key)] = image[MODALITIES.index(stand_in)]
        logger.info("%s: %s", folder, missing_sequence_note(key, stand_in))
    if not load_seg:
        files.pop("seg", None)  # an explicitly mapped seg that was not wanted
    logger.info("loaded case %s %s from %s", folder.name, shape, folder)
    return Case(
        case_id=case_id or folder.name,
        image=image,
        affine=affine,
        header=ref.header,
        spacing=spacing,
        files=files,
        seg=seg,
        seg_convention=convention,
        folder=folder,
        alignment=reports,
        findings=check_input(image, spacing),
        substituted=substituted,
    )


#: What a geometry refusal of a series says about the way forward.
ALIGN_HINT = (
    "; pass --align resample (series in the scanner's frame) or --align register (rigid "
    "registration to T1Gd) to align them"
)


def _check_geometry(
    img: nib.Nifti1Image,
    path: Path,
    shape: tuple[int, ...],
    affine: np.ndarray,
    spacing: tuple[float, float, float],
    ref_path: Path,
    hint: str = "",
) -> None:
    this_shape = tuple(int(s) for s in img.shape[:3])
    if this_shape != shape:
        raise BratsInputError(
            f"shape {this_shape} differs from {shape} of {ref_path.name}{hint}", path
        )
    diff = affine_difference(img.affine, affine)
    tol = AFFINE_TOLERANCE * min(spacing)
    if diff > tol:
        raise BratsInputError(
            f"affine differs from that of {ref_path.name} by up to {diff:.6g} "
            f"(tolerance {tol:.3g}); the images are not co-registered{hint}",
            path,
        )


def _check_same_grid(
    img: nib.Nifti1Image,
    path: Path,
    shape: tuple[int, ...],
    affine: np.ndarray,
    spacing: tuple[float, float, float],
    ref_path: Path,
) -> None:
    """Like :func:`_check_geometry`, but a difference in the origin alone is a warning."""
    this_affine = np.asarray(img.affine, dtype=np.float64)
    tol = AFFINE_TOLERANCE * min(spacing)
    if affine_difference(this_affine, affine) <= tol:
        return
    if (
        tuple(int(s) for s in img.shape[:3]) != shape
        or affine_difference(this_affine[:3, :3], affine[:3, :3]) > tol
    ):
        _check_geometry(img, path, shape, affine, spacing, ref_path)  # raises: another grid
        return
    offset = this_affine[:3, 3] - affine[:3, 3]
    logger.warning(
        "%s: origin differs from that of %s by (%s) mm on the same voxel grid; "
        "taking the images' geometry for it (seg_on_image_grid)",
        path,
        ref_path.name,
        ", ".join(f"{v:.6g}" for v in offset),
    )
