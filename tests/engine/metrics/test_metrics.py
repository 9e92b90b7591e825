"""Metrics: equality with the official BraTS evaluation, edge cases, properties."""

from __future__ import annotations

import functools
import json
import re
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from scipy import ndimage

from bratseg.errors import BratsInputError
from bratseg.labels import convert_labels, region_masks, regions_to_stack
from bratseg.metrics import (
    HD95_PENALTY,
    dice,
    dice_regions,
    evaluate_labels,
    hd95,
    region_metrics,
    tumour_volumes_ml,
)

DATA = Path(__file__).resolve().parents[3].parent / "shared" / "data"
OFFICIAL = DATA / "official-metrics-sample"
BRATS2018 = DATA / "brats2018"

needs_official = pytest.mark.skipif(
    not (OFFICIAL / "sample_mets_metrics.json").is_file(),
    reason="official BraTS evaluation sample not found in ../shared/data",
)
needs_brats2018 = pytest.mark.skipif(
    not BRATS2018.is_dir(), reason="BraTS 2018 cases not found in ../shared/data"
)


def _official_cases() -> list[tuple[Path, Path, dict]]:
    """(pred file, ref file, official metrics) per case; files paired by the case number."""
    metrics = json.loads((OFFICIAL / "sample_mets_metrics.json").read_text())["metrics"]
    preds = sorted((OFFICIAL / "sample_data" / "pred").glob("*.nii.gz"))
    out = []
    for entry in metrics:
        case = re.search(r"(\d{5})[-_](\d{3})", entry["subject_name"]).groups()
        pred = [p for p in preds if re.search(rf"{case[0]}[-_]{case[1]}", p.name)]
        assert len(pred) == 1, entry["subject_name"]
        out.append((pred[0], OFFICIAL / "sample_data" / "ref" / entry["subject_name"], entry))
    return out


@functools.cache
def _load(path: Path) -> tuple[np.ndarray, tuple[float, float, float]]:
    """Label array and voxel spacing of a NIfTI file (cached: the sample is read once)."""
    import nibabel as nib

    img = nib.load(path)
    return np.asarray(img.dataobj), tuple(float(s) for s in img.header.get_zooms()[:3])


def _official_hd95(pred: np.ndarray, ref: np.ndarray, spacing=(1.0, 1.0, 1.0)) -> float:
    """Reference HD95: the official full-volume computation, written out plainly."""
    structure = ndimage.generate_binary_structure(3, 1)
    p_border = pred ^ ndimage.binary_erosion(pred, structure=structure, iterations=1)
    r_border = ref ^ ndimage.binary_erosion(ref, structure=structure, iterations=1)
    d1 = ndimage.distance_transform_edt(~r_border, sampling=spacing)[p_border]
    d2 = ndimage.distance_transform_edt(~p_border, sampling=spacing)[r_border]
    return float(np.percentile(np.hstack((d1, d2)), 95))


@needs_official
def test_official_sample_dice_and_hd95_match():
    cases = _official_cases()
    assert len(cases) == 4
    worst_dice = worst_hd = 0.0
    for pred_file, ref_file, official in cases:
        pred, _ = _load(pred_file)
        ref, spacing = _load(ref_file)
        ours = evaluate_labels(pred, ref, spacing=spacing)  # conventions auto-detected (2023)
        voxel_ml = float(np.prod(spacing)) / 1000.0
        for region in ("wt", "tc", "et"):
            want = official[region]
            got = ours[region]
            worst_dice = max(worst_dice, abs(got["dice"] - want["global_bin_dsc"]))
            worst_hd = max(worst_hd, abs(got["hd95"] - want["global_bin_hd95"]))
            where = (ref_file.name, region)
            assert got["dice"] == pytest.approx(want["global_bin_dsc"], abs=1e-6), where
            assert got["hd95"] == pytest.approx(want["global_bin_hd95"], abs=1e-3), where
            assert got["volume_pred_ml"] / voxel_ml == pytest.approx(want["global_bin_volume_pred"])
            assert got["volume_ref_ml"] / voxel_ml == pytest.approx(want["global_bin_volume_ref"])
            assert got["hd95_penalty"] is False
    assert worst_dice < 1e-6 and worst_hd < 1e-3


