"""Case discovery, loading and validation on real BraTS files (bratseg.io)."""

from __future__ import annotations

import gzip
import os
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from bratseg.errors import BratsInputError
from bratseg.io import (
    AFFINE_TOLERANCE,
    MODALITIES,
    find_case_files,
    list_case_folders,
    load_case,
    load_label_map,
    match_modality,
)

CHANNEL_SUFFIX_2018 = {"t1": "t1", "t1ce": "t1ce", "t2": "t2", "flair": "flair", "seg": "seg"}


def _file(case_dir: Path, key: str) -> Path:
    return case_dir / f"{case_dir.name}_{CHANNEL_SUFFIX_2018[key]}.nii.gz"


@pytest.fixture(scope="module")
def t2_volume(brats2018_case_dir: Path) -> nib.Nifti1Image:
    """The real T2 image, fully read once (to derive bad files from)."""
    img = nib.load(_file(brats2018_case_dir, "t2"))
    return nib.Nifti1Image(np.asanyarray(img.dataobj), img.affine, img.header)


def _linked_case(src: Path, dst: Path, skip: tuple[str, ...] = ()) -> Path:
    """A case folder in ``dst`` made of symlinks to the real files, minus ``skip`` channels."""
    dst.mkdir(parents=True, exist_ok=True)
    for key in (*MODALITIES, "seg"):
        if key not in skip:
            (dst / f"case_{key}.nii.gz").symlink_to(_file(src, key))
    return dst


# ----------------------------------------------------------------------------- loading


def test_load_brats2018_case(brats2018_case, brats2018_case_dir: Path) -> None:
    case = brats2018_case
    x, y, z = case.shape
    assert case.shape == (240, 240, 155)
    assert case.image.dtype == np.float32
    assert case.image.shape == (4, x, y, z)
    assert case.image.nbytes == 4 * 4 * x * y * z  # one float32 copy, no float64
    assert case.image.flags.c_contiguous
    assert case.case_id == brats2018_case_dir.name
    assert case.spacing == (1.0, 1.0, 1.0)
    assert set(case.files) == {*MODALITIES, "seg"}
    assert case.files["t1"].name.endswith("_t1.nii.gz")
    assert case.files["t1ce"].name.endswith("_t1ce.nii.gz")
    ref_t1 = nib.load(case.files["t1"])
    np.testing.assert_array_equal(case.affine, ref_t1.affine)
    assert case.header["dim"][1:4].tolist() == [240, 240, 155]
    t1ce = np.asanyarray(nib.load(case.files["t1ce"]).dataobj)  # channel order T1, T1Gd, ...
    np.testing.assert_array_equal(case.image[1], t1ce.astype(np.float32))
    assert not np.array_equal(case.image[0], case.image[1])
    assert case.seg is not None and case.seg.dtype == np.uint8 and case.seg.shape == case.shape
    assert set(np.unique(case.seg).tolist()) == {0, 1, 2, 4}
    assert case.seg_convention == "2021"
    assert case.folder == brats2018_case_dir


def test_load_brats2023_named_case(brats2023_case_dir: Path) -> None:
    case = load_case(brats2023_case_dir)
    assert case.image.shape == (4, 240, 240, 155) and case.image.dtype == np.float32
    assert case.image.nbytes == 4 * 4 * 240 * 240 * 155
    names = {k: p.name for k, p in case.files.items()}
    assert names["t1"].endswith("-t1n.nii.gz")
    assert names["t1ce"].endswith("-t1c.nii.gz")
    assert names["t2"].endswith("-t2w.nii.gz")
    assert names["flair"].endswith("-t2f.nii.gz")
    assert names["seg"].endswith("-seg.nii.gz")
    flair = np.asanyarray(nib.load(case.files["flair"]).dataobj)
    np.testing.assert_array_equal(case.image[3], flair.astype(np.float32))
    assert case.seg_convention == "2023"  # ET = 3
    assert 3 in np.unique(case.seg)


