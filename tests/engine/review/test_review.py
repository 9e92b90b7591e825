"""Review sessions (engine, no Qt): edits survive new settings and new model runs, undo releases
them, and the autosave restores them exactly, even after the process dies mid-review."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from bratseg.errors import BratsInputError
from bratseg.postprocess import PostprocessConfig, postprocess
from bratseg.review import ModelInfo, ReviewSession, SessionStore, case_key

REPO = Path(__file__).resolve().parents[3]


class _Case:
    """The parts of a :class:`bratseg.io.Case` a session uses (synthetic, tiny)."""

    def __init__(self, folder: Path, shape=(12, 10, 8)) -> None:
        self.case_id = folder.name
        self.folder = folder
        self.image = np.zeros((4, *shape), np.float32)
        self.affine = np.diag([-1.0, -1.0, 1.0, 1.0])
        self.header = nib.Nifti1Header()
        self.spacing = (1.0, 1.0, 1.0)
        folder.mkdir(parents=True, exist_ok=True)
        self.files = {}
        for m in ("t1", "t1ce", "t2", "flair"):
            path = folder / f"{folder.name}_{m}.nii.gz"
            path.write_bytes(m.encode() * 10)
            self.files[m] = path


class _Prediction:
    def __init__(self, probs: np.ndarray, config: PostprocessConfig) -> None:
        self.region_probs = probs
        self.postprocess = config
        self.convention = "2021"
        self.labels = postprocess(probs, config, convention="2021")
        self.class_probs = None


def _probs(shape=(12, 10, 8), shift: int = 0) -> np.ndarray:
    probs = np.zeros((3, *shape), np.float16)
    probs[0, 2 + shift : 9 + shift, 2:8, 2:6] = 0.9
    probs[1, 3 + shift : 7 + shift, 3:7, 3:5] = 0.8
    probs[2, 4 + shift : 6 + shift, 4:6, 3:5] = 0.95
    return probs


CFG = PostprocessConfig(et_component_rule=False)


def _session(tmp_path: Path) -> ReviewSession:
    case = _Case(tmp_path / "Case_1")
    return ReviewSession.from_prediction(
        case, _Prediction(_probs(), CFG), ModelInfo(["m"], ["m.pt"], ["abc"])
    )


def test_edits_survive_settings_and_undone_edits_follow_the_proposal_again(tmp_path: Path) -> None:
    s = _session(tmp_path)
    s.labels[0, 0, 0] = 1  # paint NCR far from the tumour
    s.labels[5, 5, 4] = 2  # repaint an ET voxel as ED
    assert s.record_edits() == 2
    s.apply_config(PostprocessConfig(wt_threshold=0.95, et_component_rule=False))  # WT vanishes
    assert s.labels[0, 0, 0] == 1 and s.labels[5, 5, 4] == 2
    assert s.labels[3, 3, 3] == 0 and s.proposal[3, 3, 3] == 0
    # undo of the first stroke: the layer restores the old value, the session releases the voxel
    s.labels[0, 0, 0] = s.proposal[0, 0, 0]
    assert s.forget_undone((np.array([0]), np.array([0]), np.array([0]))) == 1
    s.apply_config(CFG)
    assert (
        s.labels[0, 0, 0] == 0
        and s.labels[5, 5, 4] == 2
        and s.labels[3, 3, 3] == s.proposal[3, 3, 3] == 1
    )
    assert (
        s.edited_voxels()["ed"] == {"added": 1, "removed": 0}
        and s.edited_voxels()["et"]["removed"] == 1
    )


def test_a_new_model_run_keeps_the_edits_in_place_or_discards_them(tmp_path: Path) -> None:
    s = _session(tmp_path)
    layer_memory = s.labels
    s.labels[0, 0, 0] = 4
    new = _Prediction(_probs(shift=2), CFG)
    assert s.replace_prediction(new, ModelInfo(["other"], ["o.pt"], ["def"])) == 1
    assert s.labels is layer_memory  # updated in place: a viewer's undo history stays valid
    assert s.labels[0, 0, 0] == 4 and s.model.names == ["other"]
    expected = new.labels.copy()
    expected[0, 0, 0] = 4
    assert np.array_equal(s.labels, expected)
    assert s.replace_prediction(new, s.model, keep_edits=False) == 0
    assert np.array_equal(s.labels, new.labels)


def test_store_round_trip_is_exact_and_cleans_up(tmp_path: Path) -> None:
    store = SessionStore(tmp_path / "sessions")
    s = _session(tmp_path)
    first = store.save(s)
    s.labels[1:3, 1:3, 1] = 2
    saved = store.save(s)
    assert saved.key == first.key == case_key(s.case.files)
    assert sorted(p.name for p in saved.folder.iterdir()) == sorted(
        ["session.json", saved.meta["proposal_file"], saved.meta["edits_file"]]
    )
    labels, proposal, overrides = store.load_arrays(store.find("Case_1"))
    assert np.array_equal(labels, s.labels) and np.array_equal(proposal, s.proposal)
    assert np.array_equal(overrides, s.overrides) and overrides.sum() == 4
    restored = store.restore(store.get(saved.key), s.case)
    assert restored.region_probs is None and restored.n_edited == 4
    assert restored.config == s.config and restored.model.names == ["m"]
    with pytest.raises(ValueError, match="segment the case again"):
        restored.apply_config(CFG)
    # a new model run on the restored session keeps the saved edits
    assert restored.replace_prediction(_Prediction(_probs(), CFG), s.model) == 4
    row = store.list()[0].summary()
    assert row["case_id"] == "Case_1" and row["n_edited"] == 4 and row["exported"] is False
    with pytest.raises(BratsInputError, match="no saved review session"):
        store.find("nope")


def test_the_case_is_identified_by_its_image_bytes_not_its_path(tmp_path: Path) -> None:
    s = _session(tmp_path)
    key = case_key(s.case.files)
    moved = tmp_path / "elsewhere"
    os.rename(s.case.folder, moved)
    assert case_key({m: moved / p.name for m, p in s.case.files.items()}) == key
    (moved / s.case.files["flair"].name).write_bytes(b"another scan")
    assert case_key({m: moved / p.name for m, p in s.case.files.items()}) != key


def test_export_flag_is_reset_by_a_later_edit(tmp_path: Path) -> None:
    store = SessionStore(tmp_path / "sessions")
    s = _session(tmp_path)
    saved = store.save(s)
    store.mark_exported(saved.key, tmp_path / "out.nii.gz")
    assert store.get(saved.key).meta["exported"] is True
    assert store.save(s).meta["exported"] is True  # nothing changed since the export
    s.labels[0, 0, 1] = 1
    assert store.save(s).meta["exported"] is False


_CRASHING_REVIEW = """
import os, sys
import numpy as np
from bratseg.io import load_case
from bratseg.postprocess import PostprocessConfig
from bratseg.review import ModelInfo, ReviewSession, SessionStore
from bratseg.labels import regions_to_stack

