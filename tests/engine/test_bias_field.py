"""N4 bias-field correction (:mod:`bratseg.bias_field`) on a real BraTS case.

A known smooth multiplicative field is put on the case's series; the correction must take most
of it away again, leave the background alone, and reach the network input through
``PreprocessConfig.bias_correction`` (training and prediction share that path).
"""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("SimpleITK", reason="bias-field correction needs SimpleITK")

from bratseg.bias_field import correct_channels  # noqa: E402
from bratseg.preprocess import (  # noqa: E402
    PreprocessConfig,
    brain_mask,
    preprocess_image,
    preprocess_with_config,
)


def _field(shape: tuple[int, int, int], strength: float = 0.35) -> np.ndarray:
    """A smooth multiplicative field, exp(strength x a ramp along X and a bump along Z)."""
    x = np.linspace(-1.0, 1.0, shape[0])[:, None, None]
    z = np.linspace(-1.0, 1.0, shape[2])[None, None, :]
    return np.exp(strength * (x + 0.5 * (1.0 - z**2))).astype(np.float32)


@pytest.fixture(scope="module")
def crop(brats2018_case):
    """FLAIR and T1Gd of the real case, cropped to the brain, with the brain mask."""
    image = brats2018_case.image[[1, 3]]
    mask = brain_mask(image)
    idx = np.argwhere(mask)
    lo, hi = idx.min(0), idx.max(0) + 1
    box = tuple(slice(a, b) for a, b in zip(lo, hi, strict=True))
    return image[(slice(None),) + box].astype(np.float32), mask[box]


def _log_spread(ratio: np.ndarray) -> float:
    """5-95 % range of log(ratio): how far a multiplicative field is from constant."""
    logs = np.log(ratio)
    return float(np.percentile(logs, 95) - np.percentile(logs, 5))


def test_correction_takes_away_most_of_a_known_field(crop):
    image, mask = crop
    field = _field(mask.shape)
    biased = image * field[None]
    corrected = correct_channels(biased, mask, (1.0, 1.0, 1.0))
    assert corrected.shape == biased.shape
    assert corrected.dtype == np.float32
    # N4 also removes the scan's own non-uniformity: compare with the original corrected alike.
    reference = correct_channels(image, mask, (1.0, 1.0, 1.0))
    for c in range(image.shape[0]):
        inside = mask & (image[c] > 0)
        imposed = _log_spread(biased[c][inside] / image[c][inside])
        left = _log_spread(corrected[c][inside] / reference[c][inside])
        # The imposed field spans about 0.5 in log inside the brain; a tenth or less is left.
        assert imposed > 0.4
        assert left < 0.25 * imposed, (c, imposed, left)


def test_background_and_input_are_left_as_they_are(crop):
    image, mask = crop
    before = image.copy()
    corrected = correct_channels(image, mask, (1.0, 1.0, 1.0))
    np.testing.assert_array_equal(image, before)  # the input is not changed in place
    np.testing.assert_array_equal(corrected[:, ~mask], image[:, ~mask])
    assert np.isfinite(corrected).all()


def test_a_channel_without_signal_is_left_as_is(crop):
    image, mask = crop
    empty = np.zeros_like(image[:1])
    out = correct_channels(np.concatenate([image[:1], empty]), mask, (1.0, 1.0, 1.0))
    np.testing.assert_array_equal(out[1], 0.0)


def test_the_model_preprocessing_applies_it(brats2018_case):
    """``bias_correction`` in a model's preprocessing changes its input; off, nothing changes."""
    image = brats2018_case.image[[1, 3]]  # T1Gd and FLAIR keep the test short
    spacing = brats2018_case.spacing
    plain_cfg = PreprocessConfig(target_spacing=2.0, foreground_channel=True)
    n4_cfg = PreprocessConfig(target_spacing=2.0, foreground_channel=True, bias_correction=True)
    plain, plain_info = preprocess_with_config(image, spacing, plain_cfg)
    corrected, info = preprocess_with_config(image, spacing, n4_cfg)
    assert corrected.shape == plain.shape
    assert info.bbox == plain_info.bbox
    np.testing.assert_array_equal(corrected[-1], plain[-1])  # the foreground channel
    assert not np.allclose(corrected[:2], plain[:2])
    # A field put on the case is mostly gone from the corrected network input.
    biased = image * _field(image.shape[1:])[None]
    from_biased, _ = preprocess_image(biased, spacing=spacing, bias_correction=True)
    from_plain, _ = preprocess_image(image, spacing=spacing, bias_correction=True)
    from_biased_raw, _ = preprocess_image(biased, spacing=spacing)
    from_plain_raw, _ = preprocess_image(image, spacing=spacing)
    brain = from_plain_raw[1] != 0
    err_corrected = np.abs(from_biased[1][brain] - from_plain[1][brain]).mean()
    err_raw = np.abs(from_biased_raw[1][brain] - from_plain_raw[1][brain]).mean()
    assert err_corrected < 0.5 * err_raw, (err_corrected, err_raw)


def test_config_round_trip_and_older_checkpoints():
    cfg = PreprocessConfig(bias_correction=True)
    assert PreprocessConfig.from_dict(cfg.to_dict()).bias_correction is True
    older = PreprocessConfig().to_dict()
    del older["bias_correction"]
    assert PreprocessConfig.from_dict(older).bias_correction is False
