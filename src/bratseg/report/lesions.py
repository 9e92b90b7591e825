"""Lesions of a label map: 26-connected tumour components, their volumes, sides and RANO sizes.

A *lesion* is a 26-connected component of the whole tumour (NCR | ED | ET); an *enhancing
lesion* is a 26-connected component of ET, belonging to the lesion that contains it (ET ⊂ WT).
Components come from :func:`bratseg.components.mask_components`.

Sides are given in the patient's frame. NIfTI affines map voxels to RAS+ world coordinates
(x grows towards the patient's right), whatever the storage (LPS as BraTS, RAS, sagittal), so a
lesion is on the patient's left when the x of its centroid is below the x of the mid-sagittal
plane. That plane is taken through the centroid of the brain mask (image voxels above zero in any
channel) when the images are given, else through the centre of the volume; no registration to an
atlas is made.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from bratseg.components import gather_flat, mask_components
from bratseg.labels import LABEL_VALUES, TISSUES, Convention, region_masks
from bratseg.report.rano import Bidimensional, axial_axis_of, measure_bidimensional

#: 26-connectivity (faces, edges and corners) of lesions, as ``mask_components`` counts it.
LESION_CONNECTIVITY = 3


@dataclass
class EnhancingLesion:
    """One 26-connected component of ET.

    Attributes:
        id: 1-based, by decreasing volume.
        lesion: Id of the tumour lesion holding it.
        volume_ml: Its volume.
        rano: Its bidimensional measurement (see :mod:`bratseg.report.rano`).
        target: One of the (up to five) target lesions whose products are summed.
    """

    id: int
    lesion: int
    volume_ml: float
    rano: Bidimensional
    target: bool = False

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict."""
        return {**asdict(self), "rano": self.rano.to_dict()}


