"""Bundling a training run: model card from the real predict pipeline, fp16 checkpoint, zoo listing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from tiny_training import link_cases, tiny_config

from bratseg import zoo
from bratseg.checkpoint import load_checkpoint
from bratseg.errors import BratsInputError
from bratseg.evaluation.bundling import bundle_run
from bratseg.training import train_events
from bratseg.zoo.card import markdown_row

pytestmark = pytest.mark.slow  # tiny training runs and full-resolution card predictions

torch.set_num_threads(2)

CASES = ("Brats18_2013_2_1", "Brats18_CBICA_ABM_1")
CARD_KEYS = {
    "name",
    "architecture",
    "paper",
    "preset",
    "config",
    "parameters",
    "data",
    "split",
    "seed",
    "epochs",
    "steps",
    "recipe",
    "training_wall_time_s",
    "run",
    "training_device",
    "val_dice",
    "val_hd95",
    "val_per_case",
    "val_dice_training_resolution",
    "cpu_seconds_per_case",
    "cpu_threads",
    "date",
    "bratseg_version",
    "source_sha256",
    "remark",
}


@pytest.fixture(scope="module")
def bundle_data(brats2018_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder holding only the two cases of these tests."""
    return link_cases(tmp_path_factory.mktemp("bundle-data"), brats2018_dir, CASES)


def _tiny_run(data: Path, tmp_path_factory: pytest.TempPathFactory, name: str, **split) -> Path:
    """A 2-step run of a tiny ds-unet on the two real cases (3 mm), split as given.

    ds-unet's random-weight masks are small, which keeps the full-resolution HD95 cheap.
    """
    out = tmp_path_factory.mktemp("bundle-run") / name
    cache = tmp_path_factory.getbasetemp() / "bundle-cache"
    cfg = tiny_config(data, out, cache, model="ds-unet", step_events=False, **split)
    for _ in train_events(cfg):
        pass
    return out


@pytest.fixture(scope="module")
def tiny_run(bundle_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Trained on CASES[1], validated on CASES[0]."""
    return _tiny_run(bundle_data, tmp_path_factory, "run", val_cases=[CASES[0]])


def test_bundle_writes_card_and_fp16_checkpoint_listed_by_the_zoo(
    tiny_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    weights = tmp_path / "models"
    card, path = bundle_run(tiny_run, "tiny-test", weights, threads=2, default=True)
    assert CARD_KEYS <= set(card.to_dict())
    assert card.architecture == "ds-unet" and card.data.val_cases == [CASES[0]]
    assert card.data.train_cases == [CASES[1]] and card.data.n_cases == 2
    assert [row["case"] for row in card.val_per_case] == [CASES[0]]
    assert all(0.0 <= card.val_dice[r] <= 1.0 for r in ("wt", "tc", "et"))
    assert card.cpu_seconds_per_case > 0 and card.steps == 2 and card.epochs == 1
    assert card.source_sha256 == load_checkpoint(tiny_run / "best.pt").sha256
    assert json.loads((weights / "tiny-test.json").read_text())["val_dice"] == card.val_dice
    # provenance names datasets and case ids, never a path of the training machine
    [(dataset, ids)] = card.data.datasets.items()
    assert dataset.startswith("bundle-data") and ids == sorted(CASES)
    assert card.data.folders == [dataset]
    basetemp = str(tiny_run.parents[1])
    assert basetemp.startswith("/") and basetemp not in json.dumps(card.to_dict())
    assert (weights / "default.txt").read_text().strip() == "tiny-test"
    assert markdown_row(card).startswith("| tiny-test | ds-unet (tiny) |")

    bundled = load_checkpoint(path)
    assert bundled.meta["half"] is True
    assert bundled.meta["provenance"]["card"]["val_dice"] == card.val_dice
    assert basetemp not in json.dumps(bundled.meta["provenance"])  # the shipped file too
    assert bundled.meta["provenance"]["data"] == [dataset]
    raw = torch.load(path, weights_only=True, mmap=True)["state_dict"]
    assert all(t.dtype == torch.float16 for t in raw.values() if t.is_floating_point())

    monkeypatch.setenv("BRATSEG_HOME", str(tmp_path))  # user models dir = tmp_path/models
    entry = next(e for e in zoo.list_models() if e.name == "tiny-test")
    assert entry.arch == "ds-unet" and entry.val_dice == pytest.approx(card.val_dice)
    assert zoo.resolve_model("tiny-test") == path


def test_bundle_refuses_a_checkpoint_without_validation_cases(
    tiny_run: Path, tmp_path: Path
) -> None:
    from bratseg.checkpoint import save_checkpoint

    src = load_checkpoint(tiny_run / "best.pt")
    run = tmp_path / "run"
    save_checkpoint(
        run / "best.pt",
        src.model,
        arch=src.arch,
        config=src.config,
        provenance={**src.provenance, "val_cases": []},
    )
    with pytest.raises(BratsInputError, match="no validation cases"):
        bundle_run(run, "x", tmp_path / "w")
    assert not (tmp_path / "w").exists()


def test_bundle_a_run_on_every_case_with_a_cross_validation_card(
    tiny_run: Path,
    bundle_data: Path,
    tmp_path: Path,
    tmp_path_factory: pytest.TempPathFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from bratseg.zoo.card import format_card

    other_fold = _tiny_run(bundle_data, tmp_path_factory, "fold-b", val_cases=[CASES[1]])
    every_case = _tiny_run(bundle_data, tmp_path_factory, "all", val_fraction=0.0)
    weights = tmp_path / "models"
    card, path = bundle_run(
        every_case,
        "tiny-cv",
        weights,
        checkpoint="last",
        threads=2,
        cv_folds=[[tiny_run], [other_fold]],
        postprocess={"min_island_fraction": 0.1},
    )
    # the weights hold no case out; each case is scored by the fold model that held it out
    assert sorted(card.data.train_cases) == sorted(CASES) and card.data.val_cases == []
    assert [(row["case"], row["fold"]) for row in card.val_per_case] == [
        (CASES[0], 0),
        (CASES[1], 1),
    ]
    cv = card.cross_validation
    assert cv["n_folds"] == 2 and cv["n_cases"] == 2
    assert [f["val_cases"] for f in cv["folds"]] == [[CASES[0]], [CASES[1]]]
    assert card.remark.startswith("Cross-validation estimate") and "last epoch" in card.remark
    assert card.checkpoint == "last" and card.postprocess["min_island_fraction"] == 0.1
    assert load_checkpoint(path).meta["postprocess"]["min_island_fraction"] == 0.1
    assert "cross-validation estimate" in format_card(card)
    monkeypatch.setenv("BRATSEG_HOME", str(tmp_path))  # user models dir = tmp_path/models
    entry = next(e for e in zoo.list_models() if e.name == "tiny-cv")
    assert entry.cross_validated and entry.val_dice == pytest.approx(card.val_dice)
    assert not next(e for e in zoo.list_models() if e.name != "tiny-cv").cross_validated
    # a fold given twice, or a fold model that trained on the case it is scored on, is refused
    with pytest.raises(BratsInputError, match="held out by folds"):
        bundle_run(every_case, "x", tmp_path / "w", cv_folds=[[tiny_run], [tiny_run]])
    with pytest.raises(BratsInputError, match="not a held-out score"):
        bundle_run(every_case, "x", tmp_path / "w", cv_folds=[[tiny_run, other_fold]])
    assert not (tmp_path / "w").exists()
