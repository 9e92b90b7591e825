"""Tumour components that are not tumour: islands much smaller than the main tumour, and parts
without a tumour core.

Not from the papers: nnU-Net-style cleanups used by :func:`bratseg.postprocess.postprocess` when
``PostprocessConfig.min_island_fraction`` is above 0, and when ``wt_needs_core`` is set.
"""

from __future__ import annotations

import logging

import numpy as np

from bratseg.components import clear_flat, gather_flat, mask_components

logger = logging.getLogger(__name__)

#: Neighbourhood of tumour components (26-connectivity).
ISLAND_CONNECTIVITY = 3


def tumour_components(wt: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    """The 26-connected components of a whole-tumour mask, as flat voxel indices.

    Args:
        wt: Boolean whole-tumour mask (X, Y, Z).

    Returns:
        ``(flat, component, n)`` of :func:`~bratseg.components.mask_components`: flat (C-order)
        indices of the tumour voxels, their component ids in [0, n), and the number n.
    """
    return mask_components(wt, ISLAND_CONNECTIVITY)


def _clear(flat: np.ndarray, masks: tuple[np.ndarray, ...]) -> int:
    for mask in masks:
        clear_flat(mask, flat)
    return int(flat.size)


def remove_small_islands(wt: np.ndarray, fraction: float, *nested: np.ndarray) -> int:
    """Drop tumour components smaller than ``fraction`` of the largest one (in place).

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
    flat, component, n = tumour_components(wt)
    if n < 2:
        return 0
    sizes = np.bincount(component, minlength=n)
    count = _clear(flat[(sizes < fraction * sizes.max())[component]], (wt, *nested))
    logger.debug(
        "tumour islands: %d voxels in components < %.2f of the largest removed", count, fraction
    )
    return count


def remove_coreless_components(wt: np.ndarray, tc: np.ndarray, *nested: np.ndarray) -> int:
    """Drop tumour components that hold no tumour-core voxel (in place).

    A glioma's edema surrounds a core (necrosis, enhancing or non-enhancing tumour: BraTS labels
    the latter NCR too), so a whole-tumour component with no TC voxel is most often a FLAIR
    hyperintensity away from the tumour (gliosis, small-vessel disease). Nothing is removed when
    TC is empty everywhere (the tumour's core was missed: the edema is all there is).

    Args:
        wt: Boolean whole-tumour mask (X, Y, Z); modified in place.
        tc: Boolean tumour-core mask inside ``wt``.
        *nested: Further masks inside ``wt`` (ET), cleared at the same voxels.

    Returns:
        Number of voxels removed.
    """
    flat, component, n = tumour_components(wt)
    if n < 2:
        return 0
    in_core = gather_flat(tc, flat)
    if not in_core.any():
        return 0
    has_core = np.zeros(n, dtype=bool)
    has_core[component[in_core]] = True
    count = _clear(flat[~has_core[component]], (wt, tc, *nested))
    logger.debug("tumour parts without core: %d voxels removed", count)
    return count
