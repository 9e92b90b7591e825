"""DICOM input: a real case written as four DICOM series (one folder each) is matched by
SeriesDescription, read exactly, and segments like its NIfTI original."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("SimpleITK")

from raw_scans import write_dicom_series  # noqa: E402

from bratseg.errors import BratsInputError  # noqa: E402
from bratseg.io import load_case  # noqa: E402

DESCRIPTIONS = {
    "t1": "AX T1 SE PRE",
    "t1ce": "AX T1 POST GD",
    "t2": "AX T2 FSE",
    "flair": "AX FLAIR",
}


@pytest.fixture(scope="module")
def dicom_case(brats2018_case_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("dicom") / brats2018_case_dir.name
    for k, (m, description) in enumerate(DESCRIPTIONS.items()):
        write_dicom_series(
            brats2018_case_dir / f"{brats2018_case_dir.name}_{m}.nii.gz",
            root / f"series{k + 1}",
            description,
            k + 1,
        )
    return root


def test_four_series_are_matched_by_description_and_read_exactly(
    dicom_case: Path, brats2018_case_dir: Path
) -> None:
    from bratseg.io.dicom import channel_of_description

    assert {m: channel_of_description(d) for m, d in DESCRIPTIONS.items()} == {
        m: m for m in DESCRIPTIONS
    }
    case = load_case(dicom_case)
    original = load_case(brats2018_case_dir, load_seg=False)
    assert {m: p.name for m, p in case.files.items()} == {
        m: f"series{k + 1}" for k, m in enumerate(DESCRIPTIONS)
    }
    assert case.seg is None and case.image.shape == original.image.shape
    assert np.array_equal(case.image, original.image)
    np.testing.assert_allclose(case.affine, original.affine, atol=1e-4)


@pytest.mark.slow
def test_a_dicom_case_segments_like_its_nifti_original(
    dicom_case: Path, brats2018_case_dir: Path, tmp_path: Path
) -> None:
    import nibabel as nib

    from bratseg.cli.main import main
    from bratseg.labels import regions_to_stack
    from bratseg.metrics import dice_regions

    a, b = tmp_path / "dicom.nii.gz", tmp_path / "nifti.nii.gz"
    assert (
        main(
            [
                "predict",
                str(dicom_case),
                "-o",
                str(a),
                "--model",
                "nnunet-small-cv44-f0",
                "-q",
                "--threads",
                "2",
            ]
        )
        == 0
    )
    assert (
        main(
            [
                "predict",
                str(brats2018_case_dir),
                "-o",
                str(b),
                "--model",
                "nnunet-small-cv44-f0",
                "-q",
                "--threads",
                "2",
            ]
        )
        == 0
    )
    la, lb = (np.asarray(nib.load(p).dataobj) for p in (a, b))
    dice = dice_regions(regions_to_stack(la, "2021"), regions_to_stack(lb, "2021"))
    assert (dice >= 0.99).all(), dice
    np.testing.assert_allclose(
        nib.load(a).affine, nib.load(b).affine, atol=1e-4
    )  # written in the source geometry


def test_an_explicit_mapping_takes_series_folders_and_ambiguity_is_refused(
    dicom_case: Path, tmp_path: Path
) -> None:
    mapped = load_case(dicom_case, mapping={"t1": dicom_case / "series1"})
    assert mapped.files["t1"].name == "series1"
    twin = tmp_path / "twin"
    twin.mkdir()
    for sub in ("series1", "series2", "series3", "series4"):
        (twin / sub).symlink_to(dicom_case / sub, target_is_directory=True)
    (twin / "series5").symlink_to(
        dicom_case / "series4", target_is_directory=True
    )  # a second FLAIR
    with pytest.raises(BratsInputError, match="several DICOM series look like flair"):
        load_case(twin)


@pytest.mark.parametrize("damage", ["truncated", "deleted"])
def test_a_series_with_a_damaged_or_missing_slice_is_refused(
    dicom_case: Path, tmp_path: Path, damage: str
) -> None:
    """GDCM leaves a damaged file out of the series silently; the volume would then be read with
    every later slice shifted by one. One line naming the folder instead."""
    import shutil

    from bratseg.io.dicom import read_dicom_series

    series = tmp_path / "series2"
    shutil.copytree(dicom_case / "series2", series)
    victim = series / "IM0070.dcm"
    if damage == "truncated":
        victim.write_bytes(victim.read_bytes()[:2000])
    else:
        victim.unlink()
    with pytest.raises(BratsInputError) as info:
        read_dicom_series(series)
    assert str(series) in str(info.value) and "not evenly spaced" in str(info.value)
    if damage == "truncated":
        assert "IM0070.dcm" in str(info.value)
    assert read_dicom_series(dicom_case / "series2").shape == (240, 240, 155)  # intact: read