@pytest.mark.parametrize(
    ("name", "key"),
    [
        ("Brats18_2013_2_1_t1.nii.gz", "t1"),
        ("Brats18_2013_2_1_t1ce.nii.gz", "t1ce"),
        ("Brats18_2013_2_1_t2.nii", "t2"),
        ("Brats18_2013_2_1_flair.nii.gz", "flair"),
        ("Brats18_2013_2_1_seg.nii.gz", "seg"),
        ("BraTS-GLI-00001-000-t1n.nii.gz", "t1"),
        ("BraTS-GLI-00001-000-t1c.nii.gz", "t1ce"),
        ("BraTS-GLI-00001-000-t2w.nii.gz", "t2"),
        ("BraTS-GLI-00001-000-t2f.nii.gz", "flair"),
        ("BraTS-GLI-00001-000-seg.nii.gz", "seg"),
        ("CASE_T1CE.NII.GZ", "t1ce"),
        ("X_fla_bet.nii.gz", None),
        ("case_t1ce_mask.nii.gz", None),
        ("case_t1.txt", None),
        ("._case_t1.nii.gz", None),
    ],
)
def test_match_modality(name: str, key: str | None) -> None:
    assert match_modality(name) == key


def test_find_files_t1_not_confused_with_t1ce(brats2018_case_dir: Path) -> None:
    files = find_case_files(brats2018_case_dir)
    assert files["t1"] == _file(brats2018_case_dir, "t1")
    assert files["t1ce"] == _file(brats2018_case_dir, "t1ce")


def test_explicit_mapping_with_odd_names(brats2018_case, brats2018_case_dir, tmp_path) -> None:
    odd = {
        "t1": "anat_T1w_bet.nii.gz",
        "t1ce": "contrast.nii.gz",
        "t2": "T2_weighted.nii.gz",
        "flair": "X_fla_bet.nii.gz",
    }
    for key, name in odd.items():
        (tmp_path / name).symlink_to(_file(brats2018_case_dir, key))
    with pytest.raises(BratsInputError, match="missing T1 \\(t1\\)"):
        load_case(tmp_path)
    mapping = {k: v for k, v in odd.items()}
    mapping["flair"] = str(tmp_path / odd["flair"])  # absolute paths work too
    mapping["t2w"] = mapping.pop("t2")  # 2023 names accepted as keys
    case = load_case(tmp_path, mapping=mapping)
    np.testing.assert_array_equal(case.image, brats2018_case.image)
    assert case.files["flair"].name == "X_fla_bet.nii.gz"
    assert case.seg is None


def test_partial_mapping_completes_by_name(brats2018_case_dir: Path, tmp_path: Path) -> None:
    _linked_case(brats2018_case_dir, tmp_path, skip=("flair",))
    (tmp_path / "X_fla_bet.nii.gz").symlink_to(_file(brats2018_case_dir, "flair"))
    files = find_case_files(tmp_path, {"flair": "X_fla_bet.nii.gz"})
    assert files["flair"].name == "X_fla_bet.nii.gz"
    assert files["t1"].name == "case_t1.nii.gz" and files["seg"].name == "case_seg.nii.gz"


def test_mapping_errors(brats2018_case_dir: Path, tmp_path: Path) -> None:
    _linked_case(brats2018_case_dir, tmp_path)
    with pytest.raises(BratsInputError, match="unknown channel 'dwi'"):
        find_case_files(tmp_path, {"dwi": "case_t1.nii.gz"})
    with pytest.raises(BratsInputError, match="mapped FLAIR \\(flair\\) file not found") as err:
        find_case_files(tmp_path, {"flair": "nope.nii.gz"})
    assert err.value.path == tmp_path / "nope.nii.gz"


def test_list_case_folders(brats2018_dir: Path, brats2018_case_dir: Path, tmp_path) -> None:
    cases = list_case_folders(brats2018_dir)
    assert len(cases) == 16 and brats2018_case_dir in cases
    assert cases == sorted(cases)
    assert list_case_folders(brats2018_case_dir) == [brats2018_case_dir]
    assert list_case_folders(tmp_path) == []
    with pytest.raises(BratsInputError, match="folder not found"):
        list_case_folders(tmp_path / "missing")


# ----------------------------------------------------------------------------- validation


def test_missing_modality_is_named(brats2018_case_dir: Path, tmp_path: Path) -> None:
    _linked_case(brats2018_case_dir, tmp_path, skip=("t1ce",))
    with pytest.raises(BratsInputError) as err:
        load_case(tmp_path)
    msg = str(err.value)
    assert msg.startswith(str(tmp_path))
    assert "missing T1Gd (t1ce)" in msg and "*_t1ce" in msg and "*-t1c" in msg
    assert "\n" not in msg


