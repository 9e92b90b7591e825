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
    return subprocess.run([sys.executable, "-m", "bratseg.cli.main", *args], capture_output=True, text=True)


@pytest.fixture(scope="module")
def converted(brats2018_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
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
    assert meta["labels"] == {"background": 0, "whole tumor": [1, 2, 3], "tumor core": [2, 3], "enhancing tumor": [3]}
    assert meta["regions_class_order"] == [1, 2, 3] and meta["file_ending"] == ".nii.gz"
    assert meta["numTraining"] == len(CASES)
    assert sorted(p.name for p in (nn / "imagesTr").iterdir()) == sorted(
        f"{c}_{k:04d}.nii.gz" for c in CASES for k in range(4))
    case = CASES[0]
    for k, m in enumerate(("t1", "t1ce", "t2", "flair")):  # images copied byte for byte
        assert (nn / "imagesTr" / f"{case}_{k:04d}.nii.gz").read_bytes() == (src / case / f"{case}_{m}.nii.gz").read_bytes()
    seg = nib.load(src / case / f"{case}_seg.nii.gz")
    lab = nib.load(nn / "labelsTr" / f"{case}.nii.gz")
    expected = convert_labels(np.asarray(seg.dataobj), "2021", "nnunet")  # 1 ED, 2 NCR, 3 ET
    assert np.array_equal(np.asarray(lab.dataobj), expected) and set(np.unique(expected)) == {0, 1, 2, 3}
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
    [cached] = load_cases([r for r in refs if r.case_id == CASES[0]], PreprocessConfig(target_spacing=3.0),
                          tmp_path / "cache")
    [direct] = load_cases([r for r in discover_cases([src]) if r.case_id == CASES[0]],
                          PreprocessConfig(target_spacing=3.0), tmp_path / "cache2")
    assert np.array_equal(cached.label, direct.label) and np.array_equal(cached.image, direct.image)


def test_refusals(converted, tmp_path: Path) -> None:
    src, nn, _ = converted
    proc = _cli("convert-dataset", str(src), str(nn), "--to", "nnunet")
    assert proc.returncode == 2 and "refusing to overwrite" in proc.stderr and proc.stderr.count("\n") == 1
    bad = tmp_path / "bad"
    (bad / "imagesTr").mkdir(parents=True)
    (bad / "dataset.json").write_text(json.dumps({"channel_names": {"0": "CT"}, "file_ending": ".nii.gz"}))
    with pytest.raises(BratsInputError, match="not one of T1"):
        read_nnunet_dataset(bad)
