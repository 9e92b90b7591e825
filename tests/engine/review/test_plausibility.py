"""Output plausibility (issue 28, item 3): implausible output is flagged for review in the CLI line,
the needs-review assessment (GUI, worklist) and nowhere silently.

Real case and its expert labels from ``../shared/data``; hostile models made from a real bundled
checkpoint (zero weights: ET everywhere; "silent" members that never see tumour).
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import torch

from bratseg.cli.main import main
from bratseg.inference import Prediction
from bratseg.io import list_case_folders, load_case
from bratseg.labels import LABEL_VALUES
from bratseg.review.assessment import assessment_of
from bratseg.review.plausibility import brain_voxel_count, plausibility_reasons
from bratseg.zoo import BUNDLED_DIR

MEMBER = BUNDLED_DIR / "nnunet-small-cv44-f0.pt"
ET = LABEL_VALUES["2021"]["et"]


def _prediction(probs: np.ndarray, labels: np.ndarray) -> Prediction:
    return Prediction(
        region_probs=probs.astype(np.float16),
        labels=labels.astype(np.uint8),
        device="cpu",
        seconds=0.0,
        models=["test"],
        postprocess=None,
        convention="2021",
    )


def _edited(tmp_path: Path, name: str, weight: float, bias: float) -> Path:
    """The bundled member with every weight ``weight`` and the output biases ``bias``."""
    if not MEMBER.is_file():
        pytest.skip("bundled checkpoint absent")
    payload = torch.load(MEMBER, map_location="cpu", weights_only=True)
    payload["state_dict"] = {
        k: (torch.full_like(v, bias if k.endswith("bias") and "output" in k else weight))
        if v.is_floating_point() and (weight is not None)
        else v
        for k, v in payload["state_dict"].items()
    }
    path = tmp_path / f"{name}.pt"
    torch.save(payload, path)
    return path


def test_expert_labels_of_every_shared_case_are_plausible(brats2018_dir):
    """No false alarm on the 16 expert label maps (over the 76 labelled cases here, WT covers at
    most 18% of the brain and ET at most 8%)."""
    for folder in list_case_folders(brats2018_dir):
        case = load_case(folder)
        image, labels = case.image, np.asarray(case.seg).astype(np.uint8)
        probs = np.stack([(labels > 0), np.isin(labels, (1, ET)), labels == ET]).astype(np.float32)
        assert (
            plausibility_reasons(probs, labels, "2021", (1, 1, 1), brain_voxel_count(image)) == []
        )


def test_implausible_outputs_are_named(brats2018_case):
    case = brats2018_case
    brain = np.any(case.image != 0, axis=0)
    n_brain = brain_voxel_count(case.image)
    all_et = np.where(brain, ET, 0).astype(np.uint8)
    probs = np.stack([brain, brain, brain]).astype(np.float32)
    reasons = plausibility_reasons(probs, all_et, "2021", case.spacing, n_brain)
    mls = round(n_brain * float(np.prod(case.spacing)) / 1000.0)
    assert any(f"whole tumour of {mls} mL is 100% of the brain's volume" in r for r in reasons)
    assert any("enhancing tumour of" in r and "is 100%" in r for r in reasons), reasons
    nan = np.full_like(probs, np.nan)
    empty = np.zeros(brain.shape, np.uint8)
    assert "not finite" in plausibility_reasons(nan, empty, "2021", case.spacing, n_brain)[0]
    seg = np.asarray(case.seg)
    doubt = np.stack([seg > 0] * 3).astype(np.float32) * 0.33  # one member of three saw it
    (reason,) = plausibility_reasons(doubt, empty, "2021", case.spacing, n_brain)
    assert "no tumour, although 61.1 mL" in reason and "disagree" in reason
    assert plausibility_reasons(doubt * 0, empty, "2021", case.spacing, n_brain) == []


def test_the_needs_review_assessment_carries_the_reason(brats2018_case):
    """What the GUI's Hotspots dock and the worklist show (``assessment_of`` is stored with the
    review session)."""
    case = brats2018_case
    brain = np.any(case.image != 0, axis=0)
    assessment = assessment_of(
        _prediction(np.stack([brain] * 3).astype(np.float32), np.where(brain, ET, 0)), case
    )
    assert assessment is not None and assessment["needs_review"]
    assert assessment["reasons"][0].startswith("Implausible output: whole tumour of")
    seg = np.asarray(case.seg)
    plain = assessment_of(_prediction(np.stack([seg > 0] * 3).astype(np.float32), seg), case)
    assert plain is not None
    assert not any(r.startswith("Implausible") for r in plain["reasons"])


def _wt_et(line: str) -> tuple[float, float]:
    return tuple(float(re.search(rf"{r} ([\d.]+) mL", line).group(1)) for r in ("WT", "ET"))


def test_predict_flags_a_zero_weight_model(brats2018_case_dir, tmp_path, capsys):
    """Probe 2.20: every weight zero labels the whole brain ET; the line says so."""
    model = _edited(tmp_path, "zero", 0.0, 0.0)
    out = tmp_path / "z.nii.gz"
    assert (
        main(["predict", str(brats2018_case_dir), "-o", str(out), "--model", str(model), "-q"]) == 0
    )
    line = capsys.readouterr().out.strip().splitlines()[-1]
    assert re.search(
        r"NEEDS REVIEW: Implausible output: whole tumour of 355\d mL is \d+% of the brain", line
    )
    assert re.search(r"enhancing tumour of 355\d mL", line), line


def test_predict_flags_an_empty_result_of_a_disagreeing_ensemble(
    brats2018_case_dir, tmp_path, capsys
):
    """A real member outvoted by two that never see tumour: WT 0 mL, flagged."""
    silent = _edited(tmp_path, "silent", 0.0, -30.0)
    out = tmp_path / "e.nii.gz"
    args = ["predict", str(brats2018_case_dir), "-o", str(out), "-q", "--model", str(MEMBER)]
    assert main([*args, "--model", str(silent), "--model", str(silent)]) == 0
    line = capsys.readouterr().out.strip().splitlines()[-1]
    assert _wt_et(line)[0] == 0.0
    assert "NEEDS REVIEW: Implausible output: no tumour, although" in line


def test_predict_says_needs_review_for_the_reasons_the_viewer_gives(
    brats2018_dir, tmp_path, capsys
):
    """The summary line of ``predict`` gives the reasons the viewer gives for the same run
    (Segment dock, worklist, report: ``assessment_of``), not the plausibility rules alone: on this
    case the one model finds little enhancing tumour, which the viewer flags."""
    from bratseg.inference import InferenceOptions
    from bratseg.predictor import Predictor

    folder = brats2018_dir / "Brats18_TCIA10_637_1"
    if not MEMBER.is_file() or not folder.is_dir():
        pytest.skip("bundled checkpoint or case Brats18_TCIA10_637_1 absent")
    out = tmp_path / "p.nii.gz"
    args = ["predict", str(folder), "-o", str(out), "--model", str(MEMBER), "-q", "--threads", "2"]
    assert main(args) == 0
    line = capsys.readouterr().out.strip().splitlines()[-1]
    case = load_case(folder, load_seg=False)
    prediction = Predictor.from_names([MEMBER], InferenceOptions(threads=2)).predict(case)
    viewer = assessment_of(prediction, case)
    assert viewer is not None and viewer["reasons"], viewer
    assert any(r.startswith("Little enhancing tumour") for r in viewer["reasons"])
    assert line.endswith("NEEDS REVIEW: " + " ".join(viewer["reasons"])), (line, viewer)