def test_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(BratsInputError, match="case folder not found"):
        load_case(tmp_path / "nothing-here")


def test_ambiguous_modality(brats2018_case_dir: Path, tmp_path: Path) -> None:
    _linked_case(brats2018_case_dir, tmp_path)
    (tmp_path / "other_t1.nii.gz").symlink_to(_file(brats2018_case_dir, "t1"))
    with pytest.raises(BratsInputError, match="ambiguous T1 \\(t1\\) files") as err:
        load_case(tmp_path)
    assert "case_t1.nii.gz" in str(err.value) and "other_t1.nii.gz" in str(err.value)


def test_ambiguous_seg_only_matters_when_wanted(brats2018_case_dir, tmp_path) -> None:
    _linked_case(brats2018_case_dir, tmp_path)
    (tmp_path / "old-prediction-seg.nii.gz").symlink_to(_file(brats2018_case_dir, "seg"))
    with pytest.raises(BratsInputError, match="ambiguous label map \\(seg\\) files"):
        find_case_files(tmp_path)
    files = find_case_files(tmp_path, seg=False)
    assert "seg" not in files and files["t1"].name == "case_t1.nii.gz"
    assert list_case_folders(tmp_path) == [tmp_path]
    chosen = find_case_files(tmp_path, {"seg": "case_seg.nii.gz"})
    assert chosen["seg"].name == "case_seg.nii.gz"


def _replace(folder: Path, key: str, img: nib.Nifti1Image) -> Path:
    """Replace channel ``key`` of a linked case by ``img`` (written uncompressed: fast)."""
    (folder / f"case_{key}.nii.gz").unlink()
    path = folder / f"case_{key}.nii"
    nib.save(img, path)
    return path


def test_shape_mismatch(brats2018_case_dir, t2_volume, tmp_path) -> None:
    _linked_case(brats2018_case_dir, tmp_path)
    data = np.asanyarray(t2_volume.dataobj)[:, :, :150]
    bad = _replace(tmp_path, "t2", nib.Nifti1Image(data, t2_volume.affine, t2_volume.header))
    with pytest.raises(BratsInputError) as err:
        load_case(tmp_path)
    assert str(err.value).startswith(str(bad))
    assert "(240, 240, 150)" in str(err.value) and "(240, 240, 155)" in str(err.value)


def test_seg_shape_mismatch(brats2018_case_dir, tmp_path) -> None:
    _linked_case(brats2018_case_dir, tmp_path)
    seg = np.zeros((240, 240, 154), dtype=np.uint8)
    affine = nib.load(_file(brats2018_case_dir, "seg")).affine
    bad = _replace(tmp_path, "seg", nib.Nifti1Image(seg, affine))
    with pytest.raises(BratsInputError, match="shape \\(240, 240, 154\\) differs") as err:
        load_case(tmp_path)
    assert err.value.path == bad
    case = load_case(tmp_path, load_seg=False)  # seg not wanted -> not checked
    assert case.seg is None and case.seg_convention is None and "seg" not in case.files


def test_affine_mismatch_reports_largest_difference(brats2018_case_dir, t2_volume, tmp_path):
    _linked_case(brats2018_case_dir, tmp_path)
    affine = t2_volume.affine.copy()
    affine[0, 3] += 0.5
    affine[1, 1] += 0.01
    bad = _replace(
        tmp_path, "t2", nib.Nifti1Image(np.asanyarray(t2_volume.dataobj), affine, t2_volume.header)
    )
    with pytest.raises(BratsInputError, match="affine differs .* by up to 0.5 ") as err:
        load_case(tmp_path)
    assert err.value.path == bad


def test_affine_within_tolerance_loads(brats2018_case_dir, t2_volume, tmp_path) -> None:
    _linked_case(brats2018_case_dir, tmp_path)
    affine = t2_volume.affine.copy()
    affine[2, 3] += AFFINE_TOLERANCE / 10
    _replace(
        tmp_path, "t2", nib.Nifti1Image(np.asanyarray(t2_volume.dataobj), affine, t2_volume.header)
    )
    case = load_case(tmp_path, load_seg=False)
    assert case.image.shape == (4, 240, 240, 155)


