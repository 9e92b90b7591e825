"""Architectures of the five seeds: build, forward contract, backward, CP low-rank conv."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from bratseg.labels import CLASSES, REGIONS
from bratseg.models import (
    ARCHITECTURES,
    ArchitectureSpec,
    build_model,
    count_parameters,
    get_architecture,
    list_architectures,
)
from bratseg.models.blocks.cp_conv import CPConv3d, cp_rank

torch.set_num_threads(2)

NAMES = ["lowrank-resunet", "cascade-unet", "ds-unet", "nnunet", "segresnet-vae"]


def _tiny_input(name: str, batch: int = 1) -> torch.Tensor:
    """Smallest cube the tiny preset accepts in train mode (segresnet-vae: its VAE size)."""
    spec = get_architecture(name)
    cfg = spec.presets["tiny"]
    size = tuple(getattr(cfg, "input_image_size", (16, 16, 16)))
    size = tuple(max(s, cfg.size_divisor) for s in size)
    torch.manual_seed(0)
    return torch.randn(batch, cfg.in_channels, *size)


def test_registry_lists_the_five_seed_architectures():
    assert [s.name for s in list_architectures()] == NAMES
    assert set(ARCHITECTURES) == set(NAMES)
    for spec in list_architectures():
        assert isinstance(spec, ArchitectureSpec)
        from bratseg.references import REFERENCES

        assert any(spec.paper.startswith(f"{r.cite}, {r.title}") for r in REFERENCES.values())
        assert {"paper", "small", "tiny"} <= set(spec.presets)
        assert spec.output_kind in ("regions", "classes")
        k = len(CLASSES) if spec.output_kind == "classes" else len(REGIONS)
        assert all(cfg.out_channels == k for cfg in spec.presets.values())
        assert spec.in_channels == spec.presets["small"].in_channels
        assert spec.size_divisor == spec.presets["small"].size_divisor
        assert spec.default_postprocess["mode"] in ("hierarchical", "argmax")
        for cfg in spec.presets.values():
            assert spec.config_cls.from_dict(cfg.to_dict()) == cfg
    assert get_architecture("lowrank-resunet").output_kind == "classes"
    assert get_architecture("nnunet").in_channels == 5
    with pytest.raises(KeyError, match="unknown architecture"):
        get_architecture("resnet-50")


def test_config_from_dict_rejects_unknown_fields_and_dict_overrides_preset():
    spec = get_architecture("nnunet")
    with pytest.raises(ValueError, match="unknown"):
        spec.config_cls.from_dict({"filterz": [1, 2]})
    model = build_model("nnunet", {"foreground_channel": False}, preset="tiny")
    assert model.config.in_channels == 4
    assert model.config.filters == spec.presets["tiny"].filters


# Ashtari et al. 2021 Table 1: 92.2 M dense / 20.8 M low-rank parameters for F = 60
PAPER_PARAMS_M = {"lowrank-resunet": (20.0, 22.0)}


@pytest.mark.parametrize("name", NAMES)
def test_paper_and_small_presets_build(name):
    for preset in ("paper", "small"):
        model = build_model(name, preset=preset)
        n = count_parameters(model)
        assert n > 10_000
        if preset == "paper" and name in PAPER_PARAMS_M:
            lo, hi = PAPER_PARAMS_M[name]
            assert lo * 1e6 < n < hi * 1e6


def test_lowrank_resunet_dense_baseline_matches_seed_000_param_count():
    dense = build_model("lowrank-resunet", {"lowrank_alpha": None}, preset="paper")
    assert abs(count_parameters(dense) / 1e6 - 92.2) < 0.5  # Ashtari et al. 2021 Table 1


@pytest.mark.parametrize("name", NAMES)
def test_tiny_forward_eval_train_backward(name):
    spec = get_architecture(name)
    model = build_model(name, preset="tiny")
    assert count_parameters(model) <= 50_000
    x = _tiny_input(name, batch=2)
    k = len(REGIONS) if spec.output_kind == "regions" else len(CLASSES)

    model.train()
    out = model(x)
    assert isinstance(out, dict) and set(out) <= {"logits", "deep", "stages", "vae"}
    assert out["logits"].shape == (2, k, *x.shape[2:])
    loss = out["logits"].float().pow(2).mean()
    for deep in out.get("deep", []):
        assert deep.shape[:2] == (2, k)
        loss = loss + deep.pow(2).mean()
    for stage in out.get("stages", []):
        assert stage.shape == out["logits"].shape
        loss = loss + stage.pow(2).mean()
    if "vae" in out:
        vae = out["vae"]
        assert vae["recon"].shape == x.shape and vae["target"] is x
        assert vae["mu"].shape == vae["logvar"].shape and vae["mu"].shape[0] == 2
        loss = loss + F.mse_loss(vae["recon"], vae["target"]) + vae["mu"].pow(2).mean()
    loss.backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert sum(float(g.abs().sum()) for g in grads) > 0

    model.eval()
    with torch.no_grad():
        logits = model(x)
    assert isinstance(logits, torch.Tensor)
    assert logits.shape == (2, k, *x.shape[2:])
    assert torch.isfinite(logits).all()


def test_train_mode_extras_follow_the_papers():
    cascade = build_model("cascade-unet", preset="tiny").train()
    out = cascade(_tiny_input("cascade-unet"))
    assert len(out["stages"]) == 3  # stage 1, stage 2 deconv, stage 2 trilinear (Jiang et al. 2020)
    assert torch.equal(out["stages"][1], out["logits"])
    nnunet = build_model("nnunet", preset="tiny").train()
    assert len(nnunet(_tiny_input("nnunet"))["deep"]) == 2  # Futrega et al. 2021: two extra heads
    ds = build_model("ds-unet", preset="small").train()
    assert len(ds.deep_heads) == 4  # Henry et al. 2021: dilated convs + 3 decoder stages


def test_ds_unet_keeps_stage_one_width_before_the_head_and_uses_he_init():
    """A 8-channel bottleneck before the head with PyTorch's default init did not learn WT."""
    ds = build_model("ds-unet", preset="small")
    width = ds.config.base_filters
    assert ds.head.in_channels == width and ds.decoder[-1][-1][0].out_channels == width
    conv = ds.encoder[1][0][0]  # 3x3x3, fan_out = C_out * 27
    expected = (2.0 / (conv.out_channels * 27)) ** 0.5
    assert float(conv.weight.std()) == pytest.approx(expected, rel=0.05)


