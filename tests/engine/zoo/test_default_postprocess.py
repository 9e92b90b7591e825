"""The bundled default ensemble uses its own cross-validated postprocessing settings
(weights/default-postprocess.json) in ``predict`` without --model, with the default models named,
and in the Segment dock; other model choices keep the first model's own settings."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from bratseg.checkpoint import load_checkpoint
from bratseg.cli.main import main
from bratseg.postprocess import PostprocessConfig, postprocess
from bratseg.zoo import (
    BUNDLED_DIR,
    default_model_names,
    default_postprocess,
    default_postprocess_overrides,
    is_default_ensemble,
    resolve_model,
)

pytestmark = pytest.mark.skipif(
    not (BUNDLED_DIR / "default-postprocess.json").is_file(),
    reason="no default-postprocess.json bundled",
)


def test_the_settings_file_is_valid_and_documents_its_estimate() -> None:
    data = json.loads((BUNDLED_DIR / "default-postprocess.json").read_text())
    assert data["models"] == default_model_names()
    PostprocessConfig.from_dict(data["postprocess"])  # strict: unknown keys would be refused
    assert set(data["cv_estimate"]["dice"]) == {"wt", "tc", "et"}
    assert default_postprocess_overrides() == data["postprocess"]
    paths = [resolve_model(n) for n in default_model_names()]
    assert is_default_ensemble(paths) and not is_default_ensemble(
        paths[:1] if len(paths) > 1 else []
    )


@pytest.mark.slow
def test_predict_applies_the_default_settings_only_to_the_default(
    brats2018_case_dir: Path, tmp_path: Path
) -> None:
    out, probs_file = tmp_path / "pred.nii.gz", tmp_path / "probs.nii.gz"
    assert (
        main(
            [
                "predict",
                str(brats2018_case_dir),
                "-o",
                str(out),
                "--probabilities",
                str(probs_file),
                "--threads",
                "2",
                "-q",
            ]
        )
        == 0
    )
    probs = np.moveaxis(np.asarray(nib.load(probs_file).dataobj, dtype=np.float32), -1, 0).astype(
        np.float16
    )
    labels = np.asarray(nib.load(out).dataobj)
    first = load_checkpoint(resolve_model(default_model_names()[0]))
    own = PostprocessConfig.from_dict(first.meta["postprocess"])
    tuned = default_postprocess(first)
    assert tuned != own and tuned.wt_threshold == default_postprocess_overrides()["wt_threshold"]
    assert np.array_equal(labels, postprocess(probs, tuned, convention="2021"))
    assert not np.array_equal(labels, postprocess(probs, own, convention="2021"))


def test_models_default_prints_the_ensemble_card(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["models", "default"]) == 0
    text = capsys.readouterr().out
    assert text.startswith("default: the ensemble of " + " + ".join(default_model_names()))
    data = json.loads((BUNDLED_DIR / "default-postprocess.json").read_text())
    assert json.dumps(data["postprocess"], sort_keys=True) in text
    for group in data["cv_estimate"].get("groups", {}):
        assert group in text
    assert main(["models", "default", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["models"] == default_model_names()
