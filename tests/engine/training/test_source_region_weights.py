"""Region loss weights per data source (recipe ``source_region_weights``): the recipe check,
the per-case weights, the loss with per-sample weights, the patch pipeline carrying them, and a
real training step that uses them."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from tiny_training import TRAINING_CASES, link_cases, tiny_config

from bratseg.errors import BratsInputError
from bratseg.preprocess import PreprocessConfig
from bratseg.training import AugmentConfig, build_augmentation, discover_cases, train_events
from bratseg.training.data import load_cases
from bratseg.training.losses import SegmentationLoss
from bratseg.training.patches import PatchDataset, training_sample
from bratseg.training.recipes import Recipe, case_region_weights, check_overrides

torch.set_num_threads(2)

PATCH = (32, 32, 32)
CASES = TRAINING_CASES


def test_recipe_check_refuses_bad_source_weights() -> None:
    check_overrides({"source_region_weights": {"brats-africa": [0.3, 1, 2]}})
    bad = [
        [0.3, 1, 2],  # not an object
        {"africa": [0.3, 1, 2]},  # unknown source
        {"brats-africa": [0.3, 1]},  # two weights
        {"brats-africa": [0, 0, 0]},  # all zero
        {"brats-africa": [1, -1, 1]},  # negative
        {"brats-africa": "0.3"},  # not numbers
        {"brats-africa": [1, float("nan"), 1]},  # JSON allows NaN: every step would be skipped
        {"brats-africa": [1, float("inf"), 1]},
    ]
    for value in bad:
        with pytest.raises(BratsInputError, match="source_region_weights"):
            check_overrides({"source_region_weights": value})


def test_each_case_takes_its_sources_weights() -> None:
    recipe = Recipe(
        region_weights=(1.0, 1.0, 2.0), source_region_weights={"brats-africa": [0.3, 1, 2]}
    )
    assert case_region_weights(recipe, "BraTS-SSA-00126-000") == (0.3, 1.0, 2.0)
    assert case_region_weights(recipe, "Brats18_2013_2_1") == (1.0, 1.0, 2.0)
    assert case_region_weights(recipe, "BraTS-GLI-00001-000") == (1.0, 1.0, 2.0)
    # survives the round trip through a checkpoint's plain dict
    assert Recipe.from_dict(recipe.to_dict()).source_region_weights == {"brats-africa": [0.3, 1, 2]}


@pytest.mark.parametrize("kind", ["dice", "dice_bce"])
def test_per_sample_weights_replace_the_region_weights(kind: str) -> None:
    torch.manual_seed(0)
    logits = torch.randn(2, 3, 6, 6, 6)
    index = torch.randint(0, 4, (2, 1, 6, 6, 6))
    loss = SegmentationLoss("regions", kind, region_weights=(1, 1, 2))
    same = torch.tensor([[1.0, 1.0, 2.0], [1.0, 1.0, 2.0]])
    torch.testing.assert_close(loss(logits, index, same)[0], loss(logits, index)[0])
    # one weight row for the whole batch: that row's batched criterion
    low = torch.tensor([[0.3, 1.0, 2.0], [0.3, 1.0, 2.0]])
    ref = SegmentationLoss("regions", kind, region_weights=(0.3, 1, 2))
    torch.testing.assert_close(loss(logits, index, low)[0], ref(logits, index)[0])
    # mixed rows: each group's criterion, weighted by its share of the batch
    mixed = torch.tensor([[0.3, 1.0, 2.0], [1.0, 1.0, 2.0]])
    expected = 0.5 * ref(logits[:1], index[:1])[0] + 0.5 * loss(logits[1:], index[1:])[0]
    torch.testing.assert_close(loss(logits, index, mixed)[0], expected)
    # the WT term of the first sample counts less: the loss is lower than unweighted
    assert float(loss(logits, index, mixed)[0]) < float(loss(logits, index)[0])
    # a batch's float32 weights reuse the criteria built from the recipe's numbers
    loss(logits, index, mixed.to(torch.float32))
    loss(logits, index, torch.tensor([[0.3, 1.0, 2.0], [0.3, 1.0, 2.0]], dtype=torch.float32))
    assert sorted(loss._criteria) == [(0.3, 1.0, 2.0), (1.0, 1.0, 2.0)]  # not one per rounding


def test_a_class_output_loss_ignores_per_sample_weights() -> None:
    torch.manual_seed(0)
    logits = torch.randn(2, 4, 6, 6, 6)
    index = torch.randint(0, 4, (2, 1, 6, 6, 6))
    loss = SegmentationLoss("classes", "softmax_dice")
    mixed = torch.tensor([[0.3, 1.0, 2.0], [1.0, 1.0, 1.0]])
    # the batched softmax Dice over both samples, not two half-batches
    torch.testing.assert_close(loss(logits, index, mixed)[0], loss(logits, index)[0])


@pytest.fixture(scope="module")
def cached(brats2018_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> list:
    """Three real cases, preprocessed at 3 mm (the small sizes tests can afford)."""
    refs = [r for r in discover_cases([brats2018_dir]) if r.case_id in CASES]
    cache = tmp_path_factory.getbasetemp() / "training-crop-cache"
    return load_cases(refs, PreprocessConfig(target_spacing=3.0, pad_multiple=16), cache)


def test_patches_carry_their_cases_weights_through_every_augmentation(cached: list) -> None:
    every = AugmentConfig(
        affine_prob=1.0,
        zoom_prob=1.0,
        noise_prob=1.0,
        blur_prob=1.0,
        contrast_prob=1.0,
        contrast_removal_prob=1.0,
        thick_slice_prob=1.0,
        bias_field_prob=1.0,
        gamma_prob=1.0,
        series_standin_prob=1.0,
    )
    samples = [training_sample(c, PATCH, (0.3 + i, 1.0, 2.0)) for i, c in enumerate(cached)]
    ds = PatchDataset(samples, build_augmentation(every, PATCH), samples_per_epoch=3, seed=2)
    for i in range(3):
        item = ds[i]
        assert item["region_weights"].dtype == torch.float32
        torch.testing.assert_close(item["region_weights"], torch.tensor([0.3 + i, 1.0, 2.0]))
    plain = PatchDataset(
        [training_sample(c, PATCH) for c in cached], build_augmentation(every, PATCH), 3
    )
    assert "region_weights" not in plain[0]


@pytest.mark.slow
def test_a_training_step_uses_the_sources_weights(
    brats2018_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    root = link_cases(tmp_path_factory.mktemp("source-weight-data"), brats2018_dir, CASES)
    cache = tmp_path_factory.getbasetemp() / "training-crop-cache"

    def first_loss(name: str, recipe: dict) -> float:
        out = tmp_path_factory.mktemp(name) / "run"
        cfg = tiny_config(root, out, cache, val_cases=[CASES[0]], stop_after_steps=1, recipe=recipe)
        return next(e["loss"] for e in train_events(cfg) if e["event"] == "step")

    plain = first_loss("plain", {})
    # every case here is from the 2017-2021 releases: their weights double every region term
    doubled = first_loss("doubled", {"source_region_weights": {"brats2017-2021": [2, 2, 2]}})
    untouched = first_loss("other", {"source_region_weights": {"brats-africa": [2, 2, 2]}})
    assert doubled == pytest.approx(2 * plain, rel=1e-4)
    assert untouched == pytest.approx(plain, rel=1e-6)