def test_eval_accepts_other_sizes_than_the_vae_size_but_train_does_not():
    model = build_model("segresnet-vae", preset="tiny")
    x = torch.randn(1, 4, 24, 16, 32)
    with torch.no_grad():
        assert model.eval()(x).shape == (1, 3, 24, 16, 32)
    with pytest.raises(ValueError, match="input_image_size"):
        model.train()(x)


def test_segresnet_options_of_seed_004_can_be_switched_off():
    plain = build_model(
        "segresnet-vae", {"squeeze_excitation": False, "maxpool_downsample": False}, preset="tiny"
    )
    options = build_model("segresnet-vae", preset="tiny")
    names = {type(m).__name__ for m in options.modules()}
    assert {"SEResBlock", "MaxPool3d"} <= names
    assert not {"SEResBlock", "MaxPool3d"} & {type(m).__name__ for m in plain.modules()}


@pytest.mark.parametrize("bias", [True, False])
def test_cp_conv_equals_dense_conv_with_reconstructed_kernel(bias):
    torch.manual_seed(1)
    conv = CPConv3d(6, 5, rank=cp_rank(6, 0.5), bias=bias)
    if bias:
        torch.nn.init.normal_(conv.expand.bias)
    x = torch.randn(2, 6, 7, 6, 5)
    kernel = conv.reconstruct_kernel()
    assert kernel.shape == (5, 6, 3, 3, 3)
    expected = F.conv3d(x, kernel, conv.bias, padding=1)
    torch.testing.assert_close(conv(x), expected, atol=1e-5, rtol=1e-5)
    # the kernel really has CP rank <= R: rank of the C_out x (C_in*27) unfolding
    assert torch.linalg.matrix_rank(kernel.reshape(5, -1)) <= conv.rank


def test_cp_conv_parameter_count_is_low_rank():
    conv = CPConv3d(64, 64, rank=cp_rank(64, 0.5))
    n = sum(p.numel() for p in conv.parameters())
    assert (
        n == 32 * (64 + 64 + 3 * 3) + 64
    )  # R (C_out + C_in + 3 k) + bias (Ashtari et al. 2021 eq. 2)
    assert n < 64 * 64 * 27 / 10


def test_lowrank_resunet_uses_dense_convs_only_on_the_first_level():
    model = build_model("lowrank-resunet", preset="tiny")
    first_level = [m for m in model.encoder[0].modules() if isinstance(m, CPConv3d)]
    deeper = [m for m in model.encoder[1].modules() if isinstance(m, CPConv3d)]
    assert not first_level and len(deeper) == 2
    assert deeper[0].rank == cp_rank(deeper[0].in_channels, 0.5)


@pytest.mark.parametrize("name", NAMES)
def test_networks_built_on_meta_skip_random_init_and_count_the_same(name):
    """Checking a checkpoint builds its network on ``meta`` (shapes only): no initialisation runs
    there (it cost a second of imports per process), the parameter count is unchanged, and a
    network built on the CPU is still initialised as its paper says."""
    from bratseg.models.blocks import built_for_shapes

    config = get_architecture(name).presets["tiny"]
    with torch.device("meta"):
        shapes = build_model(name, config)
    real = build_model(name, config)
    assert built_for_shapes(shapes) and not built_for_shapes(real)
    assert count_parameters(shapes) == count_parameters(real)
    assert all(torch.isfinite(p).all() for p in real.parameters())
