"""``prepare`` on the real raw clinical case (TCGA-FG-6692: skull, own grids, 5.5 mm slices, patient
motion between series): a BraTS-ready case folder that passes the input check, with provenance,
QC and transforms; labels carried back into the native T1Gd and FLAIR grids keep their volumes;
unusable input is one line, exit 2, nothing written.

To stay fast, the series are a copy decimated 2x in-plane (1.8 x 1.8 x 5.5 mm); the full-size
run, with the Dice values against BrainLes' preprocessing, is ``bench/bench_prepare.py``.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

pytest.importorskip("SimpleITK")
pytest.importorskip("deepbet", reason="brain extraction needs deepbet (napari-brats[prepare])")

from bratseg.cli.main import main  # noqa: E402
from bratseg.io import load_case  # noqa: E402
from bratseg.prepare import (  # noqa: E402
    PrepareOptions,
    iter_prepare,
    labels_to_native,
    pick_series,
    prepare,
)

pytestmark = pytest.mark.slow


def _decimated(src: Path, dest: Path, step: int = 2) -> None:
    img = nib.load(src)
    affine = img.affine.copy()
    affine[:3, :2] *= step
    data = np.asarray(img.dataobj)[::step, ::step, :]
    nib.save(nib.Nifti1Image(data, affine), dest)


@pytest.fixture(scope="module")
def raw_small(raw_clinical_map, tmp_path_factory) -> Path:
    """The four raw series decimated 2x in-plane, with their original file names."""
    folder = tmp_path_factory.mktemp("raw") / "TCGA-FG-6692"
    folder.mkdir()
    for path in raw_clinical_map.values():
        _decimated(path, folder / path.name.replace(".nii.gz", ".nii"))  # .nii: quicker
    return folder


@pytest.fixture(scope="module")
def prepared(raw_small, tmp_path_factory):
    """The decimated copy prepared without N4 (quicker; the bench runs every step)."""
    return prepare(
        raw_small, tmp_path_factory.mktemp("out") / "case", options=PrepareOptions(n4=False)
    )


def test_series_are_picked_from_names(raw_small: Path) -> None:
    files = pick_series(raw_small)
    assert files["t1ce"].name.endswith("_t1c.nii")
    assert files["flair"].name.endswith("_fla.nii")  # from "FLAIR" in the protocol name
    assert files["t1"].name.endswith("_t1.nii") and files["t2"].name.endswith("_t2.nii")


def test_prepared_folder_is_brats_ready(prepared, capsys) -> None:
    folder = prepared.folder
    case = load_case(folder, load_seg=False)
    assert case.findings == []
    assert case.spacing == (1.0, 1.0, 1.0)
    assert "".join(nib.aff2axcodes(case.affine)) == "LPS"  # the BraTS orientation
    prov = json.loads((folder / "prepare.json").read_text())
    assert [s["step"] for s in prov["steps"]][-4:] == [
        "register flair",
        "resample",
        "brain extraction",
        "write",
    ]
    assert all(s["seconds"] >= 0 for s in prov["steps"])
    assert 1_300 <= prov["qc"]["brain_ml"] <= 2_000  # HD-BET on the full-size series: 1,603 mL
    assert prov["qc"]["needs_review"] == []
    assert len(prov["qc"]["registration"]) == 3
    assert prov["versions"]["deepbet"]
    for key in ("t1", "t2", "flair"):
        assert (folder / prov["sources"][key]["transform"]).is_file()
    mask = np.asarray(nib.load(next(folder.glob("*_brainmask.nii.gz"))).dataobj) > 0
    assert np.all(case.image[:, ~mask] == 0)  # skull-stripped with that mask
    assert not list(folder.parent.glob(".case.*"))  # no temporary folder left
    assert main(["info", str(folder)]) == 0
    text = capsys.readouterr().out
    assert "Input check  BraTS-ready" in text and "needs review: none" in text


@pytest.mark.parametrize("series", ["t1ce", "flair"])
def test_labels_back_in_native_grid_keep_their_volume(prepared, series: str) -> None:
    folder = prepared.folder
    mask_img = nib.load(next(folder.glob("*_brainmask.nii.gz")))
    mask = np.asarray(mask_img.dataobj).astype(np.uint8)
    labels = np.zeros_like(mask)  # a 30 mL "tumour" inside the brain, and the rest of the brain
    centre = np.argwhere(mask).mean(0).astype(int)
    grid = np.indices(mask.shape) - centre[:, None, None, None]
    labels[(grid**2).sum(0) <= 19**2] = 4
    labels[(labels == 0) & (mask > 0)] = 2
    out = labels_to_native(labels, mask_img.affine, folder, series)
    source = json.loads((folder / "prepare.json").read_text())["sources"][series]
    assert list(out.shape) == source["shape"]
    np.testing.assert_allclose(out.affine, source["affine"], atol=1e-5)
    native = np.asarray(out.dataobj)
    voxel_ml = float(np.prod(out.header.get_zooms()[:3])) / 1000.0
    for value in (2, 4):
        prepared_ml = float((labels == value).sum()) / 1000.0
        native_ml = float((native == value).sum()) * voxel_ml
        assert native_ml == pytest.approx(prepared_ml, rel=0.04), value


def test_predict_native_matches_prepared_volumes(standin, prepared, tmp_path, capsys) -> None:
    model = standin.save_standin(tmp_path / "standin.pt", "regions")
    a, b = tmp_path / "prepared.nii.gz", tmp_path / "native.nii.gz"
    folder = str(prepared.folder)
    assert main(["predict", folder, "-o", str(a), "--model", str(model), "-q"]) == 0
    assert main(["predict", folder, "-o", str(b), "--model", str(model), "-q", "--native"]) == 0
    pa, pb = nib.load(a), nib.load(b)
    assert pb.shape == tuple(
        json.loads((prepared.folder / "prepare.json").read_text())["sources"]["t1ce"]["shape"]
    )
    va, vb = np.asarray(pa.dataobj), np.asarray(pb.dataobj)
    ml_b = float(np.prod(pb.header.get_zooms()[:3])) / 1000.0
    for region in ((1, 2, 4), (1, 4)):
        vol_a = float(np.isin(va, region).sum()) / 1000.0
        assert vol_a > 1.0
        assert float(np.isin(vb, region).sum()) * ml_b == pytest.approx(vol_a, rel=0.05)


def test_unusable_input_one_line_exit_2_nothing_written(
    raw_small: Path, tmp_path: Path, capsys
) -> None:
    partial = tmp_path / "three"
    partial.mkdir()
    for path in raw_small.iterdir():
        if not path.name.endswith("_fla.nii"):
            shutil.copy(path, partial / path.name)
    out = tmp_path / "case"
    assert main(["prepare", str(partial), "-o", str(out), "-q"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no series found for FLAIR" in err[0] and "--map" in err[0]
    assert not out.exists() and list(tmp_path.iterdir()) == [partial]

    shutil.copy(next(raw_small.glob("*_fla.nii")), partial / "second_FLAIR_ax.nii")
    shutil.copy(next(raw_small.glob("*_fla.nii")), partial / "FLAIR_cor.nii")
    assert main(["prepare", str(partial), "-o", str(out), "-q"]) == 2
    err = capsys.readouterr().err.strip()
    assert "several series look like FLAIR" in err and "FLAIR_cor.nii" in err
    assert not out.exists()


def test_existing_output_is_refused(raw_small: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "case"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    assert main(["prepare", str(raw_small), "-o", str(out), "-q"]) == 2
    assert "exists and is not empty" in capsys.readouterr().err
    assert [p.name for p in out.iterdir()] == ["keep.txt"]


def test_cancel_leaves_nothing(raw_small: Path, tmp_path: Path) -> None:
    out = tmp_path / "case"
    job = iter_prepare(raw_small, out)
    for _ in range(6):  # into the registrations
        next(job)
    job.close()
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_predict_prepare_writes_labels_in_the_native_t1gd_grid(
    standin, raw_clinical_map, tmp_path: Path, capsys
) -> None:
    raw_small = tmp_path / "TCGA-FG-6692"  # decimated 4x in-plane: N4 and registration quicker
    raw_small.mkdir()
    for path in raw_clinical_map.values():
        _decimated(path, raw_small / path.name.replace(".nii.gz", ".nii"), step=4)
    model = standin.save_standin(tmp_path / "standin.pt", "regions")
    out = tmp_path / "seg.nii.gz"
    rc = main(["predict", str(raw_small), "-o", str(out), "--prepare", "--model", str(model), "-q"])
    assert rc == 0
    t1ce = nib.load(next(raw_small.glob("*_t1c.nii")))
    seg = nib.load(out)
    assert seg.shape == t1ce.shape
    np.testing.assert_allclose(seg.affine, t1ce.affine, atol=1e-4)
    assert np.asarray(seg.dataobj).any()
    assert "TCGA-FG-6692" in capsys.readouterr().out
    assert set(tmp_path.iterdir()) == {tmp_path / "standin.pt", out, raw_small}  # nothing else


@pytest.mark.parametrize("target", ["t1", "new_t1ce"])
def test_predict_prepare_never_replaces_or_adds_a_raw_series(
    raw_small: Path, tmp_path: Path, target: str, capsys
) -> None:
    raw = tmp_path / "raw"
    shutil.copytree(raw_small, raw)
    t1 = next(raw.glob("*_t1.nii"))
    out = t1 if target == "t1" else raw / "pred_t1ce.nii.gz"
    before = {p.name: p.read_bytes() for p in raw.iterdir()}
    rc = main(["predict", str(raw), "--prepare", "--overwrite", "-o", str(out), "-q"])
    assert rc == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(out) in err[0]
    assert {p.name: p.read_bytes() for p in raw.iterdir()} == before


def test_a_killed_prepares_hidden_folder_is_removed_by_the_next_run(
    raw_small: Path, tmp_path: Path
) -> None:
    import os
    import time

    stale = tmp_path / ".case.99999999-k2j4_x8q"  # written by a process that no longer runs
    stale.mkdir()
    (stale / "case_t1.nii.gz").write_bytes(b"partial")
    old = time.time() - 3600
    os.utime(stale, (old, old))
    partial = tmp_path / "three"
    partial.mkdir()
    for path in raw_small.iterdir():
        if not path.name.endswith("_fla.nii"):
            shutil.copy(path, partial / path.name)
    assert main(["prepare", str(partial), "-o", str(tmp_path / "case"), "-q"]) == 2  # no FLAIR
    assert sorted(p.name for p in tmp_path.iterdir()) == ["three"]


def test_an_absurd_slice_spacing_is_refused_before_any_work(
    raw_small: Path, tmp_path: Path, capsys
) -> None:
    """5.5 m between slices: the 1 mm grid would need billions of voxels. One line naming the
    series, exit 2, nothing written (it used to run the registrations, then fail to allocate)."""
    raw = tmp_path / "raw"
    shutil.copytree(raw_small, raw)
    t1c = next(raw.glob("*_t1c.nii"))
    img = nib.load(t1c)
    affine = img.affine.copy()
    affine[:3, 2] *= 1000.0
    data = np.array(img.dataobj)  # a copy: the file is memory-mapped
    t1c.unlink()
    nib.save(nib.Nifti1Image(data, affine), t1c)
    out = tmp_path / "case"
    assert main(["prepare", str(raw), "-o", str(out), "-q"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(t1c) in err[0] and "slice spacing" in err[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["raw"]


@pytest.mark.parametrize("what", ["case", "dataset"])
def test_predict_native_is_refused_before_any_work_where_it_cannot_apply(
    brats2018_case_dir: Path, tmp_path: Path, what: str, capsys
) -> None:
    """A BraTS case (no prepare.json) or a folder of cases: refused before the models load (the
    missing model would otherwise be reported first), never silently written in the BraTS grid."""
    source = brats2018_case_dir if what == "case" else brats2018_case_dir.parent
    out = tmp_path / ("seg.nii.gz" if what == "case" else "segs")
    missing_model = tmp_path / "no-such-model.pt"
    rc = main(["predict", str(source), "-o", str(out), "--native", "--model", str(missing_model)])
    assert rc == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--native needs one case folder written by" in err[0]
    assert list(tmp_path.iterdir()) == []