class P:  # a prediction made from the expert label's regions (probabilities 0.9 inside)
    pass

case = load_case(sys.argv[1])
p = P()
p.region_probs = (regions_to_stack(case.seg, case.seg_convention) * np.float16(0.9)).astype(np.float16)
p.postprocess = PostprocessConfig()
p.convention = "2021"
from bratseg.postprocess import postprocess
p.labels = postprocess(p.region_probs, p.postprocess, convention="2021")
p.class_probs = None
session = ReviewSession.from_prediction(case, p, ModelInfo(["expert-as-model"], [], []))
session.labels[100:110, 100:110, 70:75] = 1   # a brush stroke: 500 voxels of NCR
session.labels[session.labels == 4] = 1       # and every ET relabelled NCR
SessionStore().save(session)
os._exit(3)                                   # the process dies: no cleanup, no atexit
"""


@pytest.mark.slow
def test_edits_are_recovered_after_the_process_dies(
    brats2018_case_dir: Path, tmp_path: Path
) -> None:
    from bratseg.io import load_case
    from bratseg.labels import LABEL_VALUES

    env = {**os.environ, "BRATSEG_SESSIONS": str(tmp_path / "sessions"), "PYTHONWARNINGS": "ignore"}
    crash = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(_CRASHING_REVIEW), str(brats2018_case_dir)],
        env=env,
        capture_output=True,
        encoding="utf-8",
        errors="replace",
        timeout=300,
    )
    assert crash.returncode == 3, crash.stderr
    listing = subprocess.run(
        [sys.executable, "-m", "bratseg.cli.main", "sessions", "--json"],
        env=env,
        capture_output=True,
        encoding="utf-8",
        errors="replace",
        timeout=120,
    )
    assert listing.returncode == 0, listing.stderr
    [row] = json.loads(listing.stdout)["sessions"]
    case = load_case(brats2018_case_dir)
    assert row["case_id"] == case.case_id and row["exported"] is False
    n_et = int((case.seg == LABEL_VALUES["2021"]["et"]).sum())
    assert row["edited_voxels"]["ncr"]["added"] >= n_et and row["n_edited"] > n_et
    out = tmp_path / "recovered.nii.gz"
    export = subprocess.run(
        [
            sys.executable,
            "-m",
            "bratseg.cli.main",
            "sessions",
            "export",
            case.case_id,
            "-o",
            str(out),
        ],
        env=env,
        capture_output=True,
        encoding="utf-8",
        errors="replace",
        timeout=120,
    )
    assert export.returncode == 0, export.stderr
    recovered = nib.load(out)
    expected = case.seg.copy()
    expected[100:110, 100:110, 70:75] = 1
    expected[expected == 4] = 1
    assert np.array_equal(np.asarray(recovered.dataobj), expected)
    np.testing.assert_allclose(recovered.affine, case.affine)
    again = subprocess.run(
        [
            sys.executable,
            "-m",
            "bratseg.cli.main",
            "sessions",
            "export",
            case.case_id,
            "-o",
            str(out),
        ],
        env=env,
        capture_output=True,
        encoding="utf-8",
        errors="replace",
        timeout=120,
    )
    assert (
        again.returncode == 2
        and again.stderr.count("\n") == 1
        and "refusing to overwrite" in again.stderr
    )
    missing = subprocess.run(
        [
            sys.executable,
            "-m",
            "bratseg.cli.main",
            "sessions",
            "export",
            "Nope",
            "-o",
            str(tmp_path / "x.nii.gz"),
        ],
        env=env,
        capture_output=True,
        encoding="utf-8",
        errors="replace",
    )
    assert missing.returncode == 2 and "no saved review session" in missing.stderr
    assert not (tmp_path / "x.nii.gz").exists()
    listed = subprocess.run(
        [sys.executable, "-m", "bratseg.cli.main", "sessions", "--json"],
        env=env,
        capture_output=True,
        encoding="utf-8",
        errors="replace",
    )
    assert json.loads(listed.stdout)["sessions"][0]["exported"] is True


def test_a_model_run_carries_its_needs_review_assessment_through_the_store(tmp_path: Path) -> None:
    from bratseg.review.uncertainty import assess_case

    s = _session(tmp_path)
    want = assess_case(_probs(), s.proposal, (1.0, 1.0, 1.0), "2021").to_dict()
    assert s.assessment == want and isinstance(s.assessment["needs_review"], bool)
    store = SessionStore(tmp_path / "sessions")
    saved = store.save(s)
    assert saved.meta["assessment"] == want  # the worklist's flag column reads it from here
    restored = store.restore(store.get(saved.key), s.case)
    assert restored.assessment == want
    given = {"needs_review": True, "reasons": ["given by the caller"]}
    restored.replace_prediction(_Prediction(_probs(shift=1), CFG), s.model, assessment=given)
    assert store.save(restored).meta["assessment"] == given
    restored.replace_prediction(_Prediction(_probs(), CFG), s.model, assessment=None)
    assert restored.assessment is None
    with pytest.raises(ValueError, match="assessment must be"):
        ReviewSession.from_prediction(s.case, _Prediction(_probs(), CFG), s.model, assessment="x")
