"""The nnunet network is MONAI's DynUNet written out: same names, same outputs, no MONAI import."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from bratseg.checkpoint import load_checkpoint, save_checkpoint
from bratseg.models import build_model
from bratseg.models.config import NNUNetConfig

WEIGHTS = Path(__file__).resolve().parents[3] / "src" / "bratseg" / "weights"
BUNDLED = WEIGHTS / "nnunet-small-cv44-f0.pt"


def _dynunet(config: NNUNetConfig) -> torch.nn.Module:
    from monai.networks.nets import DynUNet

    depth = len(config.filters)
    return DynUNet(
        spatial_dims=3,
        in_channels=config.in_channels,
        out_channels=config.out_channels,
        kernel_size=[3] * depth,
        strides=[1] + [2] * (depth - 1),
        upsample_kernel_size=[2] * (depth - 1),
        filters=list(config.filters),
        norm_name=("INSTANCE", {"affine": True}),
        act_name=("leakyrelu", {"inplace": True, "negative_slope": config.negative_slope}),
        deep_supervision=config.deep_supr_num > 0,
        deep_supr_num=max(1, config.deep_supr_num),
    )


def _into_dynunet(loaded) -> tuple[torch.nn.Module, dict[str, torch.Tensor]]:
    """MONAI's DynUNet holding a loaded checkpoint's weights, and its own state dict (``net.``
    prefixed, with the ``skip_layers.`` aliases DynUNet saves: the layout of runs saved from it)."""
    reference = _dynunet(loaded.config)
    ours = {k.removeprefix("net."): v.float() for k, v in loaded.model.state_dict().items()}
    missing, unexpected = reference.load_state_dict(ours, strict=False)
    # Only the aliases are missing: they are the same modules under a second name.
    assert not unexpected and missing and all(k.startswith("skip_layers.") for k in missing)
    return reference, {f"net.{k}": v for k, v in reference.state_dict().items()}


def test_bundled_weights_give_dynunet_outputs_in_eval_and_training():
    """The bundled fold model, loaded here and into MONAI's DynUNet, gives the same logits and heads."""
    loaded = load_checkpoint(BUNDLED)
    reference, _ = _into_dynunet(loaded)
    # Same parameters in the same order: optimiser states of runs saved before stay valid.
    ours = [name.removeprefix("net.") for name, _ in loaded.model.named_parameters()]
    assert ours == [name for name, _ in reference.named_parameters()]
    torch.manual_seed(0)
    x = torch.randn(1, loaded.config.in_channels, 48, 64, 32)
    model = loaded.model
    with torch.no_grad():
        model.eval(), reference.eval()
        torch.testing.assert_close(model(x), reference(x), atol=1e-4, rtol=1e-4)
        model.train(), reference.train()
        out, stacked = model(x), reference(x)
    assert isinstance(out, dict) and len(out["deep"]) == loaded.config.deep_supr_num == 2
    torch.testing.assert_close(out["logits"], stacked[:, 0], atol=1e-4, rtol=1e-4)
    for i, head in enumerate(out["deep"]):
        assert head.shape == out["logits"].shape
        torch.testing.assert_close(head, stacked[:, i + 1], atol=1e-4, rtol=1e-4)


def test_dynunet_checkpoints_keep_loading_and_new_ones_hold_each_weight_once(tmp_path):
    """A checkpoint saved from DynUNet (aliases under skip_layers.) loads; re-saved it has none."""
    loaded = load_checkpoint(BUNDLED)
    _, saved = _into_dynunet(loaded)
    assert any(".skip_layers." in k for k in saved)
    checkpoint = torch.load(BUNDLED, map_location="cpu", weights_only=False)
    checkpoint["state_dict"] = saved
    old = tmp_path / "dynunet.pt"
    torch.save(checkpoint, old)
    from_dynunet = load_checkpoint(old)
    path = save_checkpoint(tmp_path / "again.pt", from_dynunet.model, arch="nnunet", config=None)
    resaved = torch.load(path, map_location="cpu", weights_only=False)["state_dict"]
    assert not any("skip_layers" in k for k in resaved)
    assert set(resaved) == {k for k in saved if ".skip_layers." not in k}
    again = load_checkpoint(path)
    x = torch.randn(1, loaded.config.in_channels, 32, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(again.model(x), loaded.model(x), atol=1e-4, rtol=1e-4)
    # A training state of a DynUNet run (names with aliases) loads into the network too.
    fresh = build_model("nnunet", loaded.config)
    fresh.load_state_dict(saved)


def test_two_checkpoints_of_one_architecture_do_not_share_weights():
    """Loading copies one built network per architecture; the copies must be independent."""
    first = load_checkpoint(WEIGHTS / "nnunet-small-cv44-f0.pt").model
    second = load_checkpoint(WEIGHTS / "nnunet-small-cv44-f1.pt").model
    a, b = first.net.input_block.conv1.conv.weight, second.net.input_block.conv1.conv.weight
    assert a.data_ptr() != b.data_ptr() and not torch.equal(a, b)


@pytest.mark.parametrize("deep", [0, 2])
def test_tiny_network_trains_with_and_without_deep_heads(deep):
    model = build_model("nnunet", NNUNetConfig(filters=(4, 8, 12, 16), deep_supr_num=deep))
    out = model.train()(torch.randn(1, 5, 16, 16, 16))
    assert isinstance(out, dict) and len(out.get("deep", [])) == deep
    loss = out["logits"].mean() + sum(d.mean() for d in out.get("deep", []))
    loss.backward()
    assert all(p.grad is not None for p in model.parameters())


def test_predicting_with_the_default_models_does_not_import_monai(brats2018_dir):
    """Importing MONAI costs seconds; the CLI's default predict path must not need it."""
    case = brats2018_dir / "Brats18_2013_2_1"
    code = (
        "import sys; from bratseg.cli.predict import load_models; "
        "from bratseg.inference import run_inference, InferenceOptions; "
        "from bratseg.io import load_case; from bratseg.progress import run_to_end; "
        "from bratseg.cli.main import build_parser; build_parser(); "
        "models = load_models(None); "
        f"case = load_case({str(case)!r}, load_seg=False); "
        "pred = run_to_end(run_inference(case, models[:1], InferenceOptions(threads=1))); "
        "print(pred.labels.max(), 'monai' in sys.modules)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        encoding="utf-8",
        errors="replace",
        check=True,
    )
    assert done.stdout.split()[-1] == "False", done.stdout
