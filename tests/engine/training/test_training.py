"""Training engine pieces on real BraTS cases: losses, augmentation, cache, splits, schedules,
and a few optimiser steps lowering the loss for every architecture."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from bratseg.errors import BratsInputError
from bratseg.labels import CLASSES
from bratseg.models import build_model, get_architecture, list_architectures
from bratseg.preprocess import PreprocessConfig
from bratseg.training import (
    AugmentConfig,
    build_augmentation,
    default_recipe,
    discover_cases,
    loss_for,
    split_cases,
)
from bratseg.training.data import cache_key, load_cached_case, load_cases
from bratseg.training.losses import SegmentationLoss, deep_supervision_weights, regions_from_index
from bratseg.training.patches import PatchDataset, training_sample
from bratseg.training.recipes import PlateauTracker, Recipe, lr_factor

torch.set_num_threads(2)

PATCH = (32, 32, 32)
CASES = ("Brats18_2013_2_1", "Brats18_CBICA_ABM_1", "Brats18_TCIA01_201_1")


@pytest.fixture(scope="session")
def training_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Crop cache shared by the training tests of this session."""
    return tmp_path_factory.getbasetemp() / "training-crop-cache"


@pytest.fixture(scope="module")
def cached(brats2018_dir: Path, training_cache: Path) -> list:
    """Three real cases, preprocessed at 3 mm (the small sizes tests can afford)."""
    refs = [r for r in discover_cases([brats2018_dir]) if r.case_id in CASES]
    return load_cases(refs, PreprocessConfig(target_spacing=3.0, pad_multiple=16), training_cache)


# ----------------------------------------------------------------------------- losses


def test_region_targets_follow_the_label_hierarchy() -> None:
    idx = torch.tensor([CLASSES.index(c) for c in CLASSES]).view(1, 1, 4, 1, 1)
    regions = regions_from_index(idx)[0, :, :, 0, 0]
    # background, NCR, ED, ET -> WT/TC/ET
    assert regions.T.tolist() == [[0, 0, 0], [1, 1, 0], [1, 0, 0], [1, 1, 1]]


def test_region_loss_prefers_the_right_answer_and_adds_all_terms() -> None:
    torch.manual_seed(0)
    index = torch.randint(0, 4, (2, 1, 8, 8, 8))
    good = (regions_from_index(index) * 2 - 1) * 8.0
    for kind in ("dice", "dice_bce", "dice_focal"):
        crit = SegmentationLoss("regions", kind)
        low, _ = crit({"logits": good}, index)
        high, _ = crit({"logits": -good}, index)
        assert float(low) < 0.05 * float(high) + 1e-3, kind
    crit = SegmentationLoss("regions", "dice", deep_supervision="halving")
    bad = torch.zeros_like(good)
    base, _ = crit(bad, index)
    # deep heads at half resolution, weights 1/2 and 1/4 (Futrega et al. 2021)
    half = torch.zeros(2, 3, 4, 4, 4)
    with_deep, parts = crit({"logits": bad, "deep": [half, half]}, index)
    assert deep_supervision_weights(2) == [0.5, 0.25]
    assert parts["deep"] == pytest.approx(0.75 * float(crit(half, index)[0]), rel=1e-5)
    assert float(with_deep) == pytest.approx(float(base) + parts["deep"], rel=1e-5)
    # cascade: every stage and decoder adds its loss, the main output counted once (Jiang et al. 2020)
    stages, parts = crit({"logits": bad, "stages": [bad.clone(), bad, bad.clone()]}, index)
    assert float(stages) == pytest.approx(3 * float(base), rel=1e-5)
    # VAE: + 0.1 L2 + 0.1 KL (Adeniji & Liu); zero KL for a standard normal
    x = torch.randn(2, 4, 8, 8, 8)
    vae = {"recon": x + 1.0, "target": x, "mu": torch.zeros(2, 8), "logvar": torch.zeros(2, 8)}
    total, parts = crit({"logits": bad, "vae": vae}, index)
    assert parts["l2"] == pytest.approx(1.0, rel=1e-5) and parts["kl"] == pytest.approx(
        0.0, abs=1e-6
    )
    assert float(total) == pytest.approx(float(base) + 0.1, rel=1e-5)