def test_non_finite_voxels_counted(brats2018_case_dir, t2_volume, tmp_path) -> None:
    _linked_case(brats2018_case_dir, tmp_path)
    data = np.asanyarray(t2_volume.dataobj).astype(np.float32)
    data[10, 20, 30] = np.nan
    data[11, 20, 30] = np.inf
    data[12, 20, 30] = np.nan
    bad = _replace(tmp_path, "t1", nib.Nifti1Image(data, t2_volume.affine))
    with pytest.raises(BratsInputError, match="3 non-finite voxel") as err:
        load_case(tmp_path)
    assert err.value.path == bad


def test_4d_file_refused(brats2018_case_dir, tmp_path) -> None:
    _linked_case(brats2018_case_dir, tmp_path)
    img4d = nib.Nifti1Image(np.zeros((240, 240, 155, 2), dtype=np.int16), np.eye(4))
    bad = _replace(tmp_path, "flair", img4d)
    with pytest.raises(BratsInputError, match="expected a 3D volume, found 4D") as err:
        load_case(tmp_path)
    assert err.value.path == bad


@pytest.mark.parametrize("name", ["case_t1.nii.gz", "case_t1.nii"])
def test_text_file_named_nifti_refused(brats2018_case_dir, tmp_path, name) -> None:
    _linked_case(brats2018_case_dir, tmp_path, skip=("t1",))
    bad = tmp_path / name
    bad.write_text("this is not an MRI volume\n" * 40)
    with pytest.raises(BratsInputError, match="not .*(NIfTI|gzip)") as err:
        load_case(tmp_path)
    assert err.value.path == bad and "\n" not in str(err.value)


def test_mapped_non_nifti_file_refused(brats2018_case_dir, tmp_path) -> None:
    _linked_case(brats2018_case_dir, tmp_path, skip=("flair",))
    (tmp_path / "notes.txt").write_text("flair: see scanner\n")
    with pytest.raises(BratsInputError, match="not a readable NIfTI") as err:
        load_case(tmp_path, mapping={"flair": "notes.txt"})
    assert err.value.path == tmp_path / "notes.txt"


