"""The weights shipped in the package: cards, size budget, and one-click prediction with the default.

The default-model test segments the first case of the first default model's card with
``napari-brats predict`` and no ``--model``, checks that this is exactly the ensemble named in
``weights/default.txt``, and checks the output against the expert label. The bundled defaults
were trained on every BraTS 2018 case, so the unseen-case tests use the BraTS 2023-named case,
which no bundled model trained on, against its reference: one algorithm's output (not an expert
label, hence floors well below the measured scores).
"""

from __future__ import annotations

import json
import re

import nibabel as nib
import numpy as np
import pytest

from bratseg.checkpoint import load_checkpoint
from bratseg.cli.main import main
from bratseg.labels import region_masks
from bratseg.metrics import dice_regions
from bratseg.zoo import BUNDLED_DIR, ModelCard, catalogue, default_model_names, list_models

#: Upper bound on all bundled weights together (package size budget).
MAX_BUNDLED_BYTES = 80 * 1000 * 1000  # 80 MB

bundled = [entry for entry in list_models(include_user=False) if entry.bundled]
needs_weights = pytest.mark.skipif(not bundled, reason="no weights bundled in src/bratseg/weights")
slow = pytest.mark.slow  # full-case predictions with trained networks
#: Dice floors (WT, TC, ET) on a card's case: below every bundled card's row (those of
#: segresnet-vae-small, 0.595 / 0.293 / 0.285, the lowest, when it was bundled).
CARD_CASE_FLOORS = (0.55, 0.25, 0.25)
#: Dice floors (WT, TC, ET) on the unseen BraTS 2023-named case against its algorithm output:
#: measured 0.843 / 0.435 / 0.456 for the default ensemble with its own postprocessing (0.832 /
#: 0.500 / 0.541 with its first model's), 0.852 / 0.467 / 0.505 for all five.
UNSEEN_FLOORS = (0.75, 0.35, 0.35)


@needs_weights
def test_bundled_weights_fit_the_size_budget():
    total = sum(path.stat().st_size for path in BUNDLED_DIR.iterdir() if path.is_file())
    assert total <= MAX_BUNDLED_BYTES


@needs_weights
@pytest.mark.parametrize("entry", bundled, ids=[e.name for e in bundled])
def test_every_bundled_model_has_an_honest_card(entry):
    card = json.loads(entry.path.with_suffix(".json").read_text())
    for key in (
        "architecture",
        "data",
        "split",
        "epochs",
        "steps",
        "training_wall_time_s",
        "training_device",
        "val_dice",
        "val_hd95",
        "cpu_seconds_per_case",
        "parameters",
    ):
        assert key in card, key
    assert set(card["val_dice"]) == {"wt", "tc", "et"}
    # cases by dataset name and case ID, papers by author and year (tools/refresh_cards.py)
    assert all("/" not in folder for folder in card["data"]["folders"])
    assert sorted(sum(card["data"]["datasets"].values(), [])) == sorted(
        {*card["data"]["train_cases"], *card["data"]["val_cases"]}
    )
    text = entry.path.with_suffix(".json").read_text() + json.dumps(entry.meta["provenance"])
    assert not re.search(r"[Ss]eed[ -]?00[0-4]", text), "a paper cited by its old number"
    assert not set(card["data"]["val_cases"]) & set(card["data"]["train_cases"]) or (
        "NOT a held-out score" in card["remark"]
    )
    if "cross_validation" in card:  # trained on every case: the scores are the folds' held-out ones
        cv, rows = card["cross_validation"], card["val_per_case"]
        assert (
            card["remark"].startswith("Cross-validation estimate")
            and card["data"]["val_cases"] == []
        )
        assert cv["n_cases"] == len(rows) == len({row["case"] for row in rows})
        for row in rows:
            assert row["case"] in cv["folds"][row["fold"]]["val_cases"]
            assert cv["folds"][row["fold"]]["archs"][0] == card["architecture"]
    loaded = load_checkpoint(entry.path)
    assert loaded.meta["provenance"]["card"]["val_dice"] == card["val_dice"]
    assert entry.val_dice == card["val_dice"]
    # the typed card reads every key of the file and writes the same JSON back
    typed, written = ModelCard.from_dict(card), ModelCard.from_dict(card).to_dict()
    assert all(written[k] == v for k, v in card.items() if k != "data"), "a key was lost or changed"
    assert all(written["data"][k] == v for k, v in card["data"].items())
    assert typed.data.val_cases == card["data"]["val_cases"]
    assert entry.model_card is not None and entry.model_card.val_dice == card["val_dice"]


