"""Bundling a training run: model card from the real predict pipeline, fp16 checkpoint, zoo listing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from bratseg import zoo
from bratseg.checkpoint import load_checkpoint
from bratseg.errors import BratsInputError
from bratseg.modelcard import bundle_run, markdown_row
from bratseg.training import TrainConfig, train_events

torch.set_num_threads(2)

CASES = ("Brats18_2013_2_1", "Brats18_CBICA_ABM_1")
CARD_KEYS = {
    "name", "architecture", "paper", "preset", "config", "parameters", "data", "split", "seed", "epochs",
    "steps", "recipe", "training_wall_time_s", "run", "training_device", "val_dice", "val_hd95",
    "val_per_case", "val_dice_training_resolution", "cpu_seconds_per_case", "cpu_threads", "date",
    "bratseg_version", "source_sha256", "remark",
}


@pytest.fixture(scope="module")
def tiny_run(brats2018_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-step run of a tiny ds-unet on two real cases, one for validation (3 mm).

    ds-unet's random-weight masks are small, which keeps the full-resolution HD95 cheap.
    """
    data = tmp_path_factory.mktemp("bundle-data")
    for case in CASES:
        (data / case).symlink_to((brats2018_dir / case).resolve(), target_is_directory=True)
    out = tmp_path_factory.mktemp("bundle-run") / "run"
    cfg = TrainConfig(data=[str(data)], out=str(out), model="ds-unet", preset="tiny", epochs=1,
                      steps_per_epoch=2, patch=[32, 32, 32], target_spacing=3.0, num_workers=0,
                      val_cases=[CASES[0]],
                      cache_dir=str(tmp_path_factory.getbasetemp() / "bundle-cache"), step_events=False)
    for _ in train_events(cfg):
        pass
    return out


def test_bundle_writes_card_and_fp16_checkpoint_listed_by_the_zoo(
    tiny_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    weights = tmp_path / "models"
    card, path = bundle_run(tiny_run, "tiny-test", weights, threads=2, default=True)
    assert CARD_KEYS <= set(card)
    assert card["architecture"] == "ds-unet" and card["data"]["val_cases"] == [CASES[0]]
    assert card["data"]["train_cases"] == [CASES[1]] and card["data"]["n_cases"] == 2
    assert [row["case"] for row in card["val_per_case"]] == [CASES[0]]
    assert all(0.0 <= card["val_dice"][r] <= 1.0 for r in ("wt", "tc", "et"))
    assert card["cpu_seconds_per_case"] > 0 and card["steps"] == 2 and card["epochs"] == 1
    assert card["source_sha256"] == load_checkpoint(tiny_run / "best.pt").sha256
    assert json.loads((weights / "tiny-test.json").read_text())["val_dice"] == card["val_dice"]
    assert (weights / "default.txt").read_text().strip() == "tiny-test"
    assert markdown_row(card).startswith("| tiny-test | ds-unet (tiny) |")

    bundled = load_checkpoint(path)
    assert bundled.meta["half"] is True
    assert bundled.meta["provenance"]["card"]["val_dice"] == card["val_dice"]
    raw = torch.load(path, weights_only=True, mmap=True)["state_dict"]
    assert all(t.dtype == torch.float16 for t in raw.values() if t.is_floating_point())

    monkeypatch.setenv("BRATSEG_HOME", str(tmp_path))  # user models dir = tmp_path/models
    entry = next(e for e in zoo.list_models() if e.name == "tiny-test")
    assert entry.arch == "ds-unet" and entry.val_dice == pytest.approx(card["val_dice"])
    assert zoo.resolve_model("tiny-test") == path


def test_bundle_refuses_a_checkpoint_without_validation_cases(tiny_run: Path, tmp_path: Path) -> None:
    from bratseg.checkpoint import save_checkpoint

    src = load_checkpoint(tiny_run / "best.pt")
    run = tmp_path / "run"
    save_checkpoint(run / "best.pt", src.model, arch=src.arch, config=src.config,
                    provenance={**src.provenance, "val_cases": []})
    with pytest.raises(BratsInputError, match="no validation cases"):
        bundle_run(run, "x", tmp_path / "w")
    assert not (tmp_path / "w").exists()