@needs_official
def test_official_hd95_is_in_voxel_units_and_mm_option_scales():
    """The official tool ignores the spacing; hd95_in_mm=True uses it."""
    pred_file, ref_file, official = next(c for c in _official_cases() if "00630" in c[1].name)
    pred, _ = _load(pred_file)
    ref, spacing = _load(ref_file)
    assert len(set(spacing)) > 1  # anisotropic case
    p, r = region_masks(pred, "2023")["wt"], region_masks(ref, "2023")["wt"]
    voxel = region_metrics(p, r, spacing).hd95
    mm = region_metrics(p, r, spacing, hd95_in_mm=True).hd95
    assert voxel == pytest.approx(official["wt"]["global_bin_hd95"], abs=1e-3)
    # plain official-style computation on a zero-margined crop (full-volume EDT is slow)
    idx = np.argwhere(p | r)
    box = tuple(slice(max(lo - 3, 0), hi + 4) for lo, hi in zip(idx.min(0), idx.max(0)))
    pc, rc = np.pad(p[box], 1), np.pad(r[box], 1)
    assert mm == pytest.approx(_official_hd95(pc, rc, spacing), abs=1e-9)
    assert mm != pytest.approx(voxel, abs=1e-3)


def test_both_empty_is_perfect():
    empty = np.zeros((5, 6, 7), dtype=bool)
    m = region_metrics(empty, empty)
    assert m.dice == 1.0
    assert m.hd95 == 0.0
    assert m.hd95_penalty is False
    assert m.sensitivity == 1.0 and m.specificity == 1.0
    assert m.volume_pred_ml == 0.0 and m.volume_ref_ml == 0.0


@pytest.mark.parametrize("empty_side", ["pred", "ref"])
def test_exactly_one_empty_is_penalised(empty_side):
    mask = np.zeros((8, 8, 8), dtype=bool)
    mask[2:5, 3:6, 1:4] = True
    empty = np.zeros_like(mask)
    pred, ref = (empty, mask) if empty_side == "pred" else (mask, empty)
    m = region_metrics(pred, ref, spacing=(1.0, 1.0, 2.0))
    assert m.dice == 0.0
    assert m.hd95 == HD95_PENALTY == 373.13
    assert m.hd95_penalty is True
    d = m.as_dict()
    assert d["hd95"] == 373.13 and d["hd95_penalty"] is True


def test_evaluate_labels_edge_cases_per_region():
    ref = np.zeros((10, 10, 10), dtype=np.uint8)
    ref[2:6, 2:6, 2:6] = 2  # edema only: ET and TC empty in the reference
    pred = ref.copy()
    pred[3, 3, 3] = 4  # one ET voxel predicted
    out = evaluate_labels(pred, ref)
    assert set(out) == {"wt", "tc", "et"}
    assert out["wt"]["dice"] == 1.0 and out["wt"]["hd95"] == 0.0
    assert out["et"]["dice"] == 0.0 and out["et"]["hd95"] == 373.13 and out["et"]["hd95_penalty"]
    assert out["tc"]["hd95_penalty"] is True
    assert set(out["wt"]) == {
        "dice",
        "hd95",
        "sensitivity",
        "specificity",
        "volume_pred_ml",
        "volume_ref_ml",
        "hd95_penalty",
    }
    json.dumps(out)  # JSON-able as `evaluate --json` prints it


def test_sensitivity_specificity_and_volumes_by_hand():
    ref = np.zeros((4, 5, 5), dtype=bool)
    pred = np.zeros_like(ref)
    ref[0, :2, :5] = True  # 10 voxels
    pred[0, 1:3, :5] = True  # 10 voxels, 5 overlap
    m = region_metrics(pred, ref, spacing=(2.0, 1.0, 0.5))
    assert m.dice == pytest.approx(0.5)
    assert m.sensitivity == pytest.approx(0.5)
    assert m.specificity == pytest.approx((100 - 15) / (100 - 10))
    assert m.volume_pred_ml == pytest.approx(10 * 1.0 / 1000)
    assert m.volume_ref_ml == pytest.approx(10 * 1.0 / 1000)