def test_softmax_dice_for_class_outputs() -> None:
    index = torch.randint(0, 4, (1, 1, 8, 8, 8))
    onehot = torch.nn.functional.one_hot(index[:, 0], 4).permute(0, 4, 1, 2, 3).float()
    crit = loss_for(get_architecture("lowrank-resunet"), default_recipe("lowrank-resunet"))
    assert crit.kind == "softmax_dice"
    assert float(crit(onehot * 20, index)[0]) < 0.01 < float(crit(-onehot * 20, index)[0])


# ----------------------------------------------------------------------- augmentation


def test_augmentation_patches_are_deterministic_and_foreground_biased(cached: list) -> None:
    samples = [training_sample(c, PATCH) for c in cached]
    full = AugmentConfig(
        affine_prob=1.0,
        zoom_prob=1.0,
        intensity_scale_prob=1.0,
        intensity_shift_prob=1.0,
        noise_prob=1.0,
        blur_prob=1.0,
        brightness_prob=1.0,
        contrast_prob=1.0,
        channel_drop_prob=1.0,
    )
    ds = PatchDataset(samples, build_augmentation(full, PATCH), samples_per_epoch=6, seed=1)
    a, b = ds[4], ds[4]
    assert a["image"].shape == (4, *PATCH) and a["image"].dtype == torch.float32
    assert a["label"].shape == (1, *PATCH) and a["label"].dtype == torch.uint8
    assert torch.equal(a["image"], b["image"]) and torch.equal(a["label"], b["label"])
    assert not torch.equal(ds[4]["image"], ds[10]["image"])  # same item, next epoch: new patch
    assert set(torch.unique(a["label"]).tolist()) <= set(range(len(CLASSES)))
    # modality drop-out (Henry et al. 2021) zeroes exactly one channel
    assert sum(int(torch.count_nonzero(a["image"][c]) == 0) for c in range(4)) >= 1
    fg = PatchDataset(
        samples, build_augmentation(AugmentConfig(foreground_prob=1.0), PATCH), 6, seed=0
    )
    assert all(int(torch.count_nonzero(fg[i]["label"])) > 0 for i in range(6))


# ------------------------------------------------------------------------ data & cache


def test_cache_is_reused_and_invalidated_when_a_source_changes(
    brats2018_dir: Path, tmp_path: Path
) -> None:
    case = tmp_path / "data" / CASES[0]
    shutil.copytree(brats2018_dir / CASES[0], case)
    pp = PreprocessConfig(target_spacing=3.0)
    (ref,) = discover_cases([tmp_path / "data"])
    first = load_cached_case(ref, pp, tmp_path / "cache")
    entries = list((tmp_path / "cache").glob("*.npz"))
    assert (
        len(entries) == 1
        and first.image.dtype == np.float16
        and first.label.shape == first.image.shape[1:]
    )
    mtime = entries[0].stat().st_mtime_ns
    again = load_cached_case(ref, pp, tmp_path / "cache")
    assert entries[0].stat().st_mtime_ns == mtime and np.array_equal(again.label, first.label)
    key = cache_key(ref, pp)
    assert cache_key(ref, PreprocessConfig(target_spacing=2.0)) != key
    seg = ref.files["seg"]
    os.utime(seg, ns=(seg.stat().st_atime_ns, seg.stat().st_mtime_ns + 10**9))  # "edited"
    assert cache_key(ref, pp) != key
    load_cached_case(ref, pp, tmp_path / "cache")
    entries2 = list((tmp_path / "cache").glob("*.npz"))
    assert len(entries2) == 1 and entries2[0] != entries[0]  # rebuilt, stale entry removed


