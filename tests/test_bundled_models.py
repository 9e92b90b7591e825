"""The weights shipped in the package: cards, size budget, and one-click prediction with the default.

The default-model test segments the first case of the first default model's card (a case none of
the defaults trained on, unless they were trained on every case) with ``napari-brats predict``
and no ``--model``, checks that this is exactly the ensemble named in ``weights/default.txt``, and
checks the output against the expert label.
"""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest

from bratseg.checkpoint import load_checkpoint
from bratseg.cli.main import main
from bratseg.labels import region_masks
from bratseg.metrics import dice_regions
import bratseg.zoo as zoo
from bratseg.zoo import BUNDLED_DIR, default_model_names, list_models

#: Upper bound on all bundled weights together (package size budget).
MAX_BUNDLED_BYTES = 80 * 1024 * 1024

bundled = [entry for entry in list_models(include_user=False) if entry.bundled]
needs_weights = pytest.mark.skipif(not bundled, reason="no weights bundled in src/bratseg/weights")


@needs_weights
def test_bundled_weights_fit_the_size_budget():
    total = sum(path.stat().st_size for path in BUNDLED_DIR.iterdir() if path.is_file())
    assert total <= MAX_BUNDLED_BYTES


@needs_weights
@pytest.mark.parametrize("entry", bundled, ids=[e.name for e in bundled])
def test_every_bundled_model_has_an_honest_card(entry):
    card = json.loads(entry.path.with_suffix(".json").read_text())
    for key in ("architecture", "data", "split", "epochs", "steps", "training_wall_time_s",
                "training_device", "val_dice", "val_hd95", "cpu_seconds_per_case", "parameters"):
        assert key in card, key
    assert set(card["val_dice"]) == {"wt", "tc", "et"}
    assert not set(card["data"]["val_cases"]) & set(card["data"]["train_cases"]) or (
        "NOT a held-out score" in card["remark"]
    )
    if "cross_validation" in card:  # trained on every case: the scores are the folds' held-out ones
        cv, rows = card["cross_validation"], card["val_per_case"]
        assert card["remark"].startswith("Cross-validation estimate") and card["data"]["val_cases"] == []
        assert cv["n_cases"] == len(rows) == len({row["case"] for row in rows})
        for row in rows:
            assert row["case"] in cv["folds"][row["fold"]]["val_cases"]
            assert cv["folds"][row["fold"]]["archs"][0] == card["architecture"]
    loaded = load_checkpoint(entry.path)
    assert loaded.meta["provenance"]["card"]["val_dice"] == card["val_dice"]
    assert entry.val_dice == card["val_dice"]


def _scored_case(brats2018_dir, name: str):
    """First case of bundled model ``name``'s card (held out from it unless its card is a
    cross-validation estimate: such weights trained on every case)."""
    card = json.loads((BUNDLED_DIR / f"{name}.json").read_text())
    case_dir = brats2018_dir / card["val_per_case"][0]["case"]
    if not case_dir.is_dir():
        pytest.skip(f"validation case {case_dir.name} of {name} not in {brats2018_dir}")
    return case_dir


def _trained_on(name: str, case: str) -> bool:
    return case in json.loads((BUNDLED_DIR / f"{name}.json").read_text())["data"]["train_cases"]


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
def test_predict_without_model_uses_the_default(brats2018_dir, tmp_path):
    names = default_model_names()
    assert names
    case_dir = _scored_case(brats2018_dir, names[0])
    held_out = not any(_trained_on(name, case_dir.name) for name in names)
    (tmp_path / "default").mkdir()
    (tmp_path / "named").mkdir()
    dice = _predict_and_score([], case_dir, tmp_path / "default")
    named = _predict_and_score([a for name in names for a in ("--model", name)], case_dir, tmp_path / "named")
    labels = [np.asarray(nib.load(tmp_path / d / "pred.nii.gz").dataobj) for d in ("default", "named")]
    np.testing.assert_array_equal(labels[0], labels[1])
    np.testing.assert_array_equal(dice, named)
    # Trained models find the tumour on a case they never saw: the whole-tumour Dice is far from
    # chance (the cards hold the exact full-resolution scores of every validation case); on a
    # case they trained on (weights trained on every case) it is higher still.
    assert dice[0] > (0.5 if held_out else 0.7), dict(zip(("wt", "tc", "et"), dice.round(3)))


def test_default_txt_names_an_ensemble_and_skips_models_not_bundled(tmp_path, monkeypatch, caplog):
    monkeypatch.setattr(zoo, "BUNDLED_DIR", tmp_path)
    assert default_model_names() == []
    for name in ("a-small", "b-small"):
        (tmp_path / f"{name}.pt").write_bytes(b"")
    assert default_model_names() == ["a-small"]  # no default.txt: the first by name
    (tmp_path / "default.txt").write_text("b-small\n\ngone-small\na-small.pt\n")
    assert default_model_names() == ["b-small", "a-small"]
    assert "gone-small" in caplog.text


@needs_weights
@pytest.mark.parametrize("entry", bundled, ids=[e.name for e in bundled])
def test_every_bundled_model_segments_a_case_as_its_card_says(entry, brats2018_dir, tmp_path):
    case_dir = _scored_case(brats2018_dir, entry.name)
    dice = _predict_and_score(["--model", entry.name], case_dir, tmp_path)
    card = json.loads(entry.path.with_suffix(".json").read_text())
    if "cross_validation" in card:
        # The card's row is the fold model's (held out); these weights trained on the case.
        assert dice[0] > 0.7, dict(zip(("wt", "tc", "et"), dice.round(3)))
        return
    row = next(r for r in card["val_per_case"] if r["case"] == case_dir.name)
    # The same pipeline as the card's measurement: the card's per-case Dice is reproduced.
    np.testing.assert_allclose(dice, [row["dice"][r] for r in ("wt", "tc", "et")], atol=2e-3)


@pytest.mark.skipif(len(bundled) < 2, reason="fewer than two bundled models: no ensemble")
def test_ensemble_of_all_bundled_models_segments_a_held_out_case(brats2018_dir, tmp_path):
    case_dir = _scored_case(brats2018_dir, bundled[0].name)
    held_out = not any(_trained_on(e.name, case_dir.name) for e in bundled)
    args = [a for e in bundled for a in ("--model", e.name)]
    dice = _predict_and_score(args, case_dir, tmp_path)
    assert dice[0] > (0.5 if held_out else 0.7), dict(zip(("wt", "tc", "et"), dice.round(3)))


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