def test_hd95_of_shifted_cube_is_shift():
    a = np.zeros((20, 20, 20), dtype=bool)
    a[5:12, 5:12, 5:12] = True
    b = np.roll(a, 2, axis=0)
    # surface distances: faces orthogonal to the shift move by 2, the rest by at most 2
    assert hd95(a, b) == pytest.approx(_official_hd95(a, b))
    assert hd95(a, b) == pytest.approx(2.0)
    assert hd95(a, b, spacing=(3.0, 1.0, 1.0)) == pytest.approx(6.0)


masks_3d = hnp.arrays(
    dtype=bool,
    shape=st.tuples(*(st.integers(1, 9) for _ in range(3))),
    elements=st.booleans(),
)


@settings(max_examples=80, deadline=None)
@given(
    pair=masks_3d.flatmap(
        lambda a: st.tuples(st.just(a), hnp.arrays(bool, a.shape, elements=st.booleans()))
    ),
    spacing=st.tuples(*(st.sampled_from([0.5, 1.0, 1.5, 3.0]) for _ in range(3))),
)
def test_cropped_hd95_equals_full_volume_official(pair, spacing):
    pred, ref = pair
    got = hd95(pred, ref, spacing=spacing)
    if not pred.any() and not ref.any():
        assert got == 0.0
    elif not pred.any() or not ref.any():
        assert got == HD95_PENALTY
    else:
        assert got == pytest.approx(_official_hd95(pred, ref, spacing), abs=1e-9)
        assert hd95(ref, pred, spacing=spacing) == pytest.approx(got, abs=1e-9)  # symmetric
    assert dice(pred, ref) == dice(ref, pred)


@settings(max_examples=60, deadline=None)
@given(
    labels=hnp.arrays(np.uint8, (2, 6, 5, 4), elements=st.sampled_from([0, 1, 2, 4])),
)
def test_dice_regions_matches_region_metrics(labels):
    pred = regions_to_stack(labels[0], "2021")
    ref = regions_to_stack(labels[1], "2021")
    fast = dice_regions(pred, ref)
    assert fast.shape == (3,)
    for i in range(3):
        assert fast[i] == pytest.approx(region_metrics(pred[i], ref[i]).dice)
    assert np.all(dice_regions(ref, ref) == 1.0)


def test_dice_regions_both_empty_is_one():
    empty = np.zeros((3, 4, 4, 4), dtype=bool)
    full = empty.copy()
    full[0] = True
    np.testing.assert_array_equal(dice_regions(empty, empty), [1.0, 1.0, 1.0])
    np.testing.assert_array_equal(dice_regions(full, empty), [0.0, 1.0, 1.0])


def test_shape_mismatch_is_input_error():
    with pytest.raises(BratsInputError, match="shape"):
        evaluate_labels(np.zeros((3, 3, 3), np.uint8), np.zeros((3, 3, 4), np.uint8))


@needs_brats2018
def test_real_case_volumes_and_cross_convention_evaluation():
    nib = pytest.importorskip("nibabel")
    seg_file = next(BRATS2018.glob("*/*_seg.nii.gz"))
    seg = np.asarray(nib.load(seg_file).dataobj).astype(np.uint8)
    vol = tumour_volumes_ml(seg, "2021", spacing=(1.0, 1.0, 1.0))
    assert vol["wt"] == pytest.approx(np.count_nonzero(seg) / 1000.0)
    assert vol["tc"] == pytest.approx(vol["ncr"] + vol["et"])
    assert vol["wt"] == pytest.approx(vol["tc"] + vol["ed"])
    assert vol["et"] == pytest.approx(np.count_nonzero(seg == 4) / 1000.0)
    half = tumour_volumes_ml(seg, "2021", spacing=(0.5, 1.0, 1.0))
    assert half["wt"] == pytest.approx(vol["wt"] / 2)
    as2023 = convert_labels(seg, "2021", "2023")
    assert tumour_volumes_ml(as2023, "2023") == pytest.approx(vol)
    out = evaluate_labels(as2023, seg)  # prediction in 2023, reference in 2021: auto-detected
    for region in ("wt", "tc", "et"):
        assert out[region]["dice"] == 1.0
        assert out[region]["hd95"] == 0.0
        assert out[region]["sensitivity"] == 1.0


