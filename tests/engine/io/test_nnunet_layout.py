"""nnU-Net v2 raw layout: real cases round-trip exactly, dataset.json is what nnU-Net expects,
and the trainer reads the layout directly."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from bratseg.errors import BratsInputError
from bratseg.io.nnunet import read_nnunet_dataset
from bratseg.labels import convert_labels

CASES = ("Brats18_2013_2_1", "Brats18_TCIA02_135_1")


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "bratseg.cli.main", *args],
        capture_output=True,
        encoding="utf-8",
        errors="replace",
    )


@pytest.fixture(scope="module")
def converted(
    brats2018_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, Path, Path]:
    root = tmp_path_factory.mktemp("nnunet")
    src = root / "src"
    src.mkdir()
    for case in CASES:
        (src / case).symlink_to((brats2018_dir / case).resolve(), target_is_directory=True)
    nn = root / "Dataset501_BraTS"
    proc = _cli("convert-dataset", str(src), str(nn), "--to", "nnunet")
    assert proc.returncode == 0, proc.stderr
    back = root / "back"
    proc = _cli("convert-dataset", str(nn), str(back), "--to", "brats2021")
    assert proc.returncode == 0, proc.stderr
    return src, nn, back


def test_the_layout_and_dataset_json(converted) -> None:
    src, nn, _ = converted
    meta = json.loads((nn / "dataset.json").read_text())
    assert meta["channel_names"] == {"0": "T1", "1": "T1ce", "2": "T2", "3": "Flair"}
    assert meta["labels"] == {
        "background": 0,
        "whole tumor": [1, 2, 3],
        "tumor core": [2, 3],
        "enhancing tumor": [3],
    }
    assert meta["regions_class_order"] == [1, 2, 3] and meta["file_ending"] == ".nii.gz"
    assert meta["numTraining"] == len(CASES)
    assert sorted(p.name for p in (nn / "imagesTr").iterdir()) == sorted(
        f"{c}_{k:04d}.nii.gz" for c in CASES for k in range(4)
    )
    case = CASES[0]
    for k, m in enumerate(("t1", "t1ce", "t2", "flair")):  # images copied byte for byte
        assert (nn / "imagesTr" / f"{case}_{k:04d}.nii.gz").read_bytes() == (
            src / case / f"{case}_{m}.nii.gz"
        ).read_bytes()
    seg = nib.load(src / case / f"{case}_seg.nii.gz")
    lab = nib.load(nn / "labelsTr" / f"{case}.nii.gz")
    expected = convert_labels(np.asarray(seg.dataobj), "2021", "nnunet")  # 1 ED, 2 NCR, 3 ET
    assert np.array_equal(np.asarray(lab.dataobj), expected) and set(np.unique(expected)) == {
        0,
        1,
        2,
        3,
    }
    np.testing.assert_allclose(lab.affine, seg.affine)
    assert [c.case_id for c in read_nnunet_dataset(nn)] == sorted(CASES)


def test_labels_round_trip_exactly(converted) -> None:
    src, _, back = converted
    for case in CASES:
        a = nib.load(src / case / f"{case}_seg.nii.gz")
        b = nib.load(back / case / f"{case}_seg.nii.gz")
        assert np.array_equal(np.asarray(a.dataobj).astype(np.uint8), np.asarray(b.dataobj))
        np.testing.assert_allclose(a.affine, b.affine)


def test_the_trainer_reads_the_layout(converted, tmp_path: Path) -> None:
    from bratseg.preprocess import PreprocessConfig
    from bratseg.training import discover_cases
    from bratseg.training.data import load_cases

    src, nn, _ = converted
    refs = discover_cases([nn])
    assert [r.case_id for r in refs] == sorted(CASES) and all(r.labels == "nnunet" for r in refs)
    [cached] = load_cases(
        [r for r in refs if r.case_id == CASES[0]],
        PreprocessConfig(target_spacing=3.0),
        tmp_path / "cache",
    )
    [direct] = load_cases(
        [r for r in discover_cases([src]) if r.case_id == CASES[0]],
        PreprocessConfig(target_spacing=3.0),
        tmp_path / "cache2",
    )
    assert np.array_equal(cached.label, direct.label) and np.array_equal(cached.image, direct.image)


def test_refusals(converted, tmp_path: Path) -> None:
    src, nn, _ = converted
    proc = _cli("convert-dataset", str(src), str(nn), "--to", "nnunet")
    assert (
        proc.returncode == 2
        and "refusing to overwrite" in proc.stderr
        and proc.stderr.count("\n") == 1
    )
    bad = tmp_path / "bad"
    (bad / "imagesTr").mkdir(parents=True)
    (bad / "dataset.json").write_text(
        json.dumps({"channel_names": {"0": "CT"}, "file_ending": ".nii.gz"})
    )
    with pytest.raises(BratsInputError, match="not one of T1"):
        read_nnunet_dataset(bad)


def test_reviewed_cases_are_added_to_an_nnunet_dataset_one_by_one(
    brats2018_dir: Path, tmp_path: Path
) -> None:
    from bratseg.io import load_case
    from bratseg.io.nnunet import add_case_to_nnunet_dataset

    dest = tmp_path / "Dataset502_Corrected"
    for i, case_id in enumerate(CASES):
        case = load_case(brats2018_dir / case_id)
        edited = case.seg.copy()
        edited[100:104, 100:104, 70:72] = 1  # a hand correction
        add_case_to_nnunet_dataset(case, edited, "2021", dest, provenance={"reviewer": "test"})
        meta = json.loads((dest / "dataset.json").read_text())
        assert meta["numTraining"] == i + 1 and meta["channel_names"]["1"] == "T1ce"
        back = np.asarray(nib.load(dest / "labelsTr" / f"{case_id}.nii.gz").dataobj)
        assert np.array_equal(convert_labels(back, "nnunet", "2021"), edited)
    assert [c.case_id for c in read_nnunet_dataset(dest)] == sorted(CASES)
    assert json.loads((dest / "provenance" / f"{CASES[0]}.json").read_text()) == {
        "reviewer": "test"
    }
    with pytest.raises(FileExistsError):
        add_case_to_nnunet_dataset(load_case(brats2018_dir / CASES[0]), edited, "2021", dest)
    assert not list(dest.rglob(".*.tmp"))


def test_the_export_dock_writes_the_nnunet_layout(
    make_napari_viewer, brats2018_dir: Path, tmp_path: Path
) -> None:
    pytest.importorskip("napari")
    from bratseg.io import load_case
    from bratseg.labels import regions_to_stack
    from bratseg.postprocess import PostprocessConfig, postprocess
    from bratseg.review import ModelInfo, ReviewSession
    from napari_brats._state import viewer_state
    from napari_brats._widgets.export import ExportWidget

    class Expert:  # the expert label's regions as probabilities: a known proposal
        pass

    case = load_case(brats2018_dir / CASES[0])
    p = Expert()
    p.region_probs = (regions_to_stack(case.seg, "2021") * np.float16(0.9)).astype(np.float16)
    p.postprocess, p.convention, p.class_probs = PostprocessConfig(), "2021", None
    p.labels = postprocess(p.region_probs, p.postprocess, convention="2021")
    viewer = make_napari_viewer()
    dock = ExportWidget(viewer)
    state = viewer_state(viewer)
    state.autosave_enabled = False
    session = ReviewSession.from_prediction(case, p, ModelInfo(["expert"], [], []))
    session.labels[0:3, 0:3, 0:3] = 2
    state.set_session(session)
    dock.layout_combo.setCurrentText("nnU-Net dataset")
    written = dock.export(tmp_path / "Dataset503", overwrite=False)
    assert written == tmp_path / "Dataset503" / "labelsTr" / f"{CASES[0]}.nii.gz"
    back = convert_labels(np.asarray(nib.load(written).dataobj), "nnunet", "2021")
    assert np.array_equal(back, session.labels)
    assert dock.export(tmp_path / "Dataset503", overwrite=False) is None  # exists: kept as is
