"""Labels of a prepared case back in the scanner's space: the native grid of a source series.

A prepared folder's grid and its T1Gd share one physical frame (only resampled), and
``transforms/<series>_to_t1ce.tfm`` maps T1Gd points to each other series' points, so a label map
on the prepared grid is resampled (nearest neighbour) into the native T1Gd grid directly, and into
another series' grid through the inverse of its transform.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np

from bratseg.errors import BratsInputError
from bratseg.io.align import to_sitk

#: Provenance file of a prepared case folder (written by :mod:`bratseg.prepare.pipeline`).
PROVENANCE = "prepare.json"


def read_provenance(folder: str | Path) -> dict[str, Any] | None:
    """The ``prepare.json`` of a prepared case folder, or None for any other folder."""
    path = Path(folder) / PROVENANCE
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise BratsInputError(f"unreadable provenance file ({exc})", path) from None
    if not isinstance(data, dict) or "sources" not in data:
        raise BratsInputError("not a provenance file of napari-brats prepare", path)
    return data


def labels_to_native(
    labels: np.ndarray, affine: np.ndarray, folder: str | Path, series: str = "t1ce"
) -> nib.Nifti1Image:
    """A label map on a prepared folder's grid, resampled into a source series' native grid.

    Args:
        labels: uint8 labels (X, Y, Z) on the prepared grid.
        affine: (4, 4) RAS affine of that grid.
        folder: The prepared case folder (with ``prepare.json`` and ``transforms/``).
        series: ``t1ce`` (default), ``t1``, ``t2`` or ``flair``.

    Returns:
        uint8 label image with the source series' shape and affine.

    Raises:
        BratsInputError: ``folder`` is not a prepared case folder, or the transform is missing.
    """
    import SimpleITK as sitk

    folder = Path(folder)
    provenance = read_provenance(folder)
    if provenance is None:
        raise BratsInputError(
            f"no {PROVENANCE}: not a folder written by napari-brats prepare", folder
        )
    if series not in provenance["sources"]:
        raise BratsInputError(f"unknown series {series!r}; use one of t1, t1ce, t2, flair")
    source = provenance["sources"][series]
    shape = tuple(int(s) for s in source["shape"])
    native_affine = np.asarray(source["affine"], dtype=np.float64)
    reference = to_sitk(nib.Nifti1Image(np.zeros(shape, dtype=np.float32), native_affine))
    moving = to_sitk(nib.Nifti1Image(labels.astype(np.float32), affine))
    transform = sitk.Transform()
    if source.get("transform"):
        path = folder / source["transform"]
        if not path.is_file():
            raise BratsInputError("transform of the source series is missing", path)
        transform = sitk.ReadTransform(str(path)).GetInverse()
    moved = sitk.Resample(moving, reference, transform, sitk.sitkNearestNeighbor, 0.0)
    data = sitk.GetArrayFromImage(moved).transpose(2, 1, 0)
    out = nib.Nifti1Image(np.rint(data).astype(np.uint8), native_affine)
    out.header.set_xyzt_units("mm")
    return out
