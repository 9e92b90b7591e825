"""Orientation-proof inference: axis flips/permutations only, inverted exactly, so the same case
stored LPS, RAS or with permuted axes gets identical labels in its own geometry."""

from __future__ import annotations

import itertools
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from nibabel import orientations as ornt

from bratseg.errors import BratsInputError
from bratseg.orientation import (
    BRATS_AXCODES,
    axcodes,
    parse_axcodes,
    reorientation,
    reoriented_affine,
)

ALL_AXCODES = [
    "".join(p[i] if s else {"L": "R", "P": "A", "S": "I"}[p[i]] for i, s in enumerate(signs))
    for p in itertools.permutations("LPS")
    for signs in itertools.product((True, False), repeat=3)
]


def _affine_for(codes: str) -> np.ndarray:
    """An affine whose voxel axes point to ``codes`` (with 1, 2, 3 mm voxels)."""
    affine = np.eye(4)
    affine[:3, :3] = 0.0
    for axis, code in enumerate(codes):  # world is RAS+: R, A, S positive
        world = "LRPAIS".index(code) // 2
        affine[world, axis] = (1.0 if code in "RAS" else -1.0) * (axis + 1)
    return affine


def test_all_48_orientations_round_trip_and_reach_the_target() -> None:
    assert len(set(ALL_AXCODES)) == 48
    rng = np.random.default_rng(0)
    for codes in ALL_AXCODES:
        affine = _affine_for(codes)
        assert axcodes(affine) == tuple(codes)
        reo = reorientation(affine, "LPS")
        x = rng.random((2, 4, 5, 6)).astype(np.float32)
        y = reo.apply(x, leading=1)
        assert y.flags.c_contiguous and np.array_equal(reo.invert(y, leading=1), x)
        new_affine = reoriented_affine(affine, reo, x.shape[1:])
        assert axcodes(new_affine) == BRATS_AXCODES
        # every voxel keeps its world position: compare one corner voxel's centre
        src_index = np.array([1, 2, 3, 1.0])
        world = affine @ src_index
        dst_index = np.linalg.solve(new_affine, world)
        assert y[(0, *np.round(dst_index[:3]).astype(int))] == x[0, 1, 2, 3]
        assert sorted(reo.spacing((1.0, 2.0, 3.0))) == [1.0, 2.0, 3.0]
        assert np.allclose(
            np.sqrt((new_affine[:3, :3] ** 2).sum(0)), reo.spacing(nib.affines.voxel_sizes(affine))
        )


def test_identity_returns_the_same_array_and_bad_codes_are_refused() -> None:
    affine = np.diag([-1.0, -1.0, 1.0, 1.0])
    reo = reorientation(affine, "LPS")
    x = np.zeros((3, 3, 3))
    assert reo.identity and reo.apply(x) is x
    for bad in ("LPX", "LLS", "LP", "lpsa"):
        with pytest.raises(BratsInputError, match="axis codes"):
            parse_axcodes(bad)
    assert parse_axcodes("ras") == ("R", "A", "S")


def _restored_copy(case_dir: Path, dest: Path, codes: str) -> Path:
    """The case's files re-stored with voxel axes ``codes`` (same world image, nibabel)."""
    out = dest / f"{case_dir.name}-{codes}"
    out.mkdir()
    for f in sorted(case_dir.glob("*.nii.gz")):
        img = nib.load(f)
        transform = ornt.ornt_transform(ornt.io_orientation(img.affine), ornt.axcodes2ornt(codes))
        nib.save(img.as_reoriented(transform), out / f.name)
    return out


@pytest.mark.slow
def test_a_flipped_or_permuted_copy_of_a_case_gets_identical_labels(
    brats2018_case_dir: Path, tmp_path: Path
) -> None:
    """The bundled default ensemble on the real case stored LPS (as shipped), RAS and S-L-P permuted."""
    from bratseg.checkpoint import load_checkpoint
    from bratseg.inference import InferenceOptions, predict_case
    from bratseg.io import load_case
    from bratseg.labels import region_masks
    from bratseg.metrics import dice_regions
    from bratseg.zoo import default_model_names, resolve_model

    models = [load_checkpoint(resolve_model(n)) for n in default_model_names()]
    assert all(m.meta.get("orientation", "LPS") == "LPS" for m in models)
    options = InferenceOptions(device="cpu", threads=2)
    original = load_case(brats2018_case_dir, load_seg=True)
    assert axcodes(original.affine) == ("L", "P", "S")
    reference = predict_case(original, models, options)
    truth = region_masks(original.seg, "2021")
    assert (
        dice_regions(
            np.stack(list(region_masks(reference.labels, "2021").values())),
            np.stack(list(truth.values())),
        )[0]
        > 0.8
    )  # a real segmentation
    for codes in ("RAS", "SLP"):
        case = load_case(_restored_copy(brats2018_case_dir, tmp_path, codes))
        assert axcodes(case.affine) == tuple(codes)
        pred = predict_case(case, models, options)
        assert pred.labels.shape == case.image.shape[1:]
        back = reorientation(case.affine, "LPS").apply(pred.labels)  # to the original storage
        assert np.array_equal(back, reference.labels), codes  # Dice 1.0 in every region
        probs_back = reorientation(case.affine, "LPS").apply(pred.region_probs, leading=1)
        assert np.array_equal(probs_back, reference.region_probs)


@pytest.mark.parametrize("codes", ["RAS", "SLP", "AIR"])
def test_a_real_case_reoriented_and_back_is_identical(brats2018_case_dir: Path, codes: str) -> None:
    """The one home of reorientation on a real label map and FLAIR: there and back is the
    identity, the result equals nibabel's own reorientation, the no-copy view equals the copy,
    and a voxel's coordinates follow it."""
    name = brats2018_case_dir.name
    for suffix in ("seg", "flair"):
        img = nib.load(brats2018_case_dir / f"{name}_{suffix}.nii.gz")
        data = np.asarray(img.dataobj)
        reo = reorientation(img.affine, codes)
        moved = reo.apply(data)
        np.testing.assert_array_equal(reo.invert(moved), data)
        transform = ornt.ornt_transform(ornt.io_orientation(img.affine), ornt.axcodes2ornt(codes))
        oracle = img.as_reoriented(transform)
        np.testing.assert_array_equal(moved, np.asarray(oracle.dataobj))
        np.testing.assert_allclose(reoriented_affine(img.affine, reo, data.shape), oracle.affine)
        view = reo.view(data)
        assert np.shares_memory(view, data) and np.array_equal(view, moved)
        back = reo.view_back(view)
        assert np.shares_memory(back, data) and np.array_equal(back, data)
        voxel = np.argwhere(data == data.max())[0]
        target = reo.point(voxel, data.shape).astype(int)
        assert moved[tuple(target)] == data[tuple(voxel)]
        np.testing.assert_array_equal(reo.point_back(target, data.shape), voxel)
