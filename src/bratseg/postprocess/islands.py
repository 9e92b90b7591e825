"""Removal of tumour islands: components much smaller than the main tumour.

Not from the seed papers: an nnU-Net-style cleanup used by :func:`bratseg.postprocess.postprocess`
when ``PostprocessConfig.min_island_fraction`` is above 0.
"""

from __future__ import annotations

import logging

import numpy as np
from scipy import ndimage

from bratseg.components import bounding_box, clear_flat, mask_components

logger = logging.getLogger(__name__)

#: Neighbourhood of tumour components (26-connectivity).
ISLAND_CONNECTIVITY = 3
#: ndimage.label costs about this many times less per box voxel than mask_components per voxel.
_DENSE_PER_SPARSE = 40


def remove_small_islands(wt: np.ndarray, fraction: float, *nested: np.ndarray) -> int:
    """Drop tumour components smaller than ``fraction`` of the largest one (in place).

    Components are 26-connected. A compact tumour is labelled with ``ndimage.label`` inside its
    bounding box; scattered voxels (a box far larger than the tumour) with the sparse
    :func:`~bratseg.components.mask_components`, whichever costs less (~30 ms either way on
    real cases).

    Args:
        wt: Boolean whole-tumour mask (X, Y, Z); modified in place.
        fraction: In [0, 1]; components with ``size < fraction * largest`` are cleared. 0 keeps
            everything.
        *nested: Masks inside ``wt`` (TC, ET), cleared at the same voxels.

    Returns:
        Number of voxels removed.
    """
    if fraction <= 0:
        return 0
    box = bounding_box(wt)
    if box is None:
        return 0
    box_voxels = int(np.prod([b.stop - b.start for b in box]))
    if box_voxels > _DENSE_PER_SPARSE * int(np.count_nonzero(wt[box])):
        flat, component, n = mask_components(wt, ISLAND_CONNECTIVITY)
        if n < 2:
            return 0
        sizes = np.bincount(component, minlength=n)
        removed_flat = flat[(sizes < fraction * sizes.max())[component]]
        for mask in (wt, *nested):
            clear_flat(mask, removed_flat)
        count = int(removed_flat.size)
    else:
        components, n = ndimage.label(
            wt[box], structure=ndimage.generate_binary_structure(wt.ndim, ISLAND_CONNECTIVITY)
        )
        if n < 2:
            return 0
        sizes = np.bincount(components.ravel())
        sizes[0] = 0
        drop = sizes < fraction * sizes.max()
        drop[0] = False
        removed = drop[components]
        for mask in (wt, *nested):
            mask[box][removed] = False
        count = int(np.count_nonzero(removed))
    logger.debug(
        "tumour islands: %d voxels in components < %.2f of the largest removed", count, fraction
    )
    return count
