"""npe2 writer: a labels layer → a NIfTI label map in the source geometry (atomic, uint8).

The layer's ``metadata["bratseg"]`` (set by the reader and the Segment dock) gives the affine,
header and label convention of the case; the data is brought back from the radiological layer
order to the file's own storage order (:func:`napari_brats._layers.from_display`). A labels layer
without that metadata (napari's "new labels" button) takes the geometry of the open case it
matches by shape and scale; with no such case, or several of different geometry, it is refused
with a message saying which, since an identity affine would open mirrored in other tools. Writing goes through :func:`bratseg.io.save_label_map`: a temporary file in the
same folder, fsync, then ``os.replace`` — never a partial file. napari's save dialog already asks
before replacing a file, so an existing file is replaced here.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from bratseg.errors import BratsInputError

from ._layers import META_KEY, from_display

logger = logging.getLogger(__name__)


def labels_for_writing(data: Any, meta: dict[str, Any]) -> tuple[np.ndarray, dict[str, Any]]:
    """Engine-order uint8 labels and their geometry from a layer's data and attributes.

    Args:
        data: Layer data, (Z, Y, X) when built by this plugin.
        meta: The layer attributes napari passes to writers (``metadata``, ``scale``...).

    Returns:
        ``(labels (X, Y, Z) uint8, geometry)`` with geometry keys affine, header, convention.
    """
    info = (meta.get("metadata") or {}).get(META_KEY) or {}
    array = np.asarray(data)
    if array.ndim != 3:
        raise BratsInputError(f"can only write 3D label maps, layer has shape {array.shape}")
    if array.size and (array.min() < 0 or array.max() > 255):
        raise BratsInputError("label values must lie in 0..255 to be written as uint8")
    if info.get("affine") is not None:
        affine = np.asarray(info["affine"], dtype=np.float64)
        header = info.get("header")
        convention = info.get("convention", "2021")
    else:
        case = matching_case(array.shape, tuple(meta.get("scale") or ()), meta.get("name"))
        affine, header = np.asarray(case.affine, dtype=np.float64), case.header
        convention = _convention_of(array)
    labels = np.ascontiguousarray(from_display(array, affine)).astype(np.uint8)
    return labels, {"affine": affine, "header": header, "convention": convention}


def matching_case(shape: tuple[int, ...], scale: tuple[float, ...], name: Any = None) -> Any:
    """The open case a geometry-less labels layer belongs to (same display shape and scale).

    Raises:
        BratsInputError: No open case matches, or several of different geometry do.
    """
    from ._cases import open_cases
    from ._layers import display_scale, to_display

    what = f"labels layer {name!r}" if name else "this labels layer"
    hits = []
    for case in open_cases():
        shown = to_display(np.empty(case.image.shape[1:], dtype=bool), case.affine).shape
        if tuple(shown) == tuple(shape) and (
            not scale
            or np.allclose(display_scale(case.spacing, case.affine), scale[-3:], atol=1e-6)
        ):
            hits.append(case)
    if not hits:
        raise BratsInputError(
            f"{what} has no known geometry (not made by napari-brats) and matches no open case "
            f"(layer shape {tuple(shape)}, scale {tuple(scale)}): open its case first, or paint on the "
            "case's segmentation layer"
        )
    if any(not np.allclose(h.affine, hits[0].affine) for h in hits[1:]):
        ids = ", ".join(sorted({h.case_id for h in hits}))
        raise BratsInputError(
            f"{what} has no known geometry and matches several open cases of different "
            f"geometry ({ids}): save it from the case's segmentation layer instead"
        )
    logger.info("%s takes the geometry of open case %s", what, hits[0].case_id)
    return hits[0]


def _convention_of(array: np.ndarray) -> str:
    from bratseg.labels import detect_convention

    try:
        return detect_convention(array)
    except BratsInputError:
        return "2021"


def write_labels(path: str, data: Any, meta: dict[str, Any]) -> list[str]:
    """npe2 single-layer writer for labels layers.

    Args:
        path: Destination ``.nii.gz``/``.nii`` file.
        data: The layer data.
        meta: The layer attributes.

    Returns:
        ``[path]`` of the file written.
    """
    from bratseg.io import save_label_map
    from bratseg.io.nifti import is_nifti_name

    target = Path(path)
    if not is_nifti_name(target.name):
        target = target.with_name(target.name + ".nii.gz")
    labels, geometry = labels_for_writing(data, meta)
    conv = geometry["convention"]
    written = save_label_map(
        labels,
        target,
        affine=geometry["affine"],
        header=geometry["header"],
        convention=conv,
        src_convention=conv,
        overwrite=True,
    )
    logger.info("wrote %s", written)
    return [str(written)]
