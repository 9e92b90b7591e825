"""Series on other grids: refused by default (naming the option), resampled into the T1Gd grid
with --align resample, or rigidly registered first with --align register; the labels then match
those of the co-registered original."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from nibabel.processing import resample_from_to

from bratseg.errors import BratsInputError
from bratseg.io import load_case

pytestmark = pytest.mark.slow


def _rotation(deg: float) -> np.ndarray:
    a = np.radians(deg)
    r = np.eye(4)
    r[:2, :2] = [[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]]
    return r


def _copy_with(case_dir: Path, dest: Path, change) -> Path:
    out = dest / case_dir.name
    out.mkdir(parents=True)
    for f in sorted(case_dir.glob("*.nii.gz")):
        m = f.name[len(case_dir.name) + 1 :].split(".")[0]
        img = nib.load(f)
        nib.save(change(img) if m in ("t2", "flair") else img, out / f.name)
    return out


def _other_grid(img: nib.Nifti1Image) -> nib.Nifti1Image:
    """The same content resampled into a 1.2 mm grid rotated by 7 degrees about the axial axis."""
    centre = img.affine @ np.r_[np.array(img.shape[:3]) / 2, 1]
    affine = _rotation(7) @ np.diag([-1.2, -1.2, 1.2, 1.0])
    shape = (200, 200, 130)
    affine[:3, 3] = centre[:3] - affine[:3, :3] @ (np.array(shape) / 2)
    return resample_from_to(img, (shape, affine), order=1)


def _moved(img: nib.Nifti1Image) -> nib.Nifti1Image:
    """The content moved by a rigid motion (5 degrees, 4 mm) while the header stays the same."""
    centre = img.affine @ np.r_[np.array(img.shape[:3]) / 2, 1]
    motion = _rotation(5)
    motion[:3, 3] = centre[:3] - motion[:3, :3] @ centre[:3] + np.array([4.0, 0.0, 0.0])
    moved_frame = nib.Nifti1Image(np.asarray(img.dataobj, dtype=np.float32), motion @ img.affine)
    out = resample_from_to(moved_frame, (img.shape[:3], img.affine), order=1)
    return nib.Nifti1Image(np.asarray(out.dataobj, dtype=np.float32), img.affine, img.header)


def _labels(case) -> np.ndarray:
    """The bundled default ensemble's labels for ``case`` (what ``predict`` gives a user)."""
    from bratseg.checkpoint import load_checkpoint
    from bratseg.inference import InferenceOptions, predict_case
    from bratseg.zoo import default_model_names, resolve_model

    return predict_case(
        case,
        [load_checkpoint(resolve_model(n)) for n in default_model_names()],
        InferenceOptions(device="cpu", threads=2),
    ).labels


def _dice(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    from bratseg.labels import regions_to_stack
    from bratseg.metrics import dice_regions

    return dice_regions(regions_to_stack(a, "2021"), regions_to_stack(b, "2021"))


@pytest.fixture(scope="module")
def reference(brats2018_case_dir: Path) -> np.ndarray:
    return _labels(load_case(brats2018_case_dir, load_seg=False))


def test_another_grid_is_refused_then_resampled(
    brats2018_case_dir: Path, tmp_path: Path, reference
) -> None:
    case_dir = _copy_with(brats2018_case_dir, tmp_path, _other_grid)
    with pytest.raises(BratsInputError, match="--align resample"):
        load_case(case_dir, load_seg=False)
    case = load_case(case_dir, load_seg=False, align="resample")
    assert [r.channel for r in case.alignment] == ["T2", "FLAIR"] and case.image.shape[1:] == (
        240,
        240,
        155,
    )
    np.testing.assert_allclose(case.affine, nib.load(next(case_dir.glob("*_t1ce.nii.gz"))).affine)
    dice = _dice(_labels(case), reference)
    assert (dice >= 0.9).all(), dice


def test_motion_between_series_is_recovered_by_registration(
    brats2018_case_dir: Path, tmp_path: Path, reference
) -> None:
    case_dir = _copy_with(brats2018_case_dir, tmp_path, _moved)
    moved = load_case(case_dir, load_seg=False)  # same grid: loads, but the content is off
    off = _dice(_labels(moved), reference)
    case = load_case(case_dir, load_seg=False, align="register")
    reports = {r.channel: r for r in case.alignment}
    assert set(reports) == {"T1", "T2", "FLAIR"}
    for channel in ("T2", "FLAIR"):
        assert (
            2.5 <= reports[channel].translation_mm <= 6.0
            and 3.0 <= reports[channel].rotation_deg <= 7.0
        ), reports[channel].line()
        assert reports[channel].mi_after < reports[channel].mi_before and not reports[channel].poor
    assert reports["T1"].translation_mm < 1.5 and reports["T1"].rotation_deg < 1.0
    dice = _dice(_labels(case), reference)
    assert (dice >= 0.9).all() and dice.mean() > off.mean(), (dice, off)


def test_the_viewer_shows_the_aligned_series(brats2018_case_dir: Path, tmp_path: Path) -> None:
    pytest.importorskip("napari")
    from napari_brats._cases import case_of_layer_data
    from napari_brats._reader import read_case

    case_dir = _copy_with(brats2018_case_dir, tmp_path, _other_grid)
    with pytest.raises(BratsInputError, match="--align"):
        read_case(str(case_dir))
    layers = read_case(str(case_dir), align="resample")
    shapes = {kw["name"]: data.shape for data, kw, _ in layers}
    assert shapes["T2"] == shapes["FLAIR"] == shapes["T1Gd"] == (155, 240, 240)
    assert case_of_layer_data(layers).alignment[0].method == "resample"


def test_registering_the_same_pair_twice_gives_the_same_motion(brats2018_case_dir: Path) -> None:
    """The metric's random samples are seeded (SimpleITK reads seed 0 as the wall clock, which
    once made the same pair come back 6 and 10 degrees apart), whatever the thread count."""
    import SimpleITK as sitk

    from bratseg.io.align import register_into

    box = (slice(72, 168), slice(72, 168), slice(45, 109))

    def series(name: str) -> nib.Nifti1Image:
        img = nib.load(next(brats2018_case_dir.glob(f"*_{name}.nii.gz"))).slicer[box]
        return nib.Nifti1Image(np.asarray(img.dataobj, dtype=np.float32), img.affine)

    ref, flair = series("t1ce"), _moved(series("flair"))
    threads = sitk.ProcessObject.GetGlobalDefaultNumberOfThreads()
    try:
        first = register_into(flair, ref, "FLAIR")[1]
        sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(1)
        second = register_into(flair, ref, "FLAIR")[1]
    finally:
        sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(threads)
    assert 4.0 <= first.rotation_deg <= 6.0, first.line()
    assert first.rotation_deg == pytest.approx(second.rotation_deg, abs=1e-3)
    assert first.translation_mm == pytest.approx(second.translation_mm, abs=1e-3)