def test_truncated_gz_detected_at_load(brats2018_case_dir, tmp_path) -> None:
    _linked_case(brats2018_case_dir, tmp_path, skip=("flair",))
    raw = _file(brats2018_case_dir, "flair").read_bytes()
    bad = tmp_path / "case_flair.nii.gz"
    bad.write_bytes(raw[: len(raw) // 2])
    assert nib.load(bad).shape == (240, 240, 155)  # nibabel alone does not notice
    with pytest.raises(BratsInputError, match="truncated or corrupt") as err:
        load_case(tmp_path)
    assert err.value.path == bad


def test_corrupt_gz_payload_detected(brats2018_case_dir, tmp_path) -> None:
    _linked_case(brats2018_case_dir, tmp_path, skip=("t2",))
    raw = bytearray(_file(brats2018_case_dir, "t2").read_bytes())
    raw[len(raw) // 2 : len(raw) // 2 + 64] = os.urandom(64)
    bad = tmp_path / "case_t2.nii.gz"
    bad.write_bytes(bytes(raw))
    with pytest.raises(BratsInputError, match="truncated or corrupt") as err:
        load_case(tmp_path, load_seg=False)
    assert err.value.path == bad


def test_truncated_plain_nii_detected(brats2018_case_dir, t2_volume, tmp_path) -> None:
    _linked_case(brats2018_case_dir, tmp_path)
    bad = _replace(tmp_path, "t2", t2_volume)
    with open(bad, "r+b") as fh:
        fh.truncate(bad.stat().st_size - 1000)
    with pytest.raises(BratsInputError, match="truncated or corrupt") as err:
        load_case(tmp_path)
    assert err.value.path == bad


def test_seg_with_invalid_labels(brats2018_case_dir, tmp_path) -> None:
    _linked_case(brats2018_case_dir, tmp_path)
    seg_img = nib.load(_file(brats2018_case_dir, "seg"))
    seg = np.asanyarray(seg_img.dataobj).copy()
    seg[0, 0, 0] = 7
    bad = _replace(tmp_path, "seg", nib.Nifti1Image(seg, seg_img.affine, seg_img.header))
    with pytest.raises(BratsInputError, match="label values \\[7\\] are not BraTS labels") as err:
        load_case(tmp_path)
    assert err.value.path == bad


# ----------------------------------------------------------------------------- label maps


def test_load_label_map_real(brats2018_case_dir: Path) -> None:
    lm = load_label_map(_file(brats2018_case_dir, "seg"))
    ref = nib.load(_file(brats2018_case_dir, "seg"))
    assert lm.data.dtype == np.uint8 and lm.shape == (240, 240, 155)
    np.testing.assert_array_equal(lm.data, np.asanyarray(ref.dataobj))
    np.testing.assert_array_equal(lm.affine, ref.affine)
    assert lm.spacing == (1.0, 1.0, 1.0)


def test_load_label_map_float_labels(official_sample_dir: Path) -> None:
    # The official sample stores this reference as float32 holding integer values.
    path = official_sample_dir / "sample_data" / "ref" / "BraTS-MET-00630-001-seg.nii.gz"
    lm = load_label_map(path)
    assert lm.data.dtype == np.uint8 and lm.shape == (256, 256, 106)
    assert set(np.unique(lm.data).tolist()) <= {0, 1, 2, 3}
    assert lm.spacing == pytest.approx((0.8594, 0.8594, 1.5), abs=1e-4)


@pytest.mark.parametrize(
    ("data", "pattern"),
    [
        (np.full((4, 4, 4), 1.5, dtype=np.float32), "non-integer values \\(e.g. 1.5\\)"),
        (np.full((4, 4, 4), np.nan, dtype=np.float32), "non-finite"),
        (np.full((4, 4, 4), 300, dtype=np.int16), "outside 0..255"),
        (np.full((4, 4, 4), -1, dtype=np.int16), "outside 0..255"),
        (np.zeros((4, 4, 4, 3), dtype=np.uint8), "expected a 3D volume, found 4D"),
    ],
)
def test_load_label_map_refuses(tmp_path: Path, data: np.ndarray, pattern: str) -> None:
    path = tmp_path / "pred.nii.gz"
    nib.save(nib.Nifti1Image(data, np.eye(4)), path)
    with pytest.raises(BratsInputError, match=pattern) as err:
        load_label_map(path)
    assert err.value.path == path


def test_load_label_map_missing_and_folder(tmp_path: Path) -> None:
    with pytest.raises(BratsInputError, match="file not found"):
        load_label_map(tmp_path / "none.nii.gz")
    with pytest.raises(BratsInputError, match="is a folder"):
        load_label_map(tmp_path)


def test_gzip_magic_checked(tmp_path: Path) -> None:
    path = tmp_path / "pred.nii.gz"
    img = nib.Nifti1Image(np.zeros((4, 4, 4), dtype=np.uint8), np.eye(4))
    nib.save(img, tmp_path / "plain.nii")
    shutil.copy(tmp_path / "plain.nii", path)  # uncompressed bytes under a .gz name
    with pytest.raises(BratsInputError, match="not a gzip file"):
        load_label_map(path)
    with gzip.open(tmp_path / "ok.nii.gz", "wb") as fh:
        fh.write((tmp_path / "plain.nii").read_bytes())
    assert load_label_map(tmp_path / "ok.nii.gz").shape == (4, 4, 4)


@pytest.mark.parametrize("suffix", [".nii", ".nii.gz"])
def test_scaled_voxels_read_as_float32(tmp_path: Path, suffix: str) -> None:
    from bratseg.io.nifti import open_nifti, read_volume

    raw = np.arange(2 * 3 * 4, dtype=np.int16).reshape(2, 3, 4)
    img = nib.Nifti1Image(raw, np.eye(4))
    img.header.set_slope_inter(0.5, 10.0)  # stored on disk: value = raw * 0.5 + 10
    path = tmp_path / f"scaled{suffix}"
    nib.save(img, path)
    out = read_volume(open_nifti(path), path)
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, raw.astype(np.float32) * 0.5 + 10.0)
    np.testing.assert_array_equal(out, np.asanyarray(nib.load(path).dataobj))