def test_splits_are_by_case_reproducible_and_k_fold_covers_all() -> None:
    ids = [f"case{i:02d}" for i in range(10)]
    s1, s2 = split_cases(ids, val_fraction=0.2, seed=3), split_cases(ids, val_fraction=0.2, seed=3)
    assert s1.val == s2.val and len(s1.val) == 2 and not set(s1.val) & set(s1.train)
    folds = [split_cases(ids, fold=k, folds=5) for k in range(5)]
    assert sorted(c for f in folds for c in f.val) == ids
    one = split_cases(["only"], val_fraction=0.2)
    assert one.train == one.val == ["only"] and "training case" in one.note
    assert split_cases(ids, val_cases=["case03"]).val == ["case03"]


# ------------------------------------------------------------------------ schedules


def test_schedules_follow_the_papers() -> None:
    poly = Recipe(schedule="poly", warmup=0.1, warmup_start=0.0)
    assert lr_factor(poly, 0.0) == 0.0 and lr_factor(poly, 0.05) == pytest.approx(0.5)
    assert lr_factor(poly, 0.1) == pytest.approx(1.0) and lr_factor(poly, 1.0) == pytest.approx(0.0)
    assert lr_factor(poly, 0.55) == pytest.approx(0.5**0.9)  # Jiang et al. 2020; Adeniji & Liu
    cos = Recipe(schedule="cosine")
    assert lr_factor(cos, 0.5) == pytest.approx(0.5)
    swa = default_recipe("ds-unet")  # Henry et al. 2021: SWA cycles restart at lr / 2
    start = 1 - swa.swa_fraction
    assert lr_factor(swa, start + 1e-9) == pytest.approx(0.5, rel=1e-4)
    plateau = PlateauTracker(factor=0.2, patience=1)
    for score in (0.5, 0.4, 0.4):
        scale = plateau.update(score)
    assert scale == pytest.approx(0.2)  # Ashtari et al. 2021: divided by 5
    assert lr_factor(default_recipe("lowrank-resunet"), 0.7, scale) == pytest.approx(0.2)


# --------------------------------------------------------------- learning, every arch


