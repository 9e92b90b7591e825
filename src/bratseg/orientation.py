"""Voxel-axis orientation: bring a case to a model's storage orientation and back, exactly.

A NIfTI file may store the same head with its voxel axes flipped (RAS against LPS) or permuted
(sagittal against axial storage). A network sees the array, not the world, so it must see the
array in the orientation it was trained in. :func:`reorientation` gives the axis flips and
permutation (never a resampling) from a case's affine to target axis codes, and
:class:`Reorientation` applies them to image, probability or label arrays and inverts them, so
results are written back in the source geometry bit for bit.

Axis codes follow nibabel (:func:`nibabel.aff2axcodes`): the world direction each voxel axis
points *to*, e.g. ``("L", "P", "S")`` for the BraTS storage (affine diag(-1, -1, 1)).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from nibabel import orientations as ornt

from bratseg.errors import BratsInputError

#: Storage orientation of the BraTS training data, and so of every bundled checkpoint (a
#: checkpoint that records no orientation was trained on such data).
BRATS_AXCODES: tuple[str, str, str] = ("L", "P", "S")


def axcodes(affine: np.ndarray) -> tuple[str, str, str]:
    """Axis codes of a (4, 4) voxel-to-world affine (closest axes for an oblique one)."""
    codes = ornt.aff2axcodes(np.asarray(affine, dtype=np.float64))
    if any(c is None for c in codes):
        raise BratsInputError(f"affine has a degenerate voxel axis (axis codes {codes})")
    return tuple(str(c) for c in codes)  # type: ignore[return-value]


def parse_axcodes(codes: str | Sequence[str]) -> tuple[str, str, str]:
    """``"LPS"`` or ``("L", "P", "S")`` -> a checked 3-tuple of axis codes."""
    out = tuple(str(c).upper() for c in codes)
    pairs = ({"L", "R"}, {"A", "P"}, {"S", "I"})
    which = sorted(next((i for i, p in enumerate(pairs) if c in p), -1) for c in out)
    if len(out) != 3 or which != [0, 1, 2]:
        raise BratsInputError(f"invalid axis codes {codes!r}: need one of L/R, A/P and S/I each")
    return out


@dataclass(frozen=True)
class Reorientation:
    """Axis flips and a permutation taking source-stored arrays to a target orientation.

    Attributes:
        source: Axis codes of the stored arrays.
        target: Axis codes after :meth:`apply`.
        forward: nibabel orientation array (3, 2) source -> target.
        backward: nibabel orientation array (3, 2) target -> source.
    """

    source: tuple[str, str, str]
    target: tuple[str, str, str]
    forward: np.ndarray
    backward: np.ndarray

    @property
    def identity(self) -> bool:
        """True when the source already is in the target orientation."""
        return self.source == self.target

    def apply(self, array: np.ndarray, leading: int = 0) -> np.ndarray:
        """Source-stored array -> target orientation (a C-contiguous copy unless identity).

        Args:
            array: Shape (*lead, X, Y, Z) with ``leading`` leading axes (e.g. 1 for channels).
            leading: Number of leading non-spatial axes.
        """
        return self._transform(array, self.forward, leading)

    def invert(self, array: np.ndarray, leading: int = 0) -> np.ndarray:
        """Target-oriented array -> the source storage (exact inverse of :meth:`apply`)."""
        return self._transform(array, self.backward, leading)

    def view(self, array: np.ndarray) -> np.ndarray:
        """Source-stored (X, Y, Z) array -> a *view* of it in the target orientation (flips and a
        transpose, no copy: writes to the view land in ``array``)."""
        return np.asarray(array) if self.identity else ornt.apply_orientation(array, self.forward)

    def view_back(self, array: np.ndarray) -> np.ndarray:
        """Target-oriented (X, Y, Z) array -> a view of it in the source storage (inverse of
        :meth:`view`)."""
        return np.asarray(array) if self.identity else ornt.apply_orientation(array, self.backward)

    def point(self, point: Sequence[float] | np.ndarray, shape: Sequence[int]) -> np.ndarray:
        """Source voxel coordinates (3,) -> the same voxel's coordinates in the target array.

        Args:
            point: Voxel coordinates (float or int) along the source axes.
            shape: Spatial shape of the *source* array.
        """
        return _move_point(point, self.forward, shape)

    def point_back(self, point: Sequence[float] | np.ndarray, shape: Sequence[int]) -> np.ndarray:
        """Target voxel coordinates (3,) -> source coordinates (inverse of :meth:`point`).

        Args:
            point: Voxel coordinates along the target axes.
            shape: Spatial shape of the *source* array.
        """
        target_shape = [0, 0, 0]
        for src_axis, (dst_axis, _flip) in enumerate(self.forward):
            target_shape[int(dst_axis)] = int(shape[src_axis])
        return _move_point(point, self.backward, target_shape)

    def spacing(self, spacing: Sequence[float]) -> tuple[float, float, float]:
        """Voxel sizes of the source axes, in the order of the target axes."""
        out = [0.0, 0.0, 0.0]
        for src_axis, (dst_axis, _flip) in enumerate(self.forward):
            out[int(dst_axis)] = float(spacing[src_axis])
        return tuple(out)  # type: ignore[return-value]

    def _transform(self, array: np.ndarray, transform: np.ndarray, leading: int) -> np.ndarray:
        if self.identity:
            return array
        arr = np.asarray(array)
        if arr.ndim != leading + 3:
            raise ValueError(f"expected {leading} leading axes + 3 spatial, got shape {arr.shape}")
        moved = np.moveaxis(arr, list(range(leading)), list(range(arr.ndim - leading, arr.ndim)))
        out = ornt.apply_orientation(moved, transform)
        return np.ascontiguousarray(
            np.moveaxis(out, list(range(3, 3 + leading)), list(range(leading)))
        )


def _move_point(
    point: Sequence[float] | np.ndarray, transform: np.ndarray, shape: Sequence[int]
) -> np.ndarray:
    """Voxel coordinates (3,) moved by a nibabel orientation ``transform`` of a ``shape`` array."""
    out = np.zeros(3)
    for src, (dst, flip) in enumerate(transform):
        out[int(dst)] = (shape[src] - 1 - point[src]) if flip < 0 else point[src]
    return out


def reorientation(affine: np.ndarray, target: str | Sequence[str]) -> Reorientation:
    """The flips and permutation from ``affine``'s storage to ``target`` axis codes."""
    src = axcodes(affine)
    dst = parse_axcodes(target)
    src_o, dst_o = ornt.axcodes2ornt(src), ornt.axcodes2ornt(dst)
    return Reorientation(
        source=src,
        target=dst,
        forward=ornt.ornt_transform(src_o, dst_o),
        backward=ornt.ornt_transform(dst_o, src_o),
    )


def reoriented_affine(affine: np.ndarray, reo: Reorientation, shape: Sequence[int]) -> np.ndarray:
    """The affine of the target-oriented array (same world positions for every voxel).

    Args:
        affine: Source (4, 4) affine.
        reo: The reorientation.
        shape: Spatial shape of the *source* array.
    """
    if reo.identity:
        return np.asarray(affine, dtype=np.float64)
    return np.asarray(affine, dtype=np.float64) @ ornt.inv_ornt_aff(reo.forward, tuple(shape))