@needs_official
def test_official_sample_lesionwise_matching_and_dice():
    from bratseg.metrics.lesionwise import lesionwise_metrics

    for pred_file, ref_file, official in _official_cases():
        pred, _ = _load(pred_file)
        ref, spacing = _load(ref_file)
        ours = lesionwise_metrics(pred, ref, spacing=spacing)
        for region in ("wt", "tc", "et"):
            want, got = official[region], ours[region]
            assert (got["n_ref"], got["n_pred"]) == (
                want["n_ref_instances"],
                want["n_pred_instances"],
            ), (ref_file, region)
            assert (got["tp"], got["fp"], got["fn"]) == (want["tp"], want["fp"], want["fn"])
            assert got["sq_dsc"] == pytest.approx(want["sq_dsc"], abs=1e-6), (ref_file, region)
            # all four cases, the two anisotropic ones (0.86 x 0.86 x 1.5 and 0.5 x 0.5 x 1 mm) too
            assert got["sq_hd95"] == pytest.approx(want["sq_hd95"], abs=1e-3), (ref_file, region)
            n = got["tp"] + got["fp"] + got["fn"]
            assert got["lesionwise_dsc"] == pytest.approx(got["sq_dsc"] * got["tp"] / n)


@needs_official
def test_lesionwise_hd95_spacing_axis_order():
    """Official order (spacing reversed) and true order agree on isotropic data only."""
    from bratseg.metrics.lesionwise import lesionwise_metrics

    pred_file, ref_file, _ = next(
        c for c in _official_cases() if _load(c[1])[1][0] != _load(c[1])[1][2]
    )
    pred, _ = _load(pred_file)
    ref, spacing = _load(ref_file)
    official = lesionwise_metrics(pred, ref, spacing=spacing)
    true_axes = lesionwise_metrics(pred, ref, spacing=spacing, official_axis_order=False)
    assert official["et"]["sq_hd95"] != pytest.approx(true_axes["et"]["sq_hd95"], abs=1e-3)
    iso = lesionwise_metrics(pred, ref, spacing=(2.0, 2.0, 2.0))
    assert iso["et"]["sq_hd95"] == pytest.approx(
        lesionwise_metrics(pred, ref, spacing=(2.0, 2.0, 2.0), official_axis_order=False)["et"][
            "sq_hd95"
        ]
    )


def test_lesionwise_edge_cases():
    from bratseg.metrics.lesionwise import region_lesionwise

    empty = np.zeros((12, 12, 12), dtype=bool)
    both_empty = region_lesionwise(empty, empty)
    assert both_empty["lesionwise_dsc"] == 1.0 and both_empty["lesionwise_hd95"] == 0.0
    ref = empty.copy()
    ref[1:4, 1:4, 1:4] = True  # lesion 1
    ref[8:11, 8:11, 8:11] = True  # lesion 2, missed
    pred = empty.copy()
    pred[1:4, 1:4, 1:4] = True
    pred[6, 0, 0] = True  # false positive
    out = region_lesionwise(pred, ref)
    assert (out["n_ref"], out["n_pred"], out["tp"], out["fp"], out["fn"]) == (2, 2, 1, 1, 1)
    assert out["sq_dsc"] == 1.0 and out["sq_hd95"] == 0.0
    assert out["lesionwise_dsc"] == pytest.approx(1 / 3)
    assert out["lesionwise_hd95"] == pytest.approx(2 * HD95_PENALTY / 3)


@needs_official
def test_evaluate_cli_lesionwise_gives_the_official_lesion_counts(capsys) -> None:
    from bratseg.cli.main import main

    pred_file, ref_file, official = _official_cases()[0]
    assert main(["evaluate", str(pred_file), str(ref_file), "--lesionwise", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert set(out) == {"wt", "tc", "et", "lesionwise"}  # whole-volume rows stay where they were
    for region in ("wt", "tc", "et"):
        got, want = out["lesionwise"][region], official[region]
        assert (got["tp"], got["fp"], got["fn"]) == (want["tp"], want["fp"], want["fn"])
        assert got["sq_dsc"] == pytest.approx(want["sq_dsc"], abs=1e-6)
    assert main(["evaluate", str(pred_file), str(ref_file)]) == 0
    assert "Lesion-wise" not in capsys.readouterr().out
    assert main(["evaluate", str(pred_file), str(ref_file), "--lesionwise"]) == 0
    assert "Lesion-wise Dice" in capsys.readouterr().out
