"""Preprocessing: brain box, z-score, foreground channel, resampling, padding and exact inverse."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch

from bratseg.errors import BratsInputError
from bratseg.preprocess import (
    PreprocessConfig,
    background_values,
    brain_bbox,
    brain_mask,
    invert_labels,
    invert_probabilities,
    preprocess_image,
    preprocess_with_config,
)

torch.set_num_threads(2)

DATA = Path(__file__).resolve().parents[2] / ".." / "shared" / "data"
CASE = DATA / "brats2018" / "Brats18_2013_2_1"


def _synthetic(bg: float = 0.0, shape=(40, 36, 30), box=((8, 30), (5, 29), (4, 22))) -> np.ndarray:
    rng = np.random.default_rng(0)
    image = np.full((4, *shape), bg, dtype=np.float32)
    sl = tuple(slice(a, b) for a, b in box)
    image[(slice(None), *sl)] = rng.normal(100, 20, size=(4, *[b - a for a, b in box])).astype(
        np.float32
    )
    return image


def _load_real() -> tuple[np.ndarray, tuple[float, float, float]]:
    if not CASE.exists():
        pytest.skip(f"shared data not found at {CASE}")
    vols = [
        np.asarray(nib.load(CASE / f"{CASE.name}_{m}.nii.gz").dataobj, dtype=np.float32)
        for m in ("t1", "t1ce", "t2", "flair")
    ]
    return np.stack(vols), (1.0, 1.0, 1.0)


@pytest.mark.parametrize("bg", [0.0, -1.5, 37.0])
def test_bbox_with_any_constant_background(bg):
    image = _synthetic(bg)
    assert np.allclose(background_values(image), bg)
    assert brain_bbox(image, margin=0) == (slice(8, 30), slice(5, 29), slice(4, 22))
    assert brain_bbox(image, margin=3) == (slice(5, 33), slice(2, 32), slice(1, 25))
    assert brain_bbox(image, margin=50) == (slice(0, 40), slice(0, 36), slice(0, 30))


def test_empty_image_keeps_whole_volume():
    image = np.zeros((4, 10, 12, 14), dtype=np.float32)
    assert brain_bbox(image) == (slice(0, 10), slice(0, 12), slice(0, 14))
    x, info = preprocess_image(image, pad_multiple=8)
    assert x.shape == (4, 16, 16, 16) and np.isfinite(x).all()


def test_zscore_over_brain_and_zero_background_with_negative_bg():
    image = _synthetic(-2.0)
    x, info = preprocess_image(image, margin=2, pad_multiple=8, foreground_channel=True)
    assert x.dtype == np.float32 and x.shape[0] == 5
    assert all(s % 8 == 0 for s in x.shape[1:])
    fg = x[4].astype(bool)
    assert fg.sum() == 22 * 24 * 18
    for c in range(4):
        vals = x[c][fg]
        assert abs(vals.mean()) < 1e-4 and abs(vals.std() - 1) < 1e-3
        assert np.all(x[c][~fg] == 0)
    assert info.bbox == ((6, 32), (3, 31), (2, 24))
    assert info.cropped_shape == (26, 28, 22) and info.padded_shape == (32, 32, 24)


def test_labels_roundtrip_exact_inside_box_zero_outside():
    image = _synthetic(0.0)
    x, info = preprocess_image(image, margin=1, pad_multiple=16)
    rng = np.random.default_rng(1)
    original = rng.integers(0, 5, size=image.shape[1:]).astype(np.uint8)
    net_grid = np.zeros(info.padded_shape, dtype=np.uint8)
    rx, ry, rz = info.resampled_shape
    net_grid[:rx, :ry, :rz] = original[info.slices]
    net_grid[rx:] = 9  # padding content must be discarded
    back = invert_labels(net_grid, info)
    inside = np.zeros(image.shape[1:], dtype=bool)
    inside[info.slices] = True
    assert back.shape == original.shape and back.dtype == np.uint8
    np.testing.assert_array_equal(back[inside], original[inside])
    assert np.all(back[~inside] == 0)
    probs = np.stack([net_grid, net_grid]).astype(np.float32)
    pback = invert_probabilities(probs, info)
    np.testing.assert_array_equal(pback[:, inside], np.stack([original, original])[:, inside])
    assert np.all(pback[:, ~inside] == 0)


def test_resampling_shapes_and_inverse():
    image = _synthetic(0.0)
    x, info = preprocess_image(
        image, spacing=(1.0, 1.0, 1.0), target_spacing=2.0, pad_multiple=8, margin=0
    )
    assert info.cropped_shape == (22, 24, 18)
    assert info.resampled_shape == (11, 12, 9)
    assert x.shape[1:] == (16, 16, 16)
    ones = np.ones((3, *info.padded_shape), dtype=np.float32)
    back = invert_probabilities(ones, info)
    assert back.shape == (3, *image.shape[1:])
    assert np.allclose(back[(slice(None), *info.slices)], 1.0)
    assert back.sum() == pytest.approx(3 * 22 * 24 * 18)
    lab = np.ones(info.padded_shape, dtype=np.uint8)
    assert invert_labels(lab, info).sum() == 22 * 24 * 18


def test_config_roundtrip():
    cfg = PreprocessConfig(target_spacing=2.0, foreground_channel=True, pad_multiple=32)
    again = PreprocessConfig.from_dict(cfg.to_dict())
    assert again == cfg
    # a key this version does not know (a newer checkpoint, a typo) is refused, never ignored
    with pytest.raises(BratsInputError, match="unknown preprocessing key 'unknown_future_key'"):
        PreprocessConfig.from_dict({**cfg.to_dict(), "unknown_future_key": 1})
    assert PreprocessConfig.from_dict(None) == PreprocessConfig()


def test_real_case_roundtrip():
    image, spacing = _load_real()
    mask = brain_mask(image)
    assert 0.05 < mask.mean() < 0.5
    cfg = PreprocessConfig(foreground_channel=True, pad_multiple=16)
    x, info = preprocess_with_config(image, spacing, cfg)
    assert x.shape[0] == 5 and all(s % 16 == 0 for s in x.shape[1:])
    assert np.prod(info.cropped_shape) < 0.5 * np.prod(image.shape[1:])
    # every brain voxel is inside the box
    outside = mask.copy()
    outside[info.slices] = False
    assert not outside.any()
    seg = np.asarray(nib.load(CASE / f"{CASE.name}_seg.nii.gz").dataobj).astype(np.uint8)
    net = np.zeros(info.padded_shape, dtype=np.uint8)
    rx, ry, rz = info.resampled_shape
    net[:rx, :ry, :rz] = seg[info.slices]
    np.testing.assert_array_equal(invert_labels(net, info), seg)  # tumour lies in the brain box
    # resampled path: shapes agree and the tumour survives the round trip closely
    cfg2 = PreprocessConfig(target_spacing=2.0, pad_multiple=16)
    x2, info2 = preprocess_with_config(image, spacing, cfg2)
    assert x2.shape[0] == 4
    wt = (seg > 0).astype(np.float32)
    crop = torch.from_numpy(wt[info2.slices])[None, None]
    small = torch.nn.functional.interpolate(crop, size=info2.resampled_shape, mode="trilinear")[
        0
    ].numpy()
    net2 = np.zeros((1, *info2.padded_shape), dtype=np.float32)
    net2[:, : small.shape[1], : small.shape[2], : small.shape[3]] = small
    back = invert_probabilities(net2, info2)[0] > 0.5
    dice = 2 * (back & (seg > 0)).sum() / (back.sum() + (seg > 0).sum())
    assert dice > 0.9
