"""Checkpoints: round trip for every architecture, fp16 option, safe loading, clear refusals."""

from __future__ import annotations

import os
import pickle

import pytest
import torch

from bratseg.checkpoint import (
    CHECKPOINT_FORMAT_VERSION,
    LoadedModel,
    file_sha256,
    load_checkpoint,
    read_provenance,
    save_checkpoint,
)
from bratseg.errors import BratsInputError, CheckpointError
from bratseg.models import build_model, get_architecture, list_architectures

torch.set_num_threads(2)

NAMES = [s.name for s in list_architectures()]
PROVENANCE = {
    "data": "shared/data",
    "split": {"train": ["a"], "val": ["b"]},
    "epochs": 3,
    "metrics": {"dice": {"wt": 0.9}},
    "device": "cpu",
    "seconds": 1.5,
}


def _input(model: torch.nn.Module) -> torch.Tensor:
    cfg = model.config
    size = max(16, cfg.size_divisor)
    torch.manual_seed(0)
    return torch.randn(1, cfg.in_channels, size, size, size)


def _save(tmp_path, name: str, half: bool = False, **kwargs):
    torch.manual_seed(3)
    model = build_model(name, preset="tiny").eval()
    path = save_checkpoint(
        tmp_path / f"{name}.pt",
        model,
        arch=name,
        config=model.config,
        postprocess=get_architecture(name).default_postprocess,
        preprocess={"target_spacing": None, "pad_multiple": 16},
        provenance=PROVENANCE,
        half=half,
        **kwargs,
    )
    return model, path


@pytest.mark.parametrize("name", NAMES)
def test_round_trip_gives_identical_outputs(tmp_path, name):
    model, path = _save(tmp_path, name)
    assert path.is_file() and [p.name for p in tmp_path.iterdir()] == [path.name]  # no temp left
    loaded = load_checkpoint(path)
    assert isinstance(loaded, LoadedModel)
    assert loaded.spec.name == name and loaded.config == model.config
    assert not loaded.model.training
    x = _input(model)
    with torch.no_grad():
        assert torch.equal(model(x), loaded.model(x))
    meta = loaded.meta
    assert meta["format_version"] == CHECKPOINT_FORMAT_VERSION
    assert meta["arch"] == name and meta["config"] == model.config.to_dict()
    assert meta["modalities"] == ["t1", "t1ce", "t2", "flair"]
    assert meta["convention"] == "2021"
    assert meta["provenance"] == PROVENANCE
    assert meta["postprocess"] == get_architecture(name).default_postprocess
    assert meta["preprocess"]["pad_multiple"] == 16
    assert meta["created"] and meta["bratseg_version"]
    assert loaded.sha256 == file_sha256(path) and len(loaded.sha256) == 64


@pytest.mark.parametrize("name", ["nnunet", "lowrank-resunet"])
def test_half_precision_weights_load_as_float32_and_stay_close(tmp_path, name):
    model, path = _save(tmp_path, name, half=True)
    raw = torch.load(path, weights_only=True)
    assert raw["half"] and all(
        t.dtype == torch.float16 for t in raw["state_dict"].values() if t.is_floating_point()
    )
    loaded = load_checkpoint(path)
    assert all(p.dtype == torch.float32 for p in loaded.model.parameters())
    x = _input(model)
    with torch.no_grad():
        ref, got = model(x), loaded.model(x)
    assert (got - ref).abs().max() < 2e-2 * max(1.0, float(ref.abs().max()))


def test_file_is_loadable_with_weights_only_and_holds_metadata(tmp_path):
    _, path = _save(tmp_path, "ds-unet", extra={"note": "tiny", "path": tmp_path})
    raw = torch.load(path, weights_only=True)
    assert raw["extra"] == {"note": "tiny", "path": str(tmp_path)}


def test_provenance_is_read_without_the_network_under_the_same_refusals(tmp_path):
    """Tools following init chains read only the provenance; the file is checked as for loading."""
    _, path = _save(tmp_path, "nnunet")
    assert read_provenance(path) == load_checkpoint(path).provenance
    assert read_provenance(path)["split"] == {"train": ["a"], "val": ["b"]}
    torch.save({"format": "bratseg-checkpoint", "hook": os.getcwd}, tmp_path / "evil.pt")
    with pytest.raises(CheckpointError, match="pickled.*getcwd"):
        read_provenance(tmp_path / "evil.pt")
    with pytest.raises(CheckpointError, match="not found"):
        read_provenance(tmp_path / "absent.pt")


def test_pickled_module_is_refused(tmp_path):
    model = build_model("ds-unet", preset="tiny")
    path = tmp_path / "whole_model.pt"
    torch.save(model, path)
    with pytest.raises(CheckpointError, match="pickled") as info:
        load_checkpoint(path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)


def test_pickled_code_in_metadata_is_refused(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"format": "bratseg-checkpoint", "hook": os.getcwd}, path)  # a function reference
    with pytest.raises(CheckpointError, match="pickled.*getcwd"):
        load_checkpoint(path)
    with open(tmp_path / "raw.pkl", "wb") as handle:  # a plain pickle, not a torch file
        pickle.dump({"hook": os.getcwd}, handle)
    with pytest.raises(CheckpointError, match="cannot be loaded safely"):
        load_checkpoint(tmp_path / "raw.pkl")


