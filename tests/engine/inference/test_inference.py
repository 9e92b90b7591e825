"""Inference engine on a real shared case with tiny random-weight checkpoints."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from standin import box_mask

from bratseg.checkpoint import load_checkpoint, save_checkpoint
from bratseg.errors import BratsInputError, Cancelled
from bratseg.inference import (
    ForwardPlan,
    InferenceOptions,
    Progress,
    flip_sets,
    forward_probabilities,
    predict_case,
    run_inference,
    select_device,
)
from bratseg.labels import region_masks, valid_labels
from bratseg.models import build_model
from bratseg.postprocess import postprocess

torch.set_num_threads(2)

DATA = Path(__file__).resolve().parents[3] / ".." / "shared" / "data"
CASE_DIR = DATA / "brats2018" / "Brats18_2013_2_1"


def make_checkpoint(
    folder: Path,
    arch: str,
    target_spacing: float = 3.0,
    seed: int = 0,
    name: str | None = None,
    **pre,
) -> Path:
    """Tiny random-weight checkpoint of ``arch`` (test helper, also used by the CLI tests)."""
    torch.manual_seed(seed)
    model = build_model(arch, preset="tiny")
    preprocess = {
        "target_spacing": target_spacing,
        "foreground_channel": model.config.in_channels == 5,
        **pre,
    }
    return save_checkpoint(
        folder / f"{name or arch}.pt",
        model,
        arch=arch,
        config=model.config,
        preprocess=preprocess,
        provenance={"note": "random weights for tests"},
    )


@pytest.fixture(scope="module")
def case():
    if not CASE_DIR.exists():
        pytest.skip(f"shared data not found at {CASE_DIR}")
    from bratseg.io import load_case

    return load_case(CASE_DIR)


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    folder = tmp_path_factory.mktemp("ckpt")
    return {
        "classes": load_checkpoint(make_checkpoint(folder, "lowrank-resunet", 3.0)),
        "regions": load_checkpoint(make_checkpoint(folder, "nnunet", 3.0)),
    }


def check_prediction(pred, case, convention="2021"):
    shape = case.image.shape[1:]
    assert pred.region_probs.shape == (3, *shape) and pred.region_probs.dtype == np.float16
    assert pred.labels.shape == shape and pred.labels.dtype == np.uint8
    assert np.isfinite(pred.region_probs).all()
    assert pred.region_probs.min() >= 0 and pred.region_probs.max() <= 1
    assert set(np.unique(pred.labels).tolist()) <= set(valid_labels(convention))
    masks = region_masks(pred.labels, convention)
    assert not (masks["et"] & ~masks["tc"]).any() and not (masks["tc"] & ~masks["wt"]).any()
    # the labels are the postprocessing of the returned probabilities, nothing outside the brain box
    np.testing.assert_array_equal(
        pred.labels,
        postprocess(
            pred.region_probs, pred.postprocess, convention=convention, class_probs=pred.class_probs
        ),
    )
    assert not pred.labels[~box_mask(case.image)].any()
    assert pred.seconds > 0 and pred.device.startswith("CPU")


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["classes", "regions"])
def test_single_model_geometry_and_invariants(case, models, kind):
    reports: list[Progress] = []
    pred = predict_case(
        case, [models[kind]], InferenceOptions(device="cpu"), progress=reports.append
    )
    check_prediction(pred, case)
    assert reports[-1].step == reports[-1].total and "done" in reports[-1].message
    assert [r.step for r in reports] == sorted(r.step for r in reports)
    assert pred.class_probs is None
    assert pred.models == [models[kind].path.stem]


@pytest.mark.slow
def test_generator_returns_prediction(case, models):
    gen = run_inference(
        case, [models["regions"]], InferenceOptions(device="cpu", convention="2023")
    )
    seen = []
    while True:
        try:
            seen.append(next(gen))
        except StopIteration as stop:
            pred = stop.value
            break
    assert all(isinstance(p, Progress) for p in seen)
    check_prediction(pred, case, convention="2023")
    assert pred.convention == "2023" and 4 not in np.unique(pred.labels)


@pytest.mark.slow
def test_tta8_and_class_probs(case, models):
    opts = InferenceOptions(device="cpu", tta=8, keep_class_probs=True)
    reports: list[Progress] = []
    pred = predict_case(case, [models["classes"]], opts, progress=reports.append)
    check_prediction(pred, case)
    assert sum("flip" in r.message for r in reports) == 8
    assert pred.class_probs is not None and pred.class_probs.shape == (4, *case.shape)
    sums = pred.class_probs.astype(np.float32).sum(0)
    assert np.allclose(sums, 1.0, atol=1e-2)
    assert pred.class_probs[0, 0, 0, 0] == 1.0  # background outside the brain box
    wt = 1.0 - pred.class_probs[0].astype(np.float32)
    assert np.allclose(wt, pred.region_probs[0].astype(np.float32), atol=2e-3)


@pytest.mark.slow
def test_ensemble_of_two_averages(case, models):
    pair = [models["classes"], models["regions"]]
    opts = InferenceOptions(device="cpu")
    ens = predict_case(case, pair, opts)
    check_prediction(ens, case)
    singles = [predict_case(case, [m], opts).region_probs.astype(np.float32) for m in pair]
    np.testing.assert_allclose(
        ens.region_probs.astype(np.float32), (singles[0] + singles[1]) / 2, atol=2e-3
    )
    assert len(ens.models) == 2


def test_cancel_with_should_stop(case, models):
    calls = {"n": 0}

    def stop_after_two() -> bool:
        calls["n"] += 1
        return calls["n"] > 2

    with pytest.raises(Cancelled):
        predict_case(
            case,
            [models["classes"]],
            InferenceOptions(device="cpu", tta=8),
            should_stop=stop_after_two,
        )
    assert calls["n"] == 3


def test_cancel_by_closing_generator(case, models):
    gen = run_inference(case, [models["classes"]], InferenceOptions(device="cpu", tta=8))
    first = next(gen)
    assert first.step == 0
    gen.close()
    with pytest.raises(StopIteration):
        next(gen)


@pytest.mark.slow
def test_sliding_window_and_whole_volume_paths(case, models):
    loaded = models["classes"]
    x = torch.randn(1, 4, 24, 32, 24)
    device, desc = select_device("cpu")
    whole = ForwardPlan(device=device, description=desc)
    p_whole = forward_probabilities(loaded.model, x, whole, output_kind="classes", divisor=4)
    assert whole.last_mode == "whole volume"
    sw = ForwardPlan(device=device, description=desc, window=(16, 16, 16), overlap=0.5)
    p_sw = forward_probabilities(loaded.model, x, sw, output_kind="classes", divisor=4)
    assert sw.last_mode == "sliding window 16x16x16"
    assert p_whole.shape == p_sw.shape == (1, 4, 24, 32, 24)
    np.testing.assert_allclose(
        p_sw.sum(1).numpy(), 1.0, atol=1e-4
    )  # blended softmax stays a distribution
    # auto mode switches to windows above the whole-volume limit
    auto = ForwardPlan(device=device, description=desc, whole_volume_max_voxels=1000)
    forward_probabilities(loaded.model, x, auto, output_kind="classes", divisor=4)
    assert auto.last_mode.startswith("sliding window")
    # through the engine as well (3 mm crop ~ 48x64x48: a few 48^3 windows)
    pred = predict_case(
        case, [loaded], InferenceOptions(device="cpu", window=(48, 48, 48), overlap=0.25)
    )
    check_prediction(pred, case)


class _MemoryHungry(torch.nn.Module):
    """1x1x1 conv that raises an out-of-memory error on inputs above ``limit`` voxels."""

    def __init__(self, limit: int) -> None:
        super().__init__()
        self.conv = torch.nn.Conv3d(5, 3, 1)
        self.limit = limit

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x[0, 0].numel() > self.limit:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")
        return self.conv(x)


def test_out_of_memory_falls_back_to_smaller_windows():
    x = torch.randn(1, 5, 64, 64, 64)
    device, desc = select_device("cpu")
    plan = ForwardPlan(device=device, description=desc)
    out = forward_probabilities(_MemoryHungry(40**3), x, plan, divisor=8)
    assert out.shape == (1, 3, 64, 64, 64)
    assert plan.last_mode == "sliding window 32x32x32"
    assert len(plan.notes) == 1 and all("out of memory" in n for n in plan.notes)
    with pytest.raises(torch.OutOfMemoryError):  # nothing left to try on the CPU
        forward_probabilities(
            _MemoryHungry(10), x, ForwardPlan(device=device, description=desc), divisor=8
        )


def test_options_validation(case, models):
    with pytest.raises(BratsInputError):
        flip_sets(4)
    with pytest.raises(BratsInputError):
        predict_case(case, [], InferenceOptions(device="cpu"))
    with pytest.raises(BratsInputError):
        select_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(BratsInputError, match="CUDA"):
            select_device("cuda")
    assert len(flip_sets(8)) == 8 and flip_sets(0) == [()]


def test_select_device_auto_reports_device():
    device, desc = select_device("auto")
    if torch.cuda.is_available():
        assert device.type == "cuda" and "cuda" in desc
    else:
        assert device.type in ("cpu", "mps")
        assert desc.startswith("CPU") or "mps" in desc
    torch.set_num_threads(2)


@pytest.mark.slow
def test_bias_correction_by_the_model_or_by_the_options(case, tmp_path):
    """A model trained on corrected inputs gets them at prediction; the option forces it on or off."""
    pytest.importorskip("SimpleITK", reason="bias-field correction needs SimpleITK")
    plain = load_checkpoint(make_checkpoint(tmp_path, "nnunet", 3.0, seed=5, name="plain"))
    declared = load_checkpoint(
        make_checkpoint(tmp_path, "nnunet", 3.0, seed=5, name="n4", bias_correction=True)
    )
    assert declared.preprocess_config().bias_correction
    by_model = predict_case(case, [declared], InferenceOptions(device="cpu"))
    check_prediction(by_model, case)
    forced = predict_case(case, [plain], InferenceOptions(device="cpu", bias_correction=True))
    np.testing.assert_array_equal(by_model.region_probs, forced.region_probs)
    off = predict_case(case, [declared], InferenceOptions(device="cpu", bias_correction=False))
    uncorrected = predict_case(case, [plain], InferenceOptions(device="cpu"))
    np.testing.assert_array_equal(off.region_probs, uncorrected.region_probs)
    assert not np.array_equal(by_model.region_probs, uncorrected.region_probs)
