"""The inference engine's numbers on a real case, against an independent computation.

The models are the deterministic stand-ins of ``tests/standin.py``: one fixed convolution of the
z-scored FLAIR and T1Gd channels. ``standin.expected_region_probs`` computes their output from
the case image with plain NumPy (its own brain mask, z-score and brain box), so these tests catch
an engine that misplaces the network grid, forgets to un-flip a test-time augmentation, blends
sliding windows badly or returns anything else than the network's probabilities. They run in
float32 (``amp=False``); the mixed precision a CPU with native bfloat16 uses by default is checked
against the same formula with the tolerance of bfloat16.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from bratseg.checkpoint import load_checkpoint
from bratseg.inference import (
    ForwardPlan,
    InferenceOptions,
    flip_sets,
    forward_probabilities,
    predict_case,
    select_device,
)
from bratseg.postprocess import PostprocessConfig, postprocess
from bratseg.preprocess import preprocess_image

pytestmark = pytest.mark.slow  # full-resolution predictions of a real case

torch.set_num_threads(2)

#: float16 probabilities carry ~3 decimal digits (spacing 4.9e-4 just below 1).
PROB_ATOL = 1e-3


def dice(a: np.ndarray, b: np.ndarray) -> float:
    return 2.0 * np.count_nonzero(a & b) / (np.count_nonzero(a) + np.count_nonzero(b))


def expert_dice(labels: np.ndarray, seg: np.ndarray) -> dict[str, float]:
    """WT/TC/ET Dice of 2021-convention labels (1 NCR, 2 ED, 4 ET) against the expert map."""
    regions = {"wt": (1, 2, 4), "tc": (1, 4), "et": (4,)}
    return {k: dice(np.isin(labels, v), np.isin(seg, v)) for k, v in regions.items()}


@pytest.fixture(scope="module")
def ckpts(standin, tmp_path_factory):
    folder = tmp_path_factory.mktemp("standins")
    return {
        name: load_checkpoint(standin.save_standin(folder / f"{name}.pt", kind, shift))
        for name, kind, shift in (
            ("regions", "regions", 0),
            ("classes", "classes", 0),
            ("shifted", "regions", 1),
        )
    }


@pytest.fixture(scope="module")
def whole(brats2018_case, ckpts):
    """Whole-volume predictions without TTA, one per stand-in (class probabilities kept)."""
    opts = InferenceOptions(device="cpu", amp=False, keep_class_probs=True)
    return {name: predict_case(brats2018_case, [m], opts) for name, m in ckpts.items()}


@pytest.mark.parametrize("name", ["regions", "classes", "shifted"])
def test_probabilities_equal_the_stand_in_formula(standin, brats2018_case, ckpts, whole, name):
    case, pred = brats2018_case, whole[name]
    kind, shift = ("classes", 0) if name == "classes" else ("regions", int(name == "shifted"))
    expected = standin.expected_region_probs(case.image, kind, shift)
    assert pred.region_probs.shape == expected.shape and pred.region_probs.dtype == np.float16
    np.testing.assert_allclose(
        pred.region_probs.astype(np.float64), expected, atol=PROB_ATOL, rtol=0
    )
    # the label map is the postprocessing of exactly these probabilities
    np.testing.assert_array_equal(
        pred.labels,
        postprocess(
            pred.region_probs, pred.postprocess, convention="2021", class_probs=pred.class_probs
        ),
    )
    assert not pred.labels[~standin.box_mask(case.image)].any()  # nothing outside the brain box
    assert pred.postprocess == PostprocessConfig.from_dict(standin.POSTPROCESS)


def test_the_stand_in_finds_the_tumour(brats2018_case, whole):
    """A Dice floor against the expert label: FLAIR and T1Gd intensities alone find this tumour
    (measured WT 0.58, TC 0.61, ET 0.66); an all-background or shifted engine scores ~0."""
    scores = expert_dice(whole["regions"].labels, brats2018_case.seg)
    assert scores["wt"] > 0.5 and scores["tc"] > 0.5 and scores["et"] > 0.55, scores


def test_class_probabilities_equal_the_softmax_formula(standin, brats2018_case, ckpts, whole):
    pred = whole["classes"]
    assert pred.class_probs is not None and pred.class_probs.shape == (4, *brats2018_case.shape)
    expected = standin.expected_class_probs(brats2018_case.image)
    np.testing.assert_allclose(
        pred.class_probs.astype(np.float64), expected, atol=PROB_ATOL, rtol=0
    )
    # argmax postprocessing through the engine equals argmax of the formula's classes
    argmax = PostprocessConfig(mode="argmax", et_component_rule=False)
    labels = predict_case(
        brats2018_case,
        [ckpts["classes"]],
        InferenceOptions(device="cpu", amp=False, postprocess=argmax),
    ).labels
    winner = np.argmax(expected, axis=0)
    ties = np.sort(expected, axis=0)[-1] - np.sort(expected, axis=0)[-2] < 2 * PROB_ATOL
    values = np.array([0, 1, 2, 4], dtype=np.uint8)[winner]
    assert np.count_nonzero(labels[~ties] != values[~ties]) == 0
    assert np.count_nonzero(labels == 4) > 1000  # the argmax map has real ET


def test_tta_is_the_mean_of_un_flipped_passes(standin, brats2018_case, ckpts, whole):
    """With the asymmetric stand-in a flip changes the network output: the engine's TTA must flip
    the input, run the network and flip the output back before averaging the eight passes."""
    case, model = brats2018_case, ckpts["shifted"]
    tta = predict_case(case, [model], InferenceOptions(device="cpu", amp=False, tta=8))
    # 1. the closed form: half the passes look at the +X neighbour, half at the -X one
    expected = standin.expected_region_probs(case.image, "regions", shift=1, tta=True)
    np.testing.assert_allclose(
        tta.region_probs.astype(np.float64), expected, atol=PROB_ATOL, rtol=0
    )
    # 2. by hand on the network grid: mean over flips of flip(net(flip(x)))
    x, info = preprocess_image(case.image, spacing=case.spacing, pad_multiple=16)
    xt = torch.from_numpy(x)[None]
    with torch.no_grad():
        passes = [
            torch.flip(torch.sigmoid(model.model(torch.flip(xt, f))), f)
            if f
            else torch.sigmoid(model.model(xt))
            for f in flip_sets(8)
        ]
    manual = torch.stack(passes).mean(0)[0].numpy()
    (x0, x1), (y0, y1), (z0, z1) = info.bbox
    rx, ry, rz = info.resampled_shape
    np.testing.assert_allclose(
        tta.region_probs[:, x0:x1, y0:y1, z0:z1].astype(np.float32),
        manual[:, :rx, :ry, :rz],
        atol=PROB_ATOL,
        rtol=0,
    )
    # 3. the test is sensitive: TTA really changes this model's output
    no_tta = whole["shifted"].region_probs.astype(np.float32)
    assert np.abs(tta.region_probs.astype(np.float32) - no_tta).max() > 0.3


def test_sliding_window_equals_whole_volume_for_a_point_wise_model(brats2018_case, ckpts, whole):
    opts = InferenceOptions(device="cpu", amp=False, window=(64, 64, 64), overlap=0.5)
    windowed = predict_case(brats2018_case, [ckpts["regions"]], opts)
    ref = whole["regions"]
    np.testing.assert_allclose(
        windowed.region_probs.astype(np.float32),
        ref.region_probs.astype(np.float32),
        atol=PROB_ATOL,
        rtol=0,
    )
    np.testing.assert_array_equal(windowed.labels, ref.labels)


def test_gaussian_blending_hides_window_borders(brats2018_case, ckpts):
    """The asymmetric stand-in sees zero padding at each window's +X face, so every window
    border is wrong in the window it ends. Gaussian weighting with overlap 0.5 (Futrega et al. 2021) gives
    those border voxels almost no weight: fewer than 2,000 of the ~4.4 M network-grid voxels are
    off by more than 0.1. Constant blending, or no overlap, leaves > 15,000 of them."""
    case, model = brats2018_case, ckpts["shifted"].model
    x, _ = preprocess_image(case.image, spacing=case.spacing, pad_multiple=16)
    xt = torch.from_numpy(x)[None]
    device, desc = select_device("cpu")
    plan = ForwardPlan(device=device, description=desc, amp=False)
    full = forward_probabilities(model, xt, plan, divisor=1)
    assert plan.last_mode == "whole volume"
    plan = ForwardPlan(device=device, description=desc, amp=False, window=(64, 64, 64), overlap=0.5)
    windowed = forward_probabilities(model, xt, plan, divisor=1)
    assert plan.last_mode == "sliding window 64x64x64"
    # the CPU pass runs channels-last and puts the weights back in the plain layout after
    # (a network validated during training goes on training, faster in that layout)
    assert all(p.is_contiguous() for p in model.parameters())
    error = (windowed - full).abs()
    assert int((error > 0.1).sum()) < 2000, int((error > 0.1).sum())
    assert float(error.mean()) < 1e-4


def test_2023_labels_are_the_2021_labels_with_et_3(brats2018_case, ckpts, whole):
    pred = predict_case(
        brats2018_case,
        [ckpts["regions"]],
        InferenceOptions(device="cpu", amp=False, convention="2023"),
    )
    ref = whole["regions"].labels
    np.testing.assert_array_equal(pred.labels, np.where(ref == 4, 3, ref))
    assert pred.convention == "2023" and np.count_nonzero(pred.labels == 3) > 1000


def test_ensemble_is_the_mean_of_the_formulas(standin, brats2018_case, ckpts):
    pred = predict_case(
        brats2018_case,
        [ckpts["regions"], ckpts["classes"]],
        InferenceOptions(device="cpu", amp=False),
    )
    expected = 0.5 * (
        standin.expected_region_probs(brats2018_case.image, "regions")
        + standin.expected_region_probs(brats2018_case.image, "classes")
    )
    np.testing.assert_allclose(
        pred.region_probs.astype(np.float64), expected, atol=PROB_ATOL, rtol=0
    )
    np.testing.assert_array_equal(pred.labels, postprocess(pred.region_probs, pred.postprocess))


def test_mixed_precision_on_a_bfloat16_cpu_stays_on_the_formula(standin, brats2018_case, ckpts):
    """The default on a CPU with native bfloat16: the network runs in bfloat16 (8 bits of
    mantissa), and its probabilities stay within 0.02 of the float32 formula; the label maps of
    both precisions agree on all but a sliver of the tumour. Each prediction says which precision
    it ran in (the Segment dock's and ``predict``'s status lines show it)."""
    from bratseg.inference.device import cpu_has_native_bfloat16

    if not cpu_has_native_bfloat16():
        pytest.skip("this CPU has no native bfloat16: mixed precision stays off on it")
    case, model = brats2018_case, ckpts["regions"]
    mixed = predict_case(case, [model], InferenceOptions(device="cpu"))
    plain = predict_case(case, [model], InferenceOptions(device="cpu", amp=False))
    expected = standin.expected_region_probs(case.image, "regions", 0)
    error = np.abs(mixed.region_probs.astype(np.float64) - expected)
    assert float(error.max()) < 0.02 and float(error.max()) > PROB_ATOL  # bfloat16 was used
    tumour = (mixed.labels > 0) | (plain.labels > 0)
    assert np.count_nonzero(mixed.labels != plain.labels) < 0.005 * np.count_nonzero(tumour)
    assert mixed.device.endswith(", bfloat16") and mixed.device.startswith("CPU (")
    assert plain.device.endswith(", float32")
