"""Domain augmentations on a real case: contrast removal, thick slices, bias field."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from bratseg.labels import CLASSES
from bratseg.preprocess import PreprocessConfig
from bratseg.training import AugmentConfig, build_augmentation
from bratseg.training.augment import unwrap_sample
from bratseg.training.augment_domain import (
    T1_CHANNEL,
    T1CE_CHANNEL,
    RandBiasFieldd,
    RandContrastRemovald,
    RandSeriesStandInd,
    RandThickSliced,
)
from bratseg.training.data import discover_cases, load_cases
from bratseg.training.recipes import Recipe

ET, NCR = CLASSES.index("et"), CLASSES.index("ncr")


@pytest.fixture(scope="module")
def sample(brats2018_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """One real enhancing case at 3 mm: image (4, X, Y, Z) float32, label (1, X, Y, Z)."""
    refs = [r for r in discover_cases([brats2018_dir]) if r.case_id == "Brats18_CBICA_ABM_1"]
    cache = tmp_path_factory.mktemp("domain-cache")
    case = load_cases(refs, PreprocessConfig(target_spacing=3.0, pad_multiple=16), cache)[0]
    return {
        "image": torch.as_tensor(case.image.astype(np.float32)),
        "label": torch.as_tensor(case.label[None].astype(np.uint8)),
    }


def test_contrast_removal_turns_et_into_core_and_t1ce_into_t1_like_signal(sample: dict) -> None:
    et = sample["label"][0] == ET
    assert int(et.sum()) > 50
    t1ce = sample["image"][T1CE_CHANNEL]
    brain = (sample["label"][0] == 0) & (sample["image"].abs().sum(0) > 0)
    # Real enhancement: T1Gd in ET is far above the normal brain.
    assert float(t1ce[et].mean()) > float(t1ce[brain].mean()) + 1.0

    t = RandContrastRemovald(prob=1.0, rim=1)
    t.set_random_state(0)
    out = t(dict(sample))
    new_label = out["label"][0]
    assert int((new_label == ET).sum()) == 0
    assert torch.equal(new_label == NCR, (sample["label"][0] == NCR) | et)
    # The rest of the label map and the other channels are untouched.
    assert torch.equal(new_label[~et], sample["label"][0][~et])
    for c in range(4):
        if c != T1CE_CHANNEL:
            assert torch.equal(out["image"][c], sample["image"][c])
    new_t1ce = out["image"][T1CE_CHANNEL]
    # No enhancement left: T1Gd in the former ET is now close to the normal brain's level.
    assert abs(float(new_t1ce[et].mean()) - float(new_t1ce[brain].mean())) < 1.0
    # And it follows T1 there (a linear map of it).
    t1 = sample["image"][T1_CHANNEL]
    corr = np.corrcoef(t1[et].numpy(), new_t1ce[et].numpy())[0, 1]
    assert corr > 0.99
    # Outside ET and its one-voxel rim T1Gd is unchanged.
    rim = torch.nn.functional.max_pool3d(et[None, None].float(), 3, 1, 1)[0, 0] > 0
    assert torch.equal(new_t1ce[~rim], t1ce[~rim])


def test_contrast_removal_leaves_a_patch_without_et_alone(sample: dict) -> None:
    no_et = {"image": sample["image"].clone(), "label": sample["label"].clone()}
    no_et["label"][no_et["label"] == ET] = NCR
    t = RandContrastRemovald(prob=1.0)
    out = t(no_et)
    assert torch.equal(out["image"], no_et["image"])
    assert torch.equal(out["label"], no_et["label"])


def test_thick_slices_blur_one_axis_only_and_keep_the_shape(sample: dict) -> None:
    t = RandThickSliced(prob=1.0, factor=(3.0, 3.0), axes=(2,))
    out = t({"image": sample["image"].clone(), "label": sample["label"]})
    img, new = sample["image"], out["image"]
    assert new.shape == img.shape

    def roughness(x: torch.Tensor, axis: int) -> float:
        return float(torch.diff(x, dim=axis).abs().mean())

    # Along z the signal gets much smoother than in-plane (averaging slices smooths a little
    # in-plane too, as real thick slices do).
    z_ratio = roughness(new, 3) / roughness(img, 3)
    x_ratio = roughness(new, 1) / roughness(img, 1)
    assert z_ratio < 0.6
    assert z_ratio < 0.8 * x_ratio
    assert torch.equal(out["label"], sample["label"])


def test_bias_field_is_smooth_multiplicative_and_keeps_the_background(sample: dict) -> None:
    t = RandBiasFieldd(prob=1.0, strength=0.3)
    t.set_random_state(3)
    img = sample["image"]
    new = t({"image": img.clone()})["image"]
    floor = img.amin(dim=(1, 2, 3))
    for c in range(4):
        lifted = img[c] - floor[c]
        ratio = (new[c] - floor[c])[lifted > 0.5] / lifted[lifted > 0.5]
        assert 0.3 < float(ratio.min()) and float(ratio.max()) < 3.5
        assert float(ratio.std()) > 0.01  # not a constant factor
        assert torch.allclose(new[c][lifted == 0], img[c][lifted == 0])


def test_recipe_turns_the_domain_augmentations_on_and_the_pipeline_runs(sample: dict) -> None:
    recipe = Recipe.from_dict(
        {
            "augment": {
                "contrast_removal_prob": 1.0,
                "thick_slice_prob": 1.0,
                "bias_field_prob": 1.0,
                "gamma_prob": 1.0,
                "series_standin_prob": 1.0,
                "foreground_prob": 1.0,
                "thick_slice_factor": [1.5, 3.0],
            }
        }
    )
    assert recipe.augment.thick_slice_factor == (1.5, 3.0)
    assert AugmentConfig().contrast_removal_prob == 0.0  # off unless a recipe asks
    aug = build_augmentation(recipe.augment, (32, 32, 32))
    aug.set_random_state(0)
    label = sample["label"]
    fg = np.flatnonzero(label[0].numpy() == ET)
    out = unwrap_sample(
        aug({**sample, "fg_indices": fg, "bg_indices": np.flatnonzero(label[0].numpy() == 0)})
    )
    assert out["image"].shape == (4, 32, 32, 32)
    assert torch.isfinite(out["image"]).all()
    assert int((out["label"] == ET).sum()) == 0


@pytest.mark.parametrize("missing", ["t1", "t1ce", "t2", "flair"])
def test_series_stand_in_copies_the_pair_as_predict_does(sample: dict, missing: str) -> None:
    """One series becomes a copy of its stand-in (as ``load_case(allow_missing=True)`` fills a
    case that lacks it); without T1Gd the ET becomes NCR, otherwise the labels stay."""
    from bratseg.io.channels import MODALITIES, SUBSTITUTES

    t = RandSeriesStandInd(prob=1.0, series=(missing,))
    t.set_random_state(0)
    out = t(dict(sample))
    gone, kept = MODALITIES.index(missing), MODALITIES.index(SUBSTITUTES[missing])
    assert not torch.equal(sample["image"][gone], sample["image"][kept])
    assert torch.equal(out["image"][gone], sample["image"][kept])
    for c in (c for c in range(4) if c != gone):
        assert torch.equal(out["image"][c], sample["image"][c])
    et = sample["label"][0] == ET
    if missing == "t1ce":
        assert int((out["label"][0] == ET).sum()) == 0
        assert torch.equal(out["label"][0] == NCR, (sample["label"][0] == NCR) | et)
    else:
        assert torch.equal(out["label"], sample["label"])
    assert AugmentConfig().series_standin_prob == 0.0  # off unless a recipe asks
    never = RandSeriesStandInd(prob=0.0)
    assert torch.equal(never(dict(sample))["image"], sample["image"])
