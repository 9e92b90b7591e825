"""The preparation pipeline: raw series -> a BraTS-ready case folder (see :mod:`bratseg.prepare`).

Steps (each timed, each a :class:`~bratseg.progress.Progress` report; closing the generator at a
report cancels and leaves nothing behind):

1. read the four series (:func:`~bratseg.prepare.series.pick_series`);
2. N4 bias-field correction of each (SimpleITK, fitted on a shrunk copy: :data:`N4_SHRINK`);
3. rigid registration of T1, T2 and FLAIR to T1Gd (:func:`bratseg.io.align.rigid_transform`);
4. resampling of the four into one 1 mm isotropic grid, axis-aligned like BraTS (LPS), covering the
   T1Gd's field of view;
5. brain extraction on the resampled T1Gd (deepbet), every series masked with it;
6. writing ``<id>_{t1,t1ce,t2,flair}.nii.gz``, ``<id>_brainmask.nii.gz``, ``transforms/*.tfm``
   (T1Gd points -> each series' points), ``qc/<id>_t1ce_head.nii.gz`` (the T1Gd before brain
   extraction, to check the mask against) and ``prepare.json`` (provenance: files, steps, times,
   versions, QC values, the source grids) into a temporary folder renamed to the target at the
   end, so unusable input writes nothing.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Generator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np

from bratseg.atomic import remove_stale_temporaries
from bratseg.atomic_folders import staging_folder
from bratseg.bias_field import N4_ITERATIONS, n4_corrected
from bratseg.errors import BratsInputError
from bratseg.io import MODALITIES, MODALITY_NAMES, open_nifti
from bratseg.io.align import rigid_transform, to_sitk
from bratseg.prepare.brain import deepbet_version, extract_brain
from bratseg.prepare.native import PROVENANCE
from bratseg.prepare.series import pick_series
from bratseg.progress import Progress, run_to_end

logger = logging.getLogger(__name__)

#: Folder of the transforms back to the source series.
TRANSFORMS = "transforms"
#: The resampled T1Gd before brain extraction (head and skull; uint8, :func:`display_copy`), to
#: check the brain mask against.
QC_HEAD = "qc/{case_id}_t1ce_head.nii.gz"
#: In-plane shrink factor of the N4 fit (the field is smooth; 4 keeps it under ~3 s a series).
N4_SHRINK = 4
#: A plausible adult brain volume in mL (outside: the case is flagged for review).
BRAIN_ML_RANGE = (900.0, 2000.0)
#: Output voxel size in mm (isotropic, as BraTS).
SPACING_MM = 1.0


@dataclass
class PrepareOptions:
    """How to prepare.

    Attributes:
        n4: Correct the bias field.
        device: Torch device of the brain extraction (``cpu``, ``cuda``, ...).
        case_id: Name of the output files (default: the output folder's name).
    """

    n4: bool = True
    device: str = "cpu"
    case_id: str | None = None


@dataclass
class PrepareResult:
    """What :func:`iter_prepare` wrote."""

    folder: Path
    provenance: dict[str, Any]
    review: list[str] = field(default_factory=list)


def prepare(
    source: str | Path,
    out_dir: str | Path,
    mapping: Mapping[str, str | Path] | None = None,
    options: PrepareOptions | None = None,
) -> PrepareResult:
    """:func:`iter_prepare` run to its end."""
    return run_to_end(iter_prepare(source, out_dir, mapping, options))


def check_destination(out_dir: Path) -> None:
    """Refuse an output folder that exists and is not empty, or whose parent is missing."""
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())):
        raise BratsInputError("output folder exists and is not empty; choose a new one", out_dir)
    if not out_dir.parent.is_dir():
        raise BratsInputError("parent folder does not exist", out_dir.parent)
    remove_stale_temporaries(out_dir.parent, f".{out_dir.name}.")  # of killed runs


def iter_prepare(
    source: str | Path,
    out_dir: str | Path,
    mapping: Mapping[str, str | Path] | None = None,
    options: PrepareOptions | None = None,
) -> Generator[Progress, None, PrepareResult]:
    """Prepare the raw series in ``source`` into the new case folder ``out_dir``.

    Yields:
        :class:`~bratseg.progress.Progress` before each step (10 in all).

    Returns:
        :class:`PrepareResult` (the provenance also written as ``prepare.json``).

    Raises:
        BratsInputError: A series is missing, ambiguous or unreadable, a tool is missing, a
            registration fails, or the output folder exists; nothing is written then.
    """
    import SimpleITK as sitk

    opts = options or PrepareOptions()
    source, out_dir = Path(source), Path(out_dir)
    check_destination(out_dir)
    case_id = opts.case_id or out_dir.name
    total = 10
    steps: list[dict[str, Any]] = []

    def timed(name: str, start: float, **extra: Any) -> None:
        steps.append({"step": name, "seconds": round(time.perf_counter() - start, 2), **extra})

    yield Progress(0, total, "reading the series")
    start = time.perf_counter()
    files = pick_series(source, mapping)
    native = {k: open_nifti(files[k]) for k in MODALITIES}
    for key, img in native.items():
        if len(img.shape) != 3:
            raise BratsInputError(f"expected a 3D series, got shape {img.shape}", files[key])
    images = {k: to_sitk(img) for k, img in native.items()}
    for key, image in images.items():
        check_grid_size(image, SPACING_MM, files[key])
    timed("read", start, files={k: str(v) for k, v in files.items()})

    for index, key in enumerate(MODALITIES):
        yield Progress(1 + index, total, f"bias-field correction of {MODALITY_NAMES[key]}")
        if opts.n4:
            start = time.perf_counter()
            images[key] = n4_correct(images[key])
            timed(f"n4 {key}", start)

    transforms: dict[str, Any] = {}
    alignment = []
    for index, key in enumerate(k for k in MODALITIES if k != "t1ce"):
        yield Progress(5 + index, total, f"registering {MODALITY_NAMES[key]} to T1Gd")
        start = time.perf_counter()
        transforms[key], report = rigid_transform(images["t1ce"], images[key], MODALITY_NAMES[key])
        alignment.append(report)
        timed(f"register {key}", start, line=report.line(), poor=report.poor)

    yield Progress(8, total, "resampling to 1 mm and extracting the brain")
    start = time.perf_counter()
    grid = iso_grid(images["t1ce"], SPACING_MM)
    arrays = {}
    for key in MODALITIES:
        transform = transforms.get(key, sitk.Transform())
        moved = sitk.Resample(images[key], grid, transform, sitk.sitkLinear, 0.0, sitk.sitkFloat32)
        arrays[key] = np.clip(sitk.GetArrayFromImage(moved).transpose(2, 1, 0), 0.0, None)
    affine = grid_affine(grid)
    timed("resample", start, spacing_mm=SPACING_MM, shape=list(arrays["t1ce"].shape))
    start = time.perf_counter()
    mask = extract_brain(nib.Nifti1Image(arrays["t1ce"], affine), opts.device)
    brain_ml = float(mask.sum()) * SPACING_MM**3 / 1000.0
    timed("brain extraction", start, tool="deepbet", brain_ml=round(brain_ml, 1))
    review = [r.line() for r in alignment if r.poor]
    low, high = BRAIN_ML_RANGE
    if not low <= brain_ml <= high:
        review.append(
            f"brain volume {brain_ml:,.0f} mL is outside {low:,.0f}-{high:,.0f} mL: check the "
            "brain mask"
        )
    if brain_ml < 100.0:
        raise BratsInputError(
            f"brain extraction found only {brain_ml:.0f} mL of brain; is this a head MRI?",
            files["t1ce"],
        )

    yield Progress(9, total, "writing the case folder")
    start = time.perf_counter()
    provenance = _provenance(case_id, files, native, steps, brain_ml, alignment, review, opts)
    _write_folder(out_dir, case_id, arrays, mask, affine, transforms, provenance)
    timed("write", start)
    provenance["steps"] = steps
    _write_json(out_dir / PROVENANCE, provenance)
    logger.info("prepared %s into %s", source, out_dir)
    return PrepareResult(out_dir, provenance, review)


def n4_correct(image):
    """``image`` divided by its N4 bias field (fitted on a copy shrunk by :data:`N4_SHRINK`
    inside an Otsu head mask: the input still has its skull)."""
    import SimpleITK as sitk

    head = sitk.OtsuThreshold(image, 0, 1, 200)
    return n4_corrected(image, head, N4_SHRINK, N4_ITERATIONS)


def display_copy(volume: np.ndarray) -> np.ndarray:
    """uint8 copy of a volume for looking at (0 to its 99.5th percentile of non-zero voxels
    -> 0-255): a quarter of float32's size, quick to write."""
    nonzero = volume[volume > 0]
    top = float(np.percentile(nonzero, 99.5)) if nonzero.size else 1.0
    return (np.clip(volume / max(top, 1e-6), 0.0, 1.0) * 255.0).astype(np.uint8)


def iso_grid(reference, spacing: float):
    """An empty SimpleITK image on a ``spacing`` mm grid, axis-aligned in LPS (as BraTS: identity
    direction), covering the physical extent of ``reference``."""
    import SimpleITK as sitk

    low, shape = _iso_extent(reference, spacing)
    grid = sitk.Image(shape, sitk.sitkFloat32)
    grid.SetSpacing([spacing] * 3)
    grid.SetOrigin([float(v + spacing / 2) for v in low])
    return grid


def check_grid_size(image, spacing: float, path: Path) -> None:
    """Refuse a series whose extent on a ``spacing`` mm grid would hold more voxels than any real
    MRI (:data:`~bratseg.io.nifti.MAX_VOLUME_VOXELS`): a damaged slice spacing or header, refused
    before the minutes of work and the allocation that would fail.

    Raises:
        BratsInputError: Naming the series, its voxel size and the grid it would need.
    """
    from bratseg.io.nifti import MAX_VOLUME_VOXELS

    _low, shape = _iso_extent(image, spacing)
    voxels = int(np.prod(shape, dtype=object))
    if voxels > MAX_VOLUME_VOXELS:
        sizes = " x ".join(f"{v:.3g}" for v in image.GetSpacing())
        raise BratsInputError(
            f"voxels of {sizes} mm over {tuple(image.GetSize())} make a {tuple(shape)} grid at "
            f"{spacing:g} mm ({voxels:.3g} voxels, more than the limit of "
            f"{MAX_VOLUME_VOXELS:.3g}): the slice spacing or the header is damaged",
            path,
        )


def _iso_extent(reference, spacing: float) -> tuple[np.ndarray, list[int]]:
    """Lowest LPS corner and the shape of a ``spacing`` mm grid covering ``reference``."""
    size = reference.GetSize()
    corners = np.array(
        [
            reference.TransformContinuousIndexToPhysicalPoint(
                [size[d] - 0.5 if bits[d] else -0.5 for d in range(3)]
            )
            for bits in np.ndindex(2, 2, 2)
        ]
    )
    low, high = corners.min(0), corners.max(0)
    return low, [int(np.ceil((h - lo) / spacing)) for lo, h in zip(low, high)]


def grid_affine(image) -> np.ndarray:
    """The RAS voxel-to-world affine (nibabel) of a SimpleITK image."""
    direction = np.asarray(image.GetDirection(), dtype=np.float64).reshape(3, 3)
    lps = np.eye(4)
    lps[:3, :3] = direction * np.asarray(image.GetSpacing(), dtype=np.float64)
    lps[:3, 3] = image.GetOrigin()
    return np.diag([-1.0, -1.0, 1.0, 1.0]) @ lps


def _provenance(
    case_id: str,
    files: dict[str, Path],
    native: dict[str, nib.Nifti1Image],
    steps: list[dict[str, Any]],
    brain_ml: float,
    alignment: list,
    review: list[str],
    opts: PrepareOptions,
) -> dict[str, Any]:
    import SimpleITK as sitk
    import torch

    from bratseg import __version__

    return {
        "case_id": case_id,
        "sources": {
            k: {
                "file": str(files[k]),
                "shape": [int(s) for s in native[k].shape[:3]],
                "affine": np.asarray(native[k].affine, dtype=float).round(6).tolist(),
                "transform": None if k == "t1ce" else f"{TRANSFORMS}/{k}_to_t1ce.tfm",
            }
            for k in MODALITIES
        },
        "reference_series": "t1ce",
        "steps": steps,
        "qc": {
            "brain_ml": round(brain_ml, 1),
            "brain_ml_plausible": list(BRAIN_ML_RANGE),
            "registration": [r.line() for r in alignment],
            "head_image": QC_HEAD.format(case_id=case_id),
            "needs_review": review,
        },
        "options": {"n4": opts.n4, "n4_shrink": N4_SHRINK, "spacing_mm": SPACING_MM},
        "versions": {
            "napari-brats": __version__,
            "SimpleITK": sitk.Version_VersionString(),
            "deepbet": deepbet_version(),
            "torch": torch.__version__,
        },
    }


def _write_json(path: Path, data: dict[str, Any]) -> None:
    import json

    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def _write_folder(
    out_dir: Path,
    case_id: str,
    arrays: dict[str, np.ndarray],
    mask: np.ndarray,
    affine: np.ndarray,
    transforms: dict[str, Any],
    provenance: dict[str, Any],
) -> None:
    """Everything into a temporary sibling folder, then renamed to ``out_dir``."""
    import SimpleITK as sitk

    remove_stale_temporaries(out_dir.parent, f".{out_dir.name}.")  # of killed runs
    with staging_folder(out_dir.parent, f".{out_dir.name}.") as tmp:
        for key in MODALITIES:
            data = np.where(mask, arrays[key], 0.0).astype(np.float32)
            img = nib.Nifti1Image(data, affine)
            img.header.set_xyzt_units("mm")
            nib.save(img, tmp / f"{case_id}_{key}.nii.gz")
        nib.save(
            nib.Nifti1Image(mask.astype(np.uint8), affine), tmp / f"{case_id}_brainmask.nii.gz"
        )
        head = tmp / QC_HEAD.format(case_id=case_id)
        head.parent.mkdir()
        nib.save(nib.Nifti1Image(display_copy(arrays["t1ce"]), affine), head)
        (tmp / TRANSFORMS).mkdir()
        for key, transform in transforms.items():
            sitk.WriteTransform(transform, str(tmp / TRANSFORMS / f"{key}_to_t1ce.tfm"))
        _write_json(tmp / PROVENANCE, provenance)
        if out_dir.exists():
            out_dir.rmdir()  # empty (checked before)
        os.replace(tmp, out_dir)
