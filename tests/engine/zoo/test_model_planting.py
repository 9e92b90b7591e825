"""Models cannot be planted or hijacked (issue 28, DEF-2 and DEF-3).

A bundled model's name always means the bundled file, checked against the sha256 of its card;
a file of that name in the current directory or the user folder never stands in for it; user
model names are plain names inside the user folder, and an existing model is replaced only when
asked for.
"""

from __future__ import annotations

import logging
import re
import shutil
from pathlib import Path

import pytest
import torch

from bratseg.cli.main import main
from bratseg.cli.predict import load_models
from bratseg.errors import BratsInputError, CheckpointError
from bratseg.zoo import (
    BUNDLED_DIR,
    catalogue,
    default_model_names,
    default_model_paths,
    list_models,
    load_default_models,
    resolve_model,
)
from bratseg.zoo.user_models import (
    UserModelExistsError,
    check_user_model_name,
    install_user_model,
)

MEMBER = "nnunet-small-cv44-f0"
OTHER = BUNDLED_DIR / "ds-unet-small.pt"


def _zero_weights_copy(path: Path) -> Path:
    """The bundled member with every weight zero: loads, and labels every voxel ET."""
    payload = torch.load(BUNDLED_DIR / f"{MEMBER}.pt", map_location="cpu", weights_only=True)
    payload["state_dict"] = {
        k: torch.zeros_like(v) if v.is_floating_point() else v
        for k, v in payload["state_dict"].items()
    }
    torch.save(payload, path)
    return path


@pytest.fixture
def home(tmp_path, monkeypatch):
    if not (BUNDLED_DIR / f"{MEMBER}.pt").is_file() or not OTHER.is_file():
        pytest.skip("bundled checkpoints are absent")
    monkeypatch.setenv("BRATSEG_HOME", str(tmp_path / "home"))
    (tmp_path / "home" / "models").mkdir(parents=True)
    return tmp_path / "home"


def test_planted_files_never_replace_a_default_member(home, tmp_path, monkeypatch, caplog):
    """Probes 2.21/2.22: a same-named file in the current directory and the user folder."""
    plant_dir = tmp_path / "cwd"
    plant_dir.mkdir()
    shutil.copy(OTHER, plant_dir / MEMBER)  # bare name, as probe 2.22
    shutil.copy(OTHER, home / "models" / f"{MEMBER}.pt")  # as probe 2.21
    monkeypatch.chdir(plant_dir)
    bundled = BUNDLED_DIR / f"{MEMBER}.pt"
    assert resolve_model(MEMBER) == bundled
    assert resolve_model(f"{MEMBER}.pt") == bundled  # no file of that name here
    assert resolve_model(f"./{MEMBER}") == Path(f"./{MEMBER}")  # an explicit path stays explicit
    assert all(p.parent == BUNDLED_DIR for p in default_model_paths())
    with caplog.at_level(logging.WARNING):
        entries = {e.name: e for e in list_models()}
    assert entries[MEMBER].bundled and entries[MEMBER].path == bundled
    assert "has the name of a bundled model" in caplog.text
    models = load_models(None)
    assert [m.path for m in models] == default_model_paths()
    assert [m.arch for m in models] == ["nnunet"] * len(default_model_names())


def test_a_modified_bundled_file_is_refused(tmp_path, monkeypatch):
    """The default's members must be the files their cards describe (sha256)."""
    if not (BUNDLED_DIR / f"{MEMBER}.pt").is_file():
        pytest.skip("bundled checkpoints are absent")
    weights = tmp_path / "weights"
    weights.mkdir()
    shutil.copy(BUNDLED_DIR / f"{MEMBER}.json", weights / f"{MEMBER}.json")
    (weights / "default.txt").write_text(MEMBER + "\n")
    shutil.copy(BUNDLED_DIR / f"{MEMBER}.pt", weights / f"{MEMBER}.pt")
    monkeypatch.setattr(catalogue, "BUNDLED_DIR", weights)
    assert [m.path for m in load_default_models()] == [weights / f"{MEMBER}.pt"]
    _zero_weights_copy(weights / f"{MEMBER}.pt")
    with pytest.raises(CheckpointError, match="modified or replaced") as info:
        load_default_models()
    assert str(weights / f"{MEMBER}.pt") in str(info.value)
    with pytest.raises(CheckpointError, match="modified or replaced"):
        load_models([MEMBER])  # by name, too
    (weights / f"{MEMBER}.json").unlink()
    with pytest.raises(CheckpointError, match="no sha256"):
        load_default_models()


def test_predict_without_model_ignores_planted_members(home, tmp_path, monkeypatch, capsys):
    """Probes 2.21/2.22 as run: a zero-weight member (ET everywhere) planted in both places."""
    case = Path(__file__).resolve().parents[3] / ".." / "shared" / "data" / "brats2018"
    case = case / "Brats18_2013_2_1"
    if not case.is_dir():
        pytest.skip(f"shared data not found at {case}")
    plant_dir = tmp_path / "cwd"
    plant_dir.mkdir()
    _zero_weights_copy(plant_dir / MEMBER)
    _zero_weights_copy(home / "models" / f"{MEMBER}.pt")
    monkeypatch.chdir(plant_dir)
    out = tmp_path / "o.nii.gz"
    assert main(["predict", str(case), "-o", str(out), "-q"]) == 0
    line = capsys.readouterr().out.strip().splitlines()[-1]
    wt, et = (float(re.search(rf"{r} ([\d.]+) mL", line).group(1)) for r in ("WT", "ET"))
    assert 40.0 < wt < 120.0 and et < wt, line  # the real tumour (71 mL), not every voxel


@pytest.mark.parametrize(
    "name",
    [
        "../../escaped_rel",  # probe 2.23
        "/tmp/abs_escape",
        "work/abs_escape",  # probe 2.24
        "a\nb",  # probe 2.27
        "",
        "   ",
        "..",
        ".hidden",
        "c:evil",
        "x.pt",
        MEMBER,  # probe 2.26
        "default",
        "n" * 101,
    ],
)
def test_install_refuses_names_that_escape_or_shadow(home, tmp_path, name):
    with pytest.raises(BratsInputError) as info:
        install_user_model(OTHER, name)
    assert "\n" not in str(info.value)
    assert not isinstance(info.value, UserModelExistsError)
    assert list((home / "models").iterdir()) == []
    assert not list(tmp_path.glob("*.pt")) and not Path("/tmp/abs_escape.pt").exists()


def test_install_never_replaces_an_existing_model_unless_asked(home):
    """Probe 2.25."""
    first = install_user_model(BUNDLED_DIR / f"{MEMBER}.pt", " mine ")
    assert first == home / "models" / "mine.pt"
    before = first.read_bytes()
    with pytest.raises(UserModelExistsError, match="exists"):
        install_user_model(OTHER, "mine")
    assert first.read_bytes() == before
    assert install_user_model(OTHER, "mine", overwrite=True) == first
    assert first.read_bytes() == OTHER.read_bytes()
    assert check_user_model_name("my model 2") == "my model 2"


def test_install_refuses_a_file_that_is_not_a_checkpoint(home, tmp_path):
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError):
        install_user_model(junk, "junk")
    assert list((home / "models").iterdir()) == []
