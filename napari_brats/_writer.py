"""npe2 writer: a labels layer → a NIfTI label map in the source geometry (atomic, uint8).

The layer's ``metadata["bratseg"]`` (set by the reader and the Segment dock) gives the affine,
header and label convention of the case; the data is transposed back from layer order (Z, Y, X) to
file order (X, Y, Z). Writing goes through :func:`bratseg.io.save_label_map`: a temporary file in the
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
    # layers of this plugin and foreign layers alike are taken to be in (Z, Y, X) order
    labels = np.ascontiguousarray(from_display(array)).astype(np.uint8)
    if info.get("affine") is not None:
        affine = np.asarray(info["affine"], dtype=np.float64)
        header = info.get("header")
    else:  # a labels layer not built by this plugin: geometry from its scale only
        scale = tuple(meta.get("scale") or (1.0, 1.0, 1.0))
        affine = np.diag([float(scale[2]), float(scale[1]), float(scale[0]), 1.0])
        header = None
    convention = info.get("convention", "2021")
    return labels, {"affine": affine, "header": header, "convention": convention}


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

    target = Path(path)
    if not target.name.lower().endswith((".nii", ".nii.gz")):
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
