"""Atomic label-map export in the source geometry (save_label_map, write_nifti_atomic)."""

from __future__ import annotations

import os
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from bratseg.errors import BratsInputError
from bratseg.io import LabelMap, load_label_map, save_label_map, write_nifti_atomic
from bratseg.labels import detect_convention


@pytest.fixture(scope="module")
def real_seg(brats2018_case_dir: Path) -> LabelMap:
    """The expert label map of the default BraTS 2018 case (2021 convention)."""
    return load_label_map(brats2018_case_dir / f"{brats2018_case_dir.name}_seg.nii.gz")


def _listing(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_round_trip_keeps_geometry_dtype_values(real_seg: LabelMap, tmp_path: Path) -> None:
    out = save_label_map(
        real_seg.data, tmp_path / "pred.nii.gz", affine=real_seg.affine, header=real_seg.header
    )
    assert out == tmp_path / "pred.nii.gz"
    assert _listing(tmp_path) == ["pred.nii.gz"]  # no temporary file left behind
    assert out.read_bytes()[:2] == b"\x1f\x8b"  # really gzip-compressed
    umask = os.umask(0)
    os.umask(umask)
    assert out.stat().st_mode & 0o777 == 0o666 & ~umask  # not the temporary file's 0600
    img = nib.load(out)
    assert img.get_data_dtype() == np.uint8
    np.testing.assert_array_equal(img.affine, real_seg.affine)
    assert img.header.get_zooms() == real_seg.header.get_zooms()
    assert nib.aff2axcodes(img.affine) == ("L", "P", "S")
    assert int(img.header["sform_code"]) == int(real_seg.header["sform_code"])
    assert int(img.header["qform_code"]) == int(real_seg.header["qform_code"])
    slope, inter = img.header.get_slope_inter()
    assert slope in (None, 1.0) and inter in (None, 0.0)
    data = np.asanyarray(img.dataobj)
    assert data.dtype == np.uint8
    np.testing.assert_array_equal(data, real_seg.data)
    back = load_label_map(out)
    np.testing.assert_array_equal(back.data, real_seg.data)
    assert back.spacing == real_seg.spacing


def test_convention_conversion_both_ways(real_seg: LabelMap, tmp_path: Path) -> None:
    p23 = save_label_map(
        real_seg.data,
        tmp_path / "seg23.nii.gz",
        affine=real_seg.affine,
        header=real_seg.header,
        convention="2023",
        src_convention="2021",
    )
    lab23 = load_label_map(p23).data
    assert set(np.unique(lab23).tolist()) == {0, 1, 2, 3}
    assert detect_convention(lab23) == "2023"
    np.testing.assert_array_equal(lab23 == 3, real_seg.data == 4)
    np.testing.assert_array_equal(lab23 == 1, real_seg.data == 1)
    p21 = save_label_map(
        lab23,
        tmp_path / "seg21.nii",
        affine=real_seg.affine,
        header=real_seg.header,
        convention="2021",
        src_convention="2023",
    )
    np.testing.assert_array_equal(load_label_map(p21).data, real_seg.data)
    assert p21.read_bytes()[:2] != b"\x1f\x8b"  # .nii is written uncompressed


def test_refuses_to_overwrite_unless_asked(real_seg: LabelMap, tmp_path: Path) -> None:
    path = tmp_path / "pred.nii.gz"
    path.write_bytes(b"precious")
    with pytest.raises(BratsInputError, match="file exists; refusing to overwrite") as err:
        save_label_map(real_seg.data, path, affine=real_seg.affine, header=real_seg.header)
    assert err.value.path == path
    assert path.read_bytes() == b"precious"
    assert _listing(tmp_path) == ["pred.nii.gz"]
    save_label_map(
        real_seg.data, path, affine=real_seg.affine, header=real_seg.header, overwrite=True
    )
    np.testing.assert_array_equal(load_label_map(path).data, real_seg.data)
    assert _listing(tmp_path) == ["pred.nii.gz"]


def test_failed_write_leaves_no_partial_file(real_seg: LabelMap, tmp_path: Path) -> None:
    target = tmp_path / "probs.nii.gz"
    # An array NIfTI cannot store fails after the temporary file was created: it is removed.
    with pytest.raises(BratsInputError, match="cannot store data of type complex128"):
        write_nifti_atomic(np.zeros((8, 8, 8), dtype=np.complex128), np.eye(4), None, target)
    assert _listing(tmp_path) == []
    # Values that do not fit the requested type: refused, nothing written.
    with pytest.raises(BratsInputError, match="do not fit in uint8"):
        write_nifti_atomic(np.full((8, 8, 8), 300), np.eye(4), None, target, dtype=np.uint8)
    with pytest.raises(BratsInputError, match="non-integer values"):
        write_nifti_atomic(np.full((8, 8, 8), 0.5), np.eye(4), None, target, dtype=np.uint8)
    assert _listing(tmp_path) == []
    # A failing overwrite leaves the existing file intact.
    save_label_map(real_seg.data, target, affine=real_seg.affine, header=real_seg.header)
    before = target.read_bytes()
    with pytest.raises(BratsInputError):
        write_nifti_atomic(
            np.zeros((8, 8, 8), dtype=object), np.eye(4), None, target, overwrite=True
        )
    assert target.read_bytes() == before
    assert _listing(tmp_path) == ["probs.nii.gz"]


def test_bad_destinations(real_seg: LabelMap, tmp_path: Path) -> None:
    kwargs = {"affine": real_seg.affine, "header": real_seg.header}
    with pytest.raises(BratsInputError, match="output folder does not exist") as err:
        save_label_map(real_seg.data, tmp_path / "missing" / "pred.nii.gz", **kwargs)
    assert err.value.path == tmp_path / "missing"
    with pytest.raises(BratsInputError, match="must end in .nii or .nii.gz"):
        save_label_map(real_seg.data, tmp_path / "pred.png", **kwargs)
    (tmp_path / "folder.nii.gz").mkdir()
    with pytest.raises(BratsInputError, match="is a folder"):
        save_label_map(real_seg.data, tmp_path / "folder.nii.gz", overwrite=True, **kwargs)
    with pytest.raises(BratsInputError, match="must be 3D"):
        save_label_map(real_seg.data[None], tmp_path / "p.nii.gz", **kwargs)
    with pytest.raises(BratsInputError, match="must be integer"):
        save_label_map(real_seg.data.astype(np.float32), tmp_path / "p.nii.gz", **kwargs)
    assert _listing(tmp_path) == ["folder.nii.gz"]


def test_types_nifti_lacks_are_widened(tmp_path: Path) -> None:
    affine = np.diag([0.9, 0.9, 1.5, 1.0])
    probs = np.linspace(0, 1, 3 * 4 * 5 * 6, dtype=np.float16).reshape(3, 4, 5, 6)
    p = write_nifti_atomic(probs[0], affine, None, tmp_path / "p.nii.gz")
    img = nib.load(p)
    assert img.get_data_dtype() == np.float32
    np.testing.assert_array_equal(np.asanyarray(img.dataobj), probs[0].astype(np.float32))
    np.testing.assert_allclose(img.affine, affine)
    m = write_nifti_atomic(probs[0] > 0.5, affine, None, tmp_path / "m.nii")
    assert nib.load(m).get_data_dtype() == np.uint8
    np.testing.assert_array_equal(np.asanyarray(nib.load(m).dataobj), probs[0] > 0.5)
