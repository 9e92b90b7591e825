"""Hostile checkpoints made from a real bundled one: refused at load, naming the file, exit 2.

Each test edits one thing of ``nnunet-small-cv44-f0.pt`` (metadata, architecture config or
weights) and saves the result in a temporary folder (issue 28, DEF-7, DEF-8, DEF-10).
"""

from __future__ import annotations

import re
import resource
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch

from bratseg.checkpoint import load_checkpoint
from bratseg.cli.main import main
from bratseg.errors import CheckpointError
from bratseg.model_checks import MAX_PARAMETERS, check_architecture_config
from bratseg.models.config import NNUNetConfig
from bratseg.zoo import BUNDLED_DIR

SOURCE = BUNDLED_DIR / "nnunet-small-cv44-f0.pt"


def _hostile(tmp_path: Path, name: str, edit: Callable[[dict[str, Any]], None]) -> Path:
    if not SOURCE.is_file():
        pytest.skip(f"bundled checkpoint {SOURCE} is absent")
    payload = torch.load(SOURCE, map_location="cpu", weights_only=True)
    edit(payload)
    path = tmp_path / f"{name}.pt"
    torch.save(payload, path)
    return path


def _set(key: str, value: Any) -> Callable[[dict[str, Any]], None]:
    return lambda payload: payload.__setitem__(key, value)


def _set_in(section: str, key: str, value: Any) -> Callable[[dict[str, Any]], None]:
    return lambda payload: payload[section].__setitem__(key, value)


def _fill_weights(value: float) -> Callable[[dict[str, Any]], None]:
    def edit(payload: dict[str, Any]) -> None:
        payload["state_dict"] = {
            k: torch.full_like(v, value) if v.is_floating_point() else v
            for k, v in payload["state_dict"].items()
        }

    return edit


def _one_inf(payload: dict[str, Any]) -> None:
    last = list(payload["state_dict"])[-1]
    tensor = payload["state_dict"][last].clone()
    tensor.view(-1)[0] = float("inf")
    payload["state_dict"][last] = tensor


HOSTILE = {
    # DEF-10: metadata
    "badmods": (_set("modalities", ["t1", "t1", "t1", "t1"]), "not an ordering of t1, t1ce"),
    "threemods": (_set("modalities", ["t1", "t1ce", "t2"]), "not an ordering"),
    "badconv": (_set("convention", "../../etc"), "label convention '../../etc' is unknown"),
    "ppstring": (_set_in("postprocess", "wt_threshold", "lots"), "postprocess settings"),
    "ppnan": (_set_in("postprocess", "wt_threshold", float("nan")), "postprocess settings"),
    "ppnegative": (_set_in("postprocess", "et_min_volume", -3), "postprocess settings"),
    "prepbad": (_set_in("preprocess", "pad_multiple", "x"), "preprocess settings"),
    # DEF-7: architecture config
    "negfilters": (_set_in("config", "filters", [-5, 32, 64, 128, 256]), "holds -5"),
    "giantcfg": (
        _set_in("config", "filters", [4096, 8192, 16384, 32768, 65536]),
        "holds 8192",
    ),
    "deepcfg": (_set_in("config", "filters", [16] * 40), "has 40 entries"),
    "wide": (_set_in("config", "filters", [4096] * 5), "parameters (at most"),
    # DEF-8: weights
    "nanweights": (_fill_weights(float("nan")), "weight(s) are not finite"),
    "oneinf": (_one_inf, "1 weight(s) are not finite"),
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_checkpoint_is_refused_naming_the_file(tmp_path, name):
    edit, message = HOSTILE[name]
    path = _hostile(tmp_path, name, edit)
    with pytest.raises(CheckpointError, match=re.escape(message)) as info:
        load_checkpoint(path)
    assert str(path) in str(info.value)
    assert "\n" not in str(info.value)


def test_giant_config_is_refused_before_any_allocation(tmp_path):
    """DEF-7 (probe 2.13): under a 3 GB address-space limit the refusal comes first."""
    path = _hostile(tmp_path, "wide", HOSTILE["wide"][0])
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    used = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    limit = max(used * 3, 3 * 1024**3)
    resource.setrlimit(resource.RLIMIT_AS, (min(limit, hard) if hard > 0 else limit, hard))
    try:
        with pytest.raises(CheckpointError, match="parameters"):
            load_checkpoint(path)
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


def test_parameter_count_of_a_bounded_config_is_measured_without_memory():
    config = NNUNetConfig(filters=(16, 32, 64, 128, 256))
    assert check_architecture_config("nnunet", config, Path("x.pt")) == 5648201
    big = NNUNetConfig(filters=(2048,) * 6)
    with pytest.raises(CheckpointError, match=f"at most {MAX_PARAMETERS:,}"):
        check_architecture_config("nnunet", big, Path("x.pt"))


def test_every_bundled_checkpoint_passes_the_checks():
    for path in sorted(BUNDLED_DIR.glob("*.pt")):
        assert load_checkpoint(path).path == path


@pytest.mark.parametrize("name", ["giantcfg", "nanweights", "badmods", "ppstring"])
def test_predict_exits_2_naming_the_checkpoint(tmp_path, capsys, brats2018_case_dir, name):
    path = _hostile(tmp_path, name, HOSTILE[name][0])
    out = tmp_path / "o.nii.gz"
    code = main(["predict", str(brats2018_case_dir), "-o", str(out), "--model", str(path)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert str(path) in err[-1]
    assert not out.exists()