@dataclass
class Lesion:
    """One 26-connected component of the whole tumour.

    Attributes:
        id: 1-based, by decreasing volume.
        voxels: Number of voxels.
        volume_ml: Its volume.
        tissue_ml: ``{"ncr", "ed", "et"}`` -> volume inside it.
        centroid_voxel: Centroid in storage voxel coordinates (X, Y, Z).
        centroid_mm: Centroid in world (RAS+) coordinates.
        hemisphere: ``"left"`` or ``"right"`` (the patient's), from the centroid.
        midline_distance_mm: Distance of the centroid from the mid-sagittal plane.
        fraction_left: Fraction of its voxels on the patient's left.
        enhancing: Ids of its enhancing lesions.
    """

    id: int
    voxels: int
    volume_ml: float
    tissue_ml: dict[str, float]
    centroid_voxel: list[float]
    centroid_mm: list[float]
    hemisphere: str
    midline_distance_mm: float
    fraction_left: float
    enhancing: list[int] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict."""
        return asdict(self)


def midline_x(affine: np.ndarray, shape: Sequence[int], brain: np.ndarray | None = None) -> float:
    """World x (RAS+, mm) of the mid-sagittal plane.

    Args:
        affine: (4, 4) voxel-to-world matrix.
        shape: Spatial shape (X, Y, Z).
        brain: Optional boolean (X, Y, Z) brain mask; its centroid sets the plane, else the
            volume's centre does.
    """
    if brain is not None and np.any(brain):
        brain = np.asarray(brain, dtype=bool)
        n = float(np.count_nonzero(brain))
        centre = [
            float((np.arange(s) * brain.sum(axis=tuple(b for b in range(3) if b != a))).sum()) / n
            for a, s in enumerate(brain.shape)
        ]
    else:
        centre = [(s - 1) / 2.0 for s in shape]
    return float(np.asarray(affine, dtype=np.float64)[0] @ np.array([*centre, 1.0]))


def brain_mask(images: np.ndarray) -> np.ndarray:
    """Voxels above zero in any channel: bool (X, Y, Z) from images (C, X, Y, Z) or (X, Y, Z)."""
    images = np.asarray(images)
    return np.asarray((images > 0).any(axis=0) if images.ndim == 4 else images > 0)


def _components_by_size(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    """Components of ``mask`` renumbered 0.. by decreasing size (ties: first voxel first)."""
    flat, comp, n = mask_components(mask, connectivity=LESION_CONNECTIVITY)
    if n == 0:
        return flat, comp, 0
    sizes = np.bincount(comp, minlength=n)
    first = np.full(n, flat.size, dtype=np.int64)
    np.minimum.at(first, comp, np.arange(flat.size))
    order = np.lexsort((first, -sizes))  # new rank -> old id
    rank = np.empty(n, dtype=np.int32)
    rank[order] = np.arange(n, dtype=np.int32)
    return flat, rank[comp], n


def find_lesions(
    labels: np.ndarray,
    convention: Convention,
    affine: np.ndarray,
    spacing: Sequence[float],
    brain: np.ndarray | None = None,
) -> tuple[list[Lesion], list[EnhancingLesion]]:
    """Tumour lesions and enhancing lesions of a label map, each measured.

    Args:
        labels: Integer label map (X, Y, Z) in ``convention``.
        convention: Its label convention.
        affine: (4, 4) voxel-to-world matrix.
        spacing: Voxel size in mm per storage axis.
        brain: Optional boolean (X, Y, Z) brain mask for the mid-sagittal plane.

    Returns:
        ``(lesions, enhancing)``, each sorted by decreasing volume; enhancing lesions carry their
        RANO measurement and whether they are targets.
    """
    from bratseg.report.rano import target_lesions

    labels = np.asarray(labels)
    affine = np.asarray(affine, dtype=np.float64)
    voxel_ml = float(np.prod([float(s) for s in spacing])) / 1000.0
    masks = region_masks(labels, convention)
    flat, comp, n = _components_by_size(masks["wt"])
    if n == 0:
        return [], []
    coords = np.stack(np.unravel_index(flat, labels.shape)).astype(np.float64)  # (3, n_fg)
    counts = np.bincount(comp, minlength=n).astype(np.float64)
    centroids = (
        np.stack([np.bincount(comp, weights=c, minlength=n) for c in coords]) / counts
    )  # (3, n)
    world = affine[:3, :3] @ centroids + affine[:3, 3:4]
    mid = midline_x(affine, labels.shape, brain)
    voxel_x = affine[0, :3] @ coords + affine[0, 3]
    left = np.bincount(comp, weights=(voxel_x < mid).astype(np.float64), minlength=n) / counts
    values = gather_flat(labels, flat)
    tissue_ml = {
        t: np.bincount(
            comp, weights=(values == LABEL_VALUES[convention][t]).astype(np.float64), minlength=n
        )
        * voxel_ml
        for t in TISSUES
    }
    lesions = [
        Lesion(
            id=k + 1,
            voxels=int(counts[k]),
            volume_ml=int(counts[k]) * voxel_ml,
            tissue_ml={t: float(tissue_ml[t][k]) for t in TISSUES},
            centroid_voxel=np.round(centroids[:, k], 3).tolist(),
            centroid_mm=np.round(world[:, k], 3).tolist(),
            hemisphere="left" if world[0, k] < mid else "right",
            midline_distance_mm=round(abs(float(world[0, k]) - mid), 3),
            fraction_left=round(float(left[k]), 4),
        )
        for k in range(n)
    ]
    enhancing = _enhancing_lesions(masks["et"], flat, comp, affine, spacing, voxel_ml)
    for e in enhancing:
        lesions[e.lesion - 1].enhancing.append(e.id)
    for index in target_lesions([e.rano for e in enhancing]):
        enhancing[index].target = True
    return lesions, enhancing


def _enhancing_lesions(
    et: np.ndarray,
    wt_flat: np.ndarray,
    wt_comp: np.ndarray,
    affine: np.ndarray,
    spacing: Sequence[float],
    voxel_ml: float,
) -> list[EnhancingLesion]:
    """Measured ET components, each tied to the WT component that contains it."""
    flat, comp, n = _components_by_size(et)
    if n == 0:
        return []
    parent = wt_comp[np.searchsorted(wt_flat, flat)]
    axial = axial_axis_of(affine)
    order = np.argsort(comp, kind="stable")
    bounds = np.searchsorted(comp[order], np.arange(n + 1))
    out = []
    for k in range(n):
        members = flat[order[bounds[k] : bounds[k + 1]]]
        coords = np.unravel_index(members, et.shape)
        lo = [int(c.min()) for c in coords]
        box = np.zeros([int(c.max()) - a + 1 for c, a in zip(coords, lo)], dtype=bool)
        box[tuple(c - a for c, a in zip(coords, lo))] = True
        rano = measure_bidimensional(
            box, (float(spacing[0]), float(spacing[1]), float(spacing[2])), axial
        )
        if rano is None:  # not reached: a component has voxels
            continue
        rano.slice_index += lo[axial]
        for ends in (rano.longest_ends, rano.perpendicular_ends):
            for point in ends:
                for axis in range(3):
                    point[axis] = round(point[axis] + lo[axis], 3)
        out.append(
            EnhancingLesion(
                id=k + 1,
                lesion=int(parent[order[bounds[k]]]) + 1,
                volume_ml=members.size * voxel_ml,
                rano=rano,
            )
        )
    return out
