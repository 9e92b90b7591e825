"""BraTS case folders: find the four MRI modalities (and the label map), load and validate them.

Recognised file names (case-insensitive, ``.nii`` or ``.nii.gz``), matched on the end of the
name so that ``_t1`` never matches ``_t1ce``:

========  =====================  ==================
channel   BraTS 2017-2021        BraTS 2023+
========  =====================  ==================
t1        ``*_t1``               ``*-t1n``
t1ce      ``*_t1ce``             ``*-t1c``
t2        ``*_t2``               ``*-t2w``
flair     ``*_flair``            ``*-t2f``
seg       ``*_seg``              ``*-seg``
========  =====================  ==================

Either separator (``_`` or ``-``) is accepted with either naming, as are the clinical names
``t1gd``, ``t1post`` and ``t1_post`` for T1Gd and a bare name such as ``flair.nii.gz``.
Anything else needs an explicit mapping, e.g. ``{"flair": "X_fla_bet.nii.gz"}`` (relative to the case folder, or absolute).

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
import re
from collections.abc import Generator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import nibabel as nib
import numpy as np

from bratseg.errors import BratsInputError
from bratseg.io.align import align_series
from bratseg.io.channels import (
    AFFINE_TOLERANCE,
    MODALITIES,
    MODALITY_NAMES,
    NAME_TOKENS,
    SUBSTITUTES,
)
from bratseg.io.nifti import (
    affine_difference,
    is_nifti_name,
    open_nifti,
    read_labels,
    read_volume,
    strip_nifti_suffix,
    voxel_spacing,
)
from bratseg.io.readiness import InputFinding, check_input
from bratseg.labels import Convention, detect_convention
from bratseg.progress import Progress, run_to_end

logger = logging.getLogger(__name__)

_ALIASES = {tok: key for key, toks in NAME_TOKENS.items() for tok in toks}


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


def match_modality(filename: str) -> str | None:
    """Which channel (``t1`` ... ``flair``) or ``"seg"`` a file name denotes by BraTS naming.

    Returns:
        The key, or ``None`` when the name is not a recognised NIfTI name.
    """
    if not is_nifti_name(filename) or filename.startswith("."):
        return None
    parts = re.split(r"[_-]", strip_nifti_suffix(filename).lower())
    if len(parts) >= 2 and f"{parts[-2]}_{parts[-1]}" in _ALIASES:  # two-word names: t1_post
        return _ALIASES[f"{parts[-2]}_{parts[-1]}"]
    return _ALIASES.get(parts[-1])


def find_case_files(
    folder: str | Path,
    mapping: Mapping[str, str | Path] | None = None,
    *,
    seg: bool = True,
    allow_missing: bool = False,
) -> dict[str, Path]:
    """Find the files of a case folder without reading them.

    Args:
        folder: Case folder.
        mapping: Optional explicit channel -> file (``t1``, ``t1ce``, ``t2``, ``flair``,
            ``seg``; BraTS 2023 names such as ``t2f`` accepted as keys). Relative paths are
            taken relative to ``folder``. Channels not in the mapping are found by name.
        seg: Also look for the label map; ``False`` ignores seg files (and their ambiguity).
        allow_missing: Accept a case that lacks a series whose stand-in
            (:data:`~bratseg.io.channels.SUBSTITUTES`) is there; the missing one is left out.

    Returns:
        Channel -> file for the four channels (fewer with ``allow_missing``), plus ``"seg"``
        when a label map is present.

    Raises:
        BratsInputError: Folder missing, a channel missing (naming the names looked for),
            two files for one channel, or a mapped file that does not exist.
    """
    folder = Path(folder)
    if not folder.exists():
        raise BratsInputError("case folder not found", folder)
    if not folder.is_dir():
        raise BratsInputError("expected a case folder holding the four MRI files", folder)
    files = _explicit_files(folder, mapping or {})
    found: dict[str, list[Path]] = {}
    for entry in sorted(folder.iterdir()):
        key = match_modality(entry.name)
        if key is not None and key not in files and entry.is_file() and (seg or key != "seg"):
            found.setdefault(key, []).append(entry)
    for key, paths in found.items():
        if len(paths) > 1:
            names = ", ".join(p.name for p in paths)
            raise BratsInputError(
                f"ambiguous {_display(key)} files: {names}; pass an explicit mapping", folder
            )
        files[key] = paths[0]
    if any(m not in files for m in MODALITIES):  # DICOM series sub-folders, by SeriesDescription
        from bratseg.io.dicom import find_dicom_channels

        files.update(find_dicom_channels(folder, files))
    missing = [m for m in MODALITIES if m not in files]
    unknown = _unrecognised_entries(folder, files) if missing else []
    if allow_missing and not unknown:  # a series named otherwise is never taken for missing
        missing = [m for m in missing if SUBSTITUTES[m] not in files]
    if missing:
        m = missing[0]
        looked = ", ".join(f"*_{t}, *-{t}" for t in NAME_TOKENS[m])
        if unknown:
            hint = f" (not recognised here: {', '.join(unknown[:4])})"
        elif allow_missing:
            hint = f" (a case needs {MODALITY_NAMES[m]} or {MODALITY_NAMES[SUBSTITUTES[m]]})"
        else:
            hint = ""
        raise BratsInputError(
            f"missing {MODALITY_NAMES[m]} ({m}) image: looked for {looked} "
            f"(.nii or .nii.gz); pass an explicit mapping for other names{hint}",
            folder,
        )
    return {k: files[k] for k in (*MODALITIES, "seg") if k in files}


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


# --------------------------------------------------------------------------- helpers


def _display(key: str) -> str:
    return f"{MODALITY_NAMES[key]} ({key})" if key in MODALITY_NAMES else "label map (seg)"


def _unrecognised_entries(folder: Path, files: Mapping[str, Path]) -> list[str]:
    """Names of NIfTI files and sub-folders (DICOM series) of ``folder`` that are none of the
    case's files: a missing series may be one of them under another name."""
    used = {Path(f).resolve() for f in files.values()}
    return [
        entry.name
        for entry in sorted(folder.iterdir())
        if not entry.name.startswith(".")
        and entry.resolve() not in used
        and (entry.is_dir() or (is_nifti_name(entry.name) and match_modality(entry.name) is None))
    ]


def _explicit_files(folder: Path, mapping: Mapping[str, str | Path]) -> dict[str, Path]:
    files: dict[str, Path] = {}
    for raw_key, value in mapping.items():
        key = _ALIASES.get(str(raw_key).lower().strip())
        if key is None:
            raise BratsInputError(
                f"unknown channel {raw_key!r} in mapping; use one of "
                f"{', '.join((*MODALITIES, 'seg'))}"
            )
        if key in files:
            raise BratsInputError(f"channel {key} given twice in mapping")
        file = Path(value).expanduser()
        if not file.is_absolute():
            file = folder / file
        if not (file.is_file() or file.is_dir()):  # a folder: a DICOM series
            raise BratsInputError(f"mapped {_display(key)} file not found", file)
        files[key] = file
    return files


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