def _scored_case(brats2018_dir, name: str):
    """A case of bundled model ``name``'s card (held out from it unless its card is a
    cross-validation estimate: such weights trained on every case): of those found in
    ``brats2018_dir``, the one the card scores best (the test reproduces the card's numbers;
    its sanity floors are not meant for the hardest low-grade cases)."""
    card = json.loads((BUNDLED_DIR / f"{name}.json").read_text())
    here = [r for r in card["val_per_case"] if (brats2018_dir / r["case"]).is_dir()]
    if not here:
        pytest.skip(f"no validation case of {name} in {brats2018_dir}")
    best = max(here, key=lambda r: sum(r["dice"].values()))
    return brats2018_dir / best["case"]


def _trained_on(name: str, case: str) -> bool:
    return case in json.loads((BUNDLED_DIR / f"{name}.json").read_text())["data"]["train_cases"]


def _dice_2023(pred: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """WT, TC, ET Dice of two 2023-convention label maps (1 NCR, 2 ED, 3 ET), computed here."""
    out = []
    for values in ((1, 2, 3), (1, 3), (3,)):
        a, b = np.isin(pred, values), np.isin(ref, values)
        out.append(2.0 * np.count_nonzero(a & b) / (np.count_nonzero(a) + np.count_nonzero(b)))
    return np.array(out)


def _predict_unseen(extra_args: list[str], case_dir, tmp_path) -> np.ndarray:
    """``napari-brats predict`` on the 2023-named case in 2023 labels; Dice WT, TC, ET against
    its algorithm output."""
    for entry in bundled:  # unseen indeed: in no card's training cases
        card = json.loads(entry.path.with_suffix(".json").read_text())
        assert case_dir.name not in card["data"]["train_cases"]
    out = tmp_path / "pred.nii.gz"
    assert (
        main(["predict", str(case_dir), "-o", str(out), "-q", "--labels", "2023", *extra_args]) == 0
    )
    ref_img = nib.load(case_dir / "algorithm-output-not-ground-truth-seg.nii.gz")
    pred_img = nib.load(out)
    np.testing.assert_allclose(pred_img.affine, ref_img.affine, atol=1e-4)
    pred = np.asarray(pred_img.dataobj)
    assert pred.shape == ref_img.shape and set(np.unique(pred)) <= {0, 1, 2, 3}
    return _dice_2023(pred, np.asarray(ref_img.dataobj).astype(np.uint8))


def _predict_and_score(extra_args: list[str], case_dir, tmp_path) -> np.ndarray:
    """Run ``napari-brats predict`` on ``case_dir``; check the file; return Dice WT, TC, ET."""
    case = case_dir.name
    out = tmp_path / "pred.nii.gz"
    assert main(["predict", str(case_dir), "-o", str(out), "-q", *extra_args]) == 0

    pred_img = nib.load(out)
    ref_img = nib.load(case_dir / f"{case}_seg.nii.gz")
    assert pred_img.shape == ref_img.shape
    np.testing.assert_allclose(pred_img.affine, ref_img.affine)
    pred = np.asarray(pred_img.dataobj)
    assert pred.dtype == np.uint8 and set(np.unique(pred)) <= {0, 1, 2, 4}
    masks = region_masks(pred, "2021")
    ref = region_masks(np.asarray(ref_img.dataobj).astype(np.uint8), "2021")
    stack = lambda m: np.stack([m["wt"], m["tc"], m["et"]])  # noqa: E731
    return dice_regions(stack(masks), stack(ref))


@needs_weights
@slow
def test_predict_without_model_uses_the_default(brats2018_dir, tmp_path):
    names = default_model_names()
    assert names
    case_dir = _scored_case(brats2018_dir, names[0])
    held_out = not any(_trained_on(name, case_dir.name) for name in names)
    (tmp_path / "default").mkdir()
    (tmp_path / "named").mkdir()
    dice = _predict_and_score([], case_dir, tmp_path / "default")
    named = _predict_and_score(
        [a for name in names for a in ("--model", name)], case_dir, tmp_path / "named"
    )
    labels = [
        np.asarray(nib.load(tmp_path / d / "pred.nii.gz").dataobj) for d in ("default", "named")
    ]
    np.testing.assert_array_equal(labels[0], labels[1])
    np.testing.assert_array_equal(dice, named)
    # Trained models find the tumour on a case they never saw: the whole-tumour Dice is far from
    # chance (the cards hold the exact full-resolution scores of every validation case); on a
    # case they trained on (weights trained on every case) it is higher still.
    assert dice[0] > (0.5 if held_out else 0.7), dict(zip(("wt", "tc", "et"), dice.round(3)))


@needs_weights
@slow
def test_default_ensemble_segments_a_case_it_never_saw(brats2023_case_dir, tmp_path):
    dice = _predict_unseen([], brats2023_case_dir, tmp_path)
    assert (dice > UNSEEN_FLOORS).all(), dict(zip(("wt", "tc", "et"), dice.round(3)))


def test_default_txt_names_an_ensemble_and_skips_models_not_bundled(tmp_path, monkeypatch, caplog):
    monkeypatch.setattr(catalogue, "BUNDLED_DIR", tmp_path)
    assert default_model_names() == []
    for name in ("a-small", "b-small"):
        (tmp_path / f"{name}.pt").write_bytes(b"")
    assert default_model_names() == ["a-small"]  # no default.txt: the first by name
    (tmp_path / "default.txt").write_text("b-small\n\ngone-small\na-small.pt\n")
    assert default_model_names() == ["b-small", "a-small"]
    assert "gone-small" in caplog.text


@needs_weights
@slow
@pytest.mark.parametrize("entry", bundled, ids=[e.name for e in bundled])
def test_every_bundled_model_segments_a_case_as_its_card_says(entry, brats2018_dir, tmp_path):
    case_dir = _scored_case(brats2018_dir, entry.name)
    dice = _predict_and_score(["--model", entry.name], case_dir, tmp_path)
    assert (dice > CARD_CASE_FLOORS).all(), dict(zip(("wt", "tc", "et"), dice.round(3)))
    card = json.loads(entry.path.with_suffix(".json").read_text())
    if "cross_validation" in card:
        # The card's row is the fold model's (held out); these weights trained on the case.
        assert dice[0] > 0.7, dict(zip(("wt", "tc", "et"), dice.round(3)))
        return
    row = next(r for r in card["val_per_case"] if r["case"] == case_dir.name)
    # The same pipeline as the card's measurement: the card's per-case Dice is reproduced.
    np.testing.assert_allclose(dice, [row["dice"][r] for r in ("wt", "tc", "et")], atol=2e-3)


@slow
@pytest.mark.skipif(len(bundled) < 2, reason="fewer than two bundled models: no ensemble")
def test_ensemble_of_all_bundled_models_segments_a_case_none_saw(brats2023_case_dir, tmp_path):
    dice = _predict_unseen(
        [a for e in bundled for a in ("--model", e.name)], brats2023_case_dir, tmp_path
    )
    assert (dice > UNSEEN_FLOORS).all(), dict(zip(("wt", "tc", "et"), dice.round(3)))


@needs_weights
@pytest.mark.parametrize("entry", bundled, ids=[e.name for e in bundled])
def test_models_name_prints_the_card(entry, capsys):
    card = json.loads(entry.path.with_suffix(".json").read_text())
    assert main(["models", entry.name]) == 0
    text = capsys.readouterr().out
    assert text.startswith(f"{entry.name}: {card['architecture']}")
    assert f"WT {card['val_dice']['wt']:.3f}" in text
    assert all(case in text for case in card["data"]["val_cases"])

    assert main(["models", entry.name, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["val_dice"] == card["val_dice"]


def test_models_name_of_a_checkpoint_without_card_is_refused(tmp_path, capsys):
    from bratseg.checkpoint import save_checkpoint
    from bratseg.models import build_model

    path = tmp_path / "bare.pt"
    model = build_model("nnunet", preset="tiny")
    save_checkpoint(path, model, arch="nnunet", config=model.config)
    assert main(["models", str(path)]) == 2
    err = capsys.readouterr().err
    assert "bare.pt" in err and "no model card" in err
