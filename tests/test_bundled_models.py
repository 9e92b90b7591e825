"""The weights shipped in the package: cards, size budget, and one-click prediction with the default.

The default-model test segments one of the default model's own validation cases (a case it never
trained on, read from its card) with ``napari-brats predict`` and no ``--model``, and checks the
output against the expert label.
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
from bratseg.zoo import BUNDLED_DIR, default_model_name, list_models

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
    loaded = load_checkpoint(entry.path)
    assert loaded.meta["provenance"]["card"]["val_dice"] == card["val_dice"]
    assert entry.val_dice == card["val_dice"]


@needs_weights
def test_predict_without_model_uses_the_default(brats2018_dir, tmp_path, capsys):
    name = default_model_name()
    assert name is not None
    card = json.loads((BUNDLED_DIR / f"{name}.json").read_text())
    case = card["data"]["val_cases"][0]
    case_dir = brats2018_dir / case
    if not case_dir.is_dir():
        pytest.skip(f"validation case {case} of the default model not in {brats2018_dir}")
    out = tmp_path / "pred.nii.gz"

    assert main(["predict", str(case_dir), "-o", str(out), "-q"]) == 0

    pred_img = nib.load(out)
    ref_img = nib.load(case_dir / f"{case}_seg.nii.gz")
    assert pred_img.shape == ref_img.shape
    np.testing.assert_allclose(pred_img.affine, ref_img.affine)
    pred = np.asarray(pred_img.dataobj)
    assert pred.dtype == np.uint8 and set(np.unique(pred)) <= {0, 1, 2, 4}
    masks = region_masks(pred, "2021")
    ref = region_masks(np.asarray(ref_img.dataobj).astype(np.uint8), "2021")
    stack = lambda m: np.stack([m["wt"], m["tc"], m["et"]])  # noqa: E731
    dice = dice_regions(stack(masks), stack(ref))
    # A trained model finds the tumour on a case it never saw: the whole-tumour Dice is far from
    # chance (the card holds the exact full-resolution scores of every validation case).
    assert dice[0] > 0.5, dict(zip(("wt", "tc", "et"), dice.round(3)))