@pytest.mark.slow
@pytest.mark.parametrize("arch", [s.name for s in list_architectures()])
def test_a_few_steps_lower_the_loss(arch: str, cached: list) -> None:
    torch.manual_seed(0)
    spec = get_architecture(arch)
    config = spec.presets["tiny"]
    if hasattr(config, "input_image_size"):
        config = config.replace(input_image_size=PATCH)
    model = build_model(arch, config)
    in_ch = int(getattr(config, "in_channels", spec.in_channels))
    recipe = default_recipe(arch).with_overrides(lr=3e-3)
    crit = loss_for(spec, recipe)
    samples = [training_sample(c, PATCH) for c in cached]
    aug = build_augmentation(
        AugmentConfig(
            foreground_prob=1.0,
            noise_prob=0,
            blur_prob=0,
            brightness_prob=0,
            contrast_prob=0,
            flip_prob=0,
            affine_prob=0,
        ),
        PATCH,
    )
    ds = PatchDataset(samples, aug, samples_per_epoch=2, seed=0)
    batch = torch.utils.data.default_collate([ds[0], ds[1]])
    x, y = batch["image"], batch["label"]
    if in_ch == 5:  # foreground channel (Futrega et al. 2021)
        x = torch.cat([x, (x.abs().sum(1, keepdim=True) > 0).float()], 1)

    def eval_loss() -> float:
        model.eval()
        with torch.no_grad():
            return float(crit(model(x), y)[0])

    before = eval_loss()
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    model.train()
    for _ in range(8):
        loss, _ = crit(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    after = eval_loss()
    assert after < before, (arch, before, after)


def test_oversampling_repeats_cases_and_strata_and_refuses_unknown_names():
    from bratseg.training.patches import case_repeats, repeated

    ids = ["a", "b", "c"]
    strata = {"a": "low-et", "b": "enhancing", "c": "low-et", "z": "low-et"}
    assert case_repeats(ids, None) == {"a": 1, "b": 1, "c": 1}
    assert case_repeats(ids, ["low-et=3"], strata) == {"a": 3, "b": 1, "c": 3}
    assert case_repeats(ids, ["low-et=2", "c=4"], strata) == {"a": 2, "b": 1, "c": 4}
    samples = [{"id": i} for i in ids]
    out = repeated(samples, ids, {"a": 2, "b": 1, "c": 3})
    assert [s["id"] for s in out] == ["a", "a", "b", "c", "c", "c"]
    assert out[0] is samples[0]  # the same sample object: no copy of the arrays
    for bad, message in (
        (["low-et"], "NAME=K"),
        (["a=0"], "K >= 1"),
        (["a=x"], "NAME=K"),
        (["z=2"], "neither a training case nor a stratum"),  # z is not a training case
        (["grade=2"], "strata: enhancing, low-et"),
    ):
        with pytest.raises(BratsInputError, match=message):
            case_repeats(ids, bad, strata)
    with pytest.raises(BratsInputError, match="no split file"):
        case_repeats(ids, ["low-et=2"])


def test_train_command_passes_oversample_to_the_config(tmp_path):
    from bratseg.cli.main import build_parser
    from bratseg.cli.train import config_from_args

    data, out = str(tmp_path), str(tmp_path / "run")
    args = build_parser().parse_args(
        ["train", "--data", data, "--out", out, "--oversample", "low-et=3", "--oversample", "x=2"]
    )
    assert config_from_args(args).oversample == ["low-et=3", "x=2"]


@pytest.mark.parametrize("kind", ["dice", "dice_bce"])
def test_region_weights_weight_each_region_term(kind):
    from bratseg.training.losses import SegmentationLoss, regions_from_index

    torch.manual_seed(0)
    logits = torch.randn(2, 3, 6, 6, 6)
    index = torch.randint(0, 4, (2, 1, 6, 6, 6))
    plain, _ = SegmentationLoss("regions", kind)(logits, index)
    ones, _ = SegmentationLoss("regions", kind, region_weights=(1, 1, 1))(logits, index)
    twice, _ = SegmentationLoss("regions", kind, region_weights=(2, 2, 2))(logits, index)
    et_only, _ = SegmentationLoss("regions", kind, region_weights=(0, 0, 1))(logits, index)
    assert torch.equal(plain, ones)  # the papers' loss, untouched
    torch.testing.assert_close(twice, 2 * plain)
    # ET alone: the paper's criterion on the ET channel only (dice_bce averages regions: / 3)
    from monai.losses import DiceLoss

    et_logits, et_target = logits[:, 2:3], regions_from_index(index)[:, 2:3]
    if kind == "dice":
        dice = DiceLoss(sigmoid=True, squared_pred=True, smooth_nr=1.0, smooth_dr=1.0, batch=True)
        expected = dice(et_logits, et_target)
    else:
        dice = DiceLoss(sigmoid=True, batch=True, smooth_nr=1e-5, smooth_dr=1e-5)
        bce = torch.nn.functional.binary_cross_entropy_with_logits(et_logits, et_target)
        expected = (dice(et_logits, et_target) + bce) / 3
    torch.testing.assert_close(et_only, expected)
    assert 0 < float(et_only) < float(plain)
    with pytest.raises(ValueError, match="region_weights"):
        SegmentationLoss("regions", "dice_focal", region_weights=(1, 1, 2))


def test_region_weights_recipe_override_is_checked():
    from bratseg.training.recipes import check_overrides, default_recipe

    check_overrides({"region_weights": [1, 1, 2]})
    assert default_recipe("nnunet").region_weights == (1.0, 1.0, 1.0)
    for bad in ([1, 2], [0, 0, 0], [1, -1, 1]):
        with pytest.raises(BratsInputError, match="region_weights"):
            check_overrides({"region_weights": bad})
