"""The engine's one home for connected components (:mod:`bratseg.components`), pinned against the
reference implementation ``scipy.ndimage.label`` on real expert label maps and on random masks."""

from __future__ import annotations

from pathlib import Path

import hypothesis.extra.numpy as hnp
import nibabel as nib
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import ndimage

import bratseg.components as components
from bratseg.components import busiest_slice, label_components, mask_components

CASES = ("Brats18_2013_11_1", "Brats18_CBICA_ABM_1", "Brats18_TCIA10_637_1")


def _reference(mask: np.ndarray, connectivity: int) -> tuple[np.ndarray, int]:
    structure = ndimage.generate_binary_structure(mask.ndim, connectivity)
    labels, n = ndimage.label(mask, structure=structure)
    return labels, int(n)


def _region_masks(seg: np.ndarray) -> dict[str, np.ndarray]:
    return {"WT": seg > 0, "TC": np.isin(seg, (1, 4)), "ET": seg == 4}


@pytest.mark.parametrize("case", CASES)
def test_components_of_real_label_maps_equal_ndimage_label(brats2018_dir: Path, case: str):
    """Dense labels equal ``ndimage.label`` voxel for voxel (numbering included); the flat
    components of both paths (cc3d box, sparse indices) give the same partition."""
    seg = np.asarray(nib.load(brats2018_dir / case / f"{case}_seg.nii.gz").dataobj)
    for region, mask in _region_masks(seg).items():
        for connectivity in (1, 3):
            ref, n_ref = _reference(mask, connectivity)
            labels, n = label_components(mask, connectivity)
            assert n == n_ref > 0, (region, connectivity)
            assert labels.dtype == np.int32
            np.testing.assert_array_equal(labels, ref)
            for box_limit in (0, 10**9):  # sparse indices, then cc3d in the box
                previous = components.CC3D_MAX_BOX_PER_VOXEL
                components.CC3D_MAX_BOX_PER_VOXEL = box_limit
                try:
                    flat, ids, n_flat = mask_components(mask, connectivity)
                finally:
                    components.CC3D_MAX_BOX_PER_VOXEL = previous
                np.testing.assert_array_equal(flat, np.flatnonzero(mask))
                assert n_flat == n_ref
                np.testing.assert_array_equal(ids + 1, ref.reshape(-1)[flat])


@settings(max_examples=80, deadline=None)
@given(
    mask=hnp.arrays(
        bool, st.tuples(*(st.integers(1, 8) for _ in range(3))), elements=st.booleans()
    ),
    connectivity=st.integers(1, 3),
)
def test_label_components_equals_ndimage_label(mask, connectivity):
    ref, n_ref = _reference(mask, connectivity)
    labels, n = label_components(mask, connectivity)
    assert n == n_ref
    np.testing.assert_array_equal(labels, ref)


def test_label_components_of_an_empty_and_a_2d_mask():
    labels, n = label_components(np.zeros((4, 5, 6), dtype=bool))
    assert n == 0 and labels.shape == (4, 5, 6) and not labels.any()
    flat = np.array([[1, 0, 1], [0, 0, 1], [1, 1, 0]], dtype=bool)
    labels, n = label_components(flat, 2)
    ref, n_ref = _reference(flat, 2)
    assert n == n_ref and np.array_equal(labels, ref)


def test_busiest_slice_counts_every_other_axis_and_is_none_when_empty():
    mask = np.zeros((2, 4, 5, 6), dtype=bool)  # two maps stacked: (map, X, Y, Z)
    mask[0, :, :, 1] = True  # slice 1: 20 voxels, all in the first map
    mask[0, 2:, :, 4] = True  # slice 4: 10 in the first map ...
    mask[1, :2, :, 4] = True  # ... 10 in the second ...
    mask[1, 2, 0, 4] = True  # ... and one more: 21 in both maps together
    assert busiest_slice(mask, axis=3) == 4
    assert busiest_slice(mask[0], axis=2) == 1
    assert busiest_slice(np.zeros((3, 3), dtype=bool), axis=0) is None
