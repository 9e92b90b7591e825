"""npe2 reader: a BraTS case folder, or one NIfTI file, into napari layers.

* A case folder (any BraTS naming the engine recognises) → T1, T1Gd, T2, FLAIR image layers plus
  the reference seg as a labels layer when the folder has one.
* A ``.nii``/``.nii.gz`` file that belongs to a case folder (e.g. ``..._flair.nii.gz``) → the whole
  case, as above.
* Any other single NIfTI → one image layer (or one labels layer for an integer BraTS label map).

Bad input is reported with the engine's one-line :class:`bratseg.errors.BratsInputError` message
(napari shows it as an error notification); nothing is half-loaded.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Generator
from pathlib import Path
from typing import Any

import numpy as np

from bratseg.errors import BratsInputError
from bratseg.progress import Progress

from ._layers import META_KEY, LayerDataTuple, case_layer_data, contrast_limits, to_display

logger = logging.getLogger(__name__)

NIFTI_SUFFIXES = (".nii", ".nii.gz")
ReaderFunction = Callable[[Any], list[LayerDataTuple]]


def _is_nifti(path: Path) -> bool:
    return path.name.lower().endswith(NIFTI_SUFFIXES)


def _case_folder_of(path: Path) -> Path | None:
    """The case folder ``path`` is (a folder) or belongs to (one of the case's files)."""
    from bratseg.io import find_case_files

    folder = path if path.is_dir() else path.parent
    try:  # a case lacking one series opens too, with its stand-in (see Case.substituted)
        files = find_case_files(folder, allow_missing=True)
    except BratsInputError:
        return None
    if path.is_dir():
        return folder
    resolved = path.resolve()
    if any(Path(f).resolve() == resolved for f in files.values()):
        return folder
    return None


def napari_get_reader(path: str | list[str]) -> ReaderFunction | None:
    """npe2 ``get_reader`` hook: a reader when ``path`` is a case folder or a NIfTI file."""
    if isinstance(path, list):
        if len(path) != 1:
            return None
        path = path[0]
    p = Path(path)
    if p.is_dir():
        return read_case if _case_folder_of(p) is not None else None
    if _is_nifti(p):
        return read_case if _case_folder_of(p) is not None else read_single_nifti
    return None


def read_case(path: str | list[str], align: str = "none") -> list[LayerDataTuple]:
    """Load the case folder ``path`` is (or belongs to) and return its layers.

    Args:
        path: A case folder or one of its files.
        align: ``"none"``, ``"resample"`` or ``"register"`` (series on other grids; see
            :mod:`bratseg.io.align`): the layers then show the aligned series.

    Raises:
        BratsInputError: Missing modality, mismatched geometry, unreadable file... (one line).
    """
    from bratseg.progress import run_to_end

    return run_to_end(iter_read_case(path, align))


def iter_read_case(
    path: str | list[str], align: str = "none"
) -> Generator[Progress, None, list[LayerDataTuple]]:
    """:func:`read_case` as a job for a worker thread: yields the engine's progress while the
    series are aligned (a registration takes seconds per series) and returns the layers."""
    from bratseg.io import iter_load_case

    if isinstance(path, list):
        path = path[0]
    p = Path(path)
    folder = _case_folder_of(p) or (p if p.is_dir() else p.parent)
    case = yield from iter_load_case(folder, align=align, allow_missing=True)
    logger.info("loaded case %s from %s, shape %s", case.case_id, folder, case.shape)
    for report in case.alignment:
        (logger.warning if report.poor else logger.info)("%s", report.line())
    return case_layer_data(case)


def read_single_nifti(path: str | list[str]) -> list[LayerDataTuple]:
    """Load one 3D NIfTI that is not part of a case: a BraTS label map or an image.

    It is read by the engine (:func:`bratseg.io.open_nifti`, :func:`~bratseg.io.nifti.read_volume`,
    :func:`~bratseg.io.nifti.read_labels`), so one file gets the same truncation, dimension and
    NaN checks as a case folder, and shown like a case (radiological, whatever its storage).

    Raises:
        BratsInputError: Not a readable 3D NIfTI, or non-finite voxels.
    """
    from bratseg.io.nifti import open_nifti, read_labels, read_volume, voxel_spacing
    from bratseg.labels import detect_convention

    from ._layers import AXIS_LABELS, UNITS, display_scale, label_colormap, label_features

    if isinstance(path, list):
        path = path[0]
    p = Path(path)
    img = open_nifti(p)
    affine = np.asarray(img.affine, dtype=np.float64)
    spacing = voxel_spacing(img.header)
    meta: dict[str, Any] = {
        "case_id": p.name.split(".")[0],
        "affine": affine,
        "header": img.header,
        "spacing": spacing,
        "folder": str(p.parent),
        "axes": "display",
        "source": str(p),
    }
    name = p.name.removesuffix(".gz").removesuffix(".nii")
    common = {
        "name": name,
        "scale": display_scale(spacing, affine),
        "axis_labels": AXIS_LABELS,
        "units": UNITS,
    }
    try:  # integer values 0..4 (in any stored type): a label map
        labels = read_labels(img, p)
    except BratsInputError:
        labels = None
    if labels is not None:
        if labels.size and int(labels.max()) <= 4:
            try:
                convention = detect_convention(labels, source=str(p))
            except BratsInputError:
                convention = None
            if convention is not None:
                meta.update(role="reference", convention=convention)
                kwargs = {
                    **common,
                    "colormap": label_colormap(convention),
                    "features": label_features(convention),
                    "opacity": 0.5,
                    "metadata": {META_KEY: meta},
                }
                return [(to_display(labels, affine), kwargs, "labels")]
    volume = read_volume(img, p)
    meta.update(role="image")
    kwargs = {**common, "contrast_limits": contrast_limits(volume), "metadata": {META_KEY: meta}}
    return [(to_display(volume, affine), kwargs, "image")]