def test_unknown_architecture_is_refused(tmp_path):
    _, path = _save(tmp_path, "nnunet")
    raw = torch.load(path, weights_only=True)
    raw["arch"] = "transformer-9000"
    torch.save(raw, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="unknown architecture 'transformer-9000'"):
        load_checkpoint(tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="expected 'ds-unet'"):
        load_checkpoint(path, expected_arch="ds-unet")


def test_wrong_shapes_and_other_architecture_weights_are_refused(tmp_path):
    _, path = _save(tmp_path, "nnunet")
    raw = torch.load(path, weights_only=True)
    raw["config"]["filters"] = [8, 16, 24, 32]
    torch.save(raw, tmp_path / "shapes.pt")
    with pytest.raises(CheckpointError, match="wrong shape") as info:
        load_checkpoint(tmp_path / "shapes.pt")
    assert "shapes.pt" in str(info.value)
    other = build_model("ds-unet", preset="tiny")
    raw["config"]["filters"] = [4, 8, 12, 16]
    raw["state_dict"] = other.state_dict()
    torch.save(raw, tmp_path / "mixed.pt")
    with pytest.raises(CheckpointError, match="do not fit architecture 'nnunet'"):
        load_checkpoint(tmp_path / "mixed.pt")


def test_bad_version_missing_keys_bare_state_dict_and_garbage_are_refused(tmp_path):
    _, path = _save(tmp_path, "cascade-unet")
    raw = torch.load(path, weights_only=True)
    torch.save({**raw, "format_version": 99}, tmp_path / "v99.pt")
    with pytest.raises(CheckpointError, match="format_version 99"):
        load_checkpoint(tmp_path / "v99.pt")
    del raw["convention"]
    torch.save(raw, tmp_path / "partial.pt")
    with pytest.raises(CheckpointError, match="missing: convention"):
        load_checkpoint(tmp_path / "partial.pt")
    torch.save(raw["state_dict"], tmp_path / "bare.pt")
    with pytest.raises(CheckpointError, match="not a bratseg checkpoint"):
        load_checkpoint(tmp_path / "bare.pt")
    (tmp_path / "garbage.pt").write_bytes(b"not a checkpoint at all")
    with pytest.raises(CheckpointError, match="not a readable"):
        load_checkpoint(tmp_path / "garbage.pt")
    with pytest.raises(CheckpointError, match="not found"):
        load_checkpoint(tmp_path / "missing.pt")
    assert issubclass(CheckpointError, BratsInputError)


def test_save_refuses_unplain_metadata_and_leaves_no_file(tmp_path):
    model = build_model("ds-unet", preset="tiny")
    with pytest.raises(TypeError, match="provenance"):
        save_checkpoint(
            tmp_path / "x.pt",
            model,
            arch="ds-unet",
            config=None,
            provenance={"bad": object()},
            postprocess={},
            preprocess={},
        )
    assert list(tmp_path.iterdir()) == []


def test_save_overwrites_atomically(tmp_path):
    _, path = _save(tmp_path, "ds-unet")
    first = file_sha256(path)
    _, path2 = _save(tmp_path, "ds-unet", half=True)
    assert path2 == path and file_sha256(path) != first
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds-unet.pt"]


def test_torchscript_export_matches_eager(tmp_path):
    from bratseg.checkpoint import export_torchscript

    model = build_model("ds-unet", preset="tiny").train()
    x = _input(model)
    path = export_torchscript(model, tmp_path / "ds.ts", tuple(x.shape))
    assert model.training  # mode restored
    traced = torch.jit.load(str(path))
    with torch.no_grad():
        torch.testing.assert_close(traced(x), model.eval()(x), atol=1e-5, rtol=1e-5)


def test_models_torchscript_command_writes_a_trace_that_predicts_like_the_model(tmp_path, capsys):
    import torch

    from bratseg.checkpoint import load_checkpoint
    from bratseg.cli.main import main
    from bratseg.zoo import resolve_model

    out = tmp_path / "ds.ts"
    assert (
        main(["models", "ds-unet-small", "--torchscript", str(out), "--size", "32", "32", "32"])
        == 0
    )
    assert "input (1, 4, 32, 32, 32)" in capsys.readouterr().out
    traced = torch.jit.load(str(out))
    model = load_checkpoint(resolve_model("ds-unet-small")).model.float().eval()
    x = torch.randn(1, 4, 32, 32, 32, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        want = model(x)
        want = want if isinstance(want, torch.Tensor) else want["logits"]
        torch.testing.assert_close(traced(x), want, rtol=1e-4, atol=1e-4)
    assert main(["models", "ds-unet-small", "--torchscript", str(out)]) == 2  # never overwritten
    assert (
        main(
            [
                "models",
                "ds-unet-small",
                "--torchscript",
                str(tmp_path / "x.ts"),
                "--size",
                "30",
                "32",
                "32",
            ]
        )
        == 2
    )
    assert "multiples of" in capsys.readouterr().err and not (tmp_path / "x.ts").exists()
