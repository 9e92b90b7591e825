"""Label conventions: property tests for conversions, regions and detection."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from bratseg.errors import BratsInputError
from bratseg.labels import (
    CLASSES,
    CONVENTIONS,
    LABEL_COLORS,
    LABEL_NAMES,
    LABEL_VALUES,
    REGION_TISSUES,
    REGIONS,
    _present_values,
    check_convention,
    convert_labels,
    detect_convention,
    label_value,
    labels_from_regions,
    region_masks,
    regions_to_stack,
    tissue_index_map,
    valid_labels,
)

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"

SHAPE = st.tuples(*(st.integers(1, 6) for _ in range(3)))


def label_maps(convention: str):
    return hnp.arrays(np.uint8, SHAPE, elements=st.sampled_from(valid_labels(convention)))


#: Conventions whose maps hold only the three tumour tissues (2024 adds the resection cavity).
TUMOUR_CONVENTIONS = ("2021", "2023", "nnunet")

conv_and_map = st.sampled_from(TUMOUR_CONVENTIONS).flatmap(
    lambda c: st.tuples(st.just(c), label_maps(c))
)


def test_constants_consistent():
    assert REGIONS == ("wt", "tc", "et")
    assert CLASSES == ("background", "ncr", "ed", "et")
    assert CONVENTIONS == ("2021", "2023", "2024", "nnunet")
    assert LABEL_VALUES["2021"] == {"ncr": 1, "ed": 2, "et": 4}
    assert LABEL_VALUES["2023"] == {"ncr": 1, "ed": 2, "et": 3}
    assert LABEL_VALUES["2024"] == {"ncr": 1, "ed": 2, "et": 3, "rc": 4}  # NETC, SNFH, ET, RC
    assert LABEL_VALUES["nnunet"] == {"ed": 1, "ncr": 2, "et": 3}
    assert valid_labels("2021") == (0, 1, 2, 4) and valid_labels("2024") == (0, 1, 2, 3, 4)
    assert label_value("ncr", "nnunet") == 2
    for conv in CONVENTIONS:
        lut = tissue_index_map(conv)
        for idx, tissue in enumerate(CLASSES[1:], start=1):
            assert lut[LABEL_VALUES[conv][tissue]] == idx
    assert tissue_index_map("2024")[4] == 0  # the cavity is not tumour
    assert set(LABEL_NAMES) == set(LABEL_COLORS) == {"ncr", "ed", "et", "rc"}
    assert set(REGION_TISSUES["et"]) < set(REGION_TISSUES["tc"]) < set(REGION_TISSUES["wt"])
    with pytest.raises(BratsInputError):
        check_convention("2019")


@settings(max_examples=80, deadline=None)
@given(data=conv_and_map, other=st.sampled_from(CONVENTIONS))
def test_convert_round_trip(data, other):
    conv, labels = data
    there = convert_labels(labels, conv, other)
    assert there.dtype == np.uint8
    assert set(np.unique(there).tolist()) <= set(valid_labels(other))
    np.testing.assert_array_equal(convert_labels(there, other, conv), labels)
    np.testing.assert_array_equal(convert_labels(labels, conv, conv), labels)
    # regions do not change under conversion
    for r in REGIONS:
        np.testing.assert_array_equal(region_masks(there, other)[r], region_masks(labels, conv)[r])


@settings(max_examples=80, deadline=None)
@given(data=conv_and_map)
def test_regions_nested_and_reconstructed(data):
    conv, labels = data
    m = region_masks(labels, conv)
    assert not (m["et"] & ~m["tc"]).any() and not (m["tc"] & ~m["wt"]).any()
    np.testing.assert_array_equal(m["wt"], labels > 0)
    np.testing.assert_array_equal(m["et"], labels == LABEL_VALUES[conv]["et"])
    stack = regions_to_stack(labels, conv)
    assert stack.shape == (3, *labels.shape) and stack.dtype == bool
    for i, r in enumerate(REGIONS):
        np.testing.assert_array_equal(stack[i], m[r])
    np.testing.assert_array_equal(labels_from_regions(*stack, conv), labels)


@settings(max_examples=60, deadline=None)
@given(
    masks=hnp.arrays(
        bool, st.tuples(st.just(3), *(st.integers(1, 5) for _ in range(3))), elements=st.booleans()
    ),
    conv=st.sampled_from(CONVENTIONS),
)
def test_labels_from_arbitrary_regions_clip_to_nesting(masks, conv):
    wt, tc, et = masks
    labels = labels_from_regions(wt, tc, et, conv)
    m = region_masks(labels, conv)
    np.testing.assert_array_equal(m["wt"], wt)
    np.testing.assert_array_equal(m["tc"], tc & wt)
    np.testing.assert_array_equal(m["et"], et & tc & wt)


@settings(max_examples=80, deadline=None)
@given(
    data=st.sampled_from(("2021", "2023")).flatmap(lambda c: st.tuples(st.just(c), label_maps(c))),
    default=st.sampled_from(CONVENTIONS),
)
def test_detection(data, default):
    conv, labels = data
    et_value = LABEL_VALUES[conv]["et"]
    detected = detect_convention(labels, default=default)
    if (labels == et_value).any():
        assert detected == conv
    else:  # only 0/1/2: ambiguous
        assert detected == default
    assert detect_convention(labels, override=conv) == conv
    other = "2023" if conv == "2021" else "2021"
    if (labels == et_value).any():
        with pytest.raises(BratsInputError, match=other):
            detect_convention(labels, override=other, source="x.nii.gz")


def test_detection_refusals_name_the_file():
    with pytest.raises(BratsInputError, match="2024") as err:
        detect_convention(np.array([0, 1, 4]), strict=True, source="seg.nii.gz")
    assert err.value.path == Path("seg.nii.gz")
    with pytest.raises(BratsInputError, match=r"\[7\]"):
        detect_convention(np.array([0, 1, 7]), source="seg.nii.gz")
    with pytest.raises(BratsInputError):
        detect_convention(np.array([0.0, 1.5]))


@settings(max_examples=80, deadline=None)
@given(
    values=hnp.arrays(
        np.int16, st.tuples(st.integers(0, 5), st.integers(1, 5)), elements=st.integers(-3, 40)
    ),
    dtype=st.sampled_from([np.uint8, np.int16, np.uint16, np.float32, np.float64]),
    fraction=st.booleans(),
)
def test_present_values_matches_unique(values, dtype, fraction):
    arr = (np.abs(values) if np.dtype(dtype).kind == "u" else values).astype(dtype)
    if fraction and arr.dtype.kind == "f" and arr.size:
        arr = arr.copy()
        arr.flat[0] = 0.5
    assert _present_values(arr) == set(np.unique(arr).tolist())


@pytest.mark.skipif(not (DATA / "brats2018").is_dir(), reason="shared BraTS data not found")
def test_real_label_maps_detected():
    nib = pytest.importorskip("nibabel")
    seg = next((DATA / "brats2018").glob("*/*_seg.nii.gz"))
    assert detect_convention(np.asarray(nib.load(seg).dataobj)) == "2021"
    algo = (
        DATA
        / "brats2023-naming"
        / "BraTS-GLI-00001-000"
        / "algorithm-output-not-ground-truth-seg.nii.gz"
    )
    if algo.is_file():
        lab = np.asarray(nib.load(algo).dataobj)
        assert detect_convention(lab) == "2023"
        back = convert_labels(convert_labels(lab, "2023", "2021"), "2021", "2023")
        np.testing.assert_array_equal(back, lab)


def test_ambiguous_maps_warn_once_say_why_and_strict_refuses(caplog) -> None:
    import bratseg.labels as labels_module

    labels_module._WARNED.clear()
    with caplog.at_level("WARNING", logger="bratseg.labels"):
        assert detect_convention(np.array([0, 1, 2, 4]), source="a.nii.gz") == "2021"
        assert detect_convention(np.array([0, 2, 4]), source="b.nii.gz") == "2021"
        assert detect_convention(np.array([0, 1, 3]), source="c.nii.gz") == "2023"
    text = caplog.text
    assert text.count("--labels 2024") == 1 and "a.nii.gz" in text and "b.nii.gz" not in text
    assert "--labels nnunet" in text and "NCR" in text
    with pytest.raises(BratsInputError, match="nnunet"):
        detect_convention(np.array([0, 1, 3]), strict=True)
    # unambiguous: both 3 and 4 can only be 2024; an explicit convention never warns
    caplog.clear()
    with caplog.at_level("WARNING", logger="bratseg.labels"):
        assert detect_convention(np.array([0, 1, 2, 3, 4])) == "2024"
        assert detect_convention(np.array([0, 1, 3]), override="nnunet") == "nnunet"
    assert caplog.text == ""


def test_2024_cavity_is_its_own_region_and_needs_an_explicit_drop() -> None:
    from bratseg.labels import rc_mask

    lab = np.array([0, 1, 2, 3, 4, 4], dtype=np.uint8)  # NETC, SNFH, ET, RC, RC
    m = region_masks(lab, "2024")
    assert m["wt"].tolist() == [False, True, True, True, False, False]
    assert m["tc"].tolist() == [False, True, False, True, False, False]
    assert m["et"].tolist() == [False, False, False, True, False, False]
    assert rc_mask(lab, "2024").sum() == 2 and rc_mask(lab, "2021") is None
    with pytest.raises(BratsInputError, match="resection cavity"):
        convert_labels(lab, "2024", "2021")
    assert convert_labels(lab, "2024", "2021", drop_rc=True).tolist() == [0, 1, 2, 4, 0, 0]
    assert convert_labels(lab[:4], "2024", "nnunet").tolist() == [0, 2, 1, 3]
    assert convert_labels(np.array([0, 1, 2, 3]), "nnunet", "2021").tolist() == [0, 2, 1, 4]
    with pytest.raises(BratsInputError, match="not valid"):
        convert_labels(np.array([0, 4]), "2023", "2021")


def test_2024_map_scored_with_rc_separate() -> None:
    """Read as 2024, the cavity is its own region and never counts as ET; read as 2021 it would."""
    from bratseg.metrics import evaluate_labels

    ref = np.zeros((12, 12, 12), np.uint8)
    ref[2:6, 2:6, 2:6] = 3  # ET
    ref[7:10, 7:10, 7:10] = 4  # resection cavity
    pred = np.where(ref == 3, 3, 0).astype(np.uint8)  # ET found, no cavity predicted (2023 output)
    out = evaluate_labels(pred, ref, pred_convention="2023", ref_convention="2024")
    assert set(out) == {"wt", "tc", "et", "rc"}
    assert out["et"]["dice"] == 1.0 and out["wt"]["dice"] == 1.0
    assert out["rc"]["dice"] == 0.0 and out["rc"]["volume_ref_ml"] == pytest.approx(27 / 1000)
    plain = evaluate_labels(
        pred,
        np.where(ref == 4, 0, ref).astype(np.uint8),
        pred_convention="2023",
        ref_convention="2023",
    )
    assert set(plain) == {"wt", "tc", "et"}
    # the same 2024 map with only the cavity (no ET) is what detection would read as 2021
    cavity_only = np.where(ref == 3, 1, ref).astype(np.uint8)
    wrong = evaluate_labels(np.zeros_like(ref), cavity_only, pred_convention="2023")
    right = evaluate_labels(
        np.zeros_like(ref), cavity_only, pred_convention="2023", ref_convention="2024"
    )
    assert wrong["et"]["volume_ref_ml"] > 0 and right["et"]["volume_ref_ml"] == 0


@pytest.mark.skipif(not (DATA / "brats2018").is_dir(), reason="shared BraTS data not found")
def test_evaluate_scores_a_real_2024_map_with_the_cavity_separate(tmp_path):
    """A real expert label re-coded as a BraTS 2024 post-treatment map (2023 values plus a resection
    cavity = 4 cut out of its edema): detected as 2024, RC reported as its own region, ET intact."""
    import json
    import subprocess
    import sys

    nib = pytest.importorskip("nibabel")
    seg_file = DATA / "brats2018" / "Brats18_2013_2_1" / "Brats18_2013_2_1_seg.nii.gz"
    img = nib.load(seg_file)
    seg = np.asarray(img.dataobj).astype(np.uint8)
    post = convert_labels(seg, "2021", "2023")
    ed = np.argwhere(post == 2)
    cavity = tuple(ed[: len(ed) // 3].T)  # a third of the edema becomes the cavity
    post[cavity] = 4
    ref = tmp_path / "post_seg.nii.gz"
    nib.save(nib.Nifti1Image(post, img.affine, img.header), ref)
    pred = tmp_path / "pred.nii.gz"  # a prediction (2023 labels) that finds the tumour, no cavity
    nib.save(nib.Nifti1Image(convert_labels(seg, "2021", "2023"), img.affine, img.header), pred)
    proc = subprocess.run(
        [sys.executable, "-m", "bratseg.cli.main", "evaluate", str(pred), str(ref), "--json"],
        capture_output=True,
        encoding="utf-8",
        errors="replace",
    )
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert set(out) == {"wt", "tc", "et", "rc"}
    assert out["et"]["dice"] == 1.0 and out["tc"]["dice"] == 1.0  # the cavity never counts as ET
    assert out["rc"]["dice"] == 0.0 and out["rc"]["volume_ref_ml"] == pytest.approx(
        len(ed) // 3 / 1000
    )
    assert out["wt"]["volume_ref_ml"] == pytest.approx(
        out["wt"]["volume_pred_ml"] - len(ed) // 3 / 1000
    )


def test_merge_labels_cli_writes_the_table_merge_of_two_real_maps(brats2018_dir, tmp_path, capsys):
    import nibabel as nib

    from bratseg.cli.main import main
    from bratseg.io import load_label_map
    from bratseg.postprocess.labelmaps import merge_labelmaps

    a_file = next((brats2018_dir / "Brats18_2013_2_1").glob("*_seg.nii.gz"))
    a = load_label_map(a_file)
    b_data = a.data.copy()
    b_data[(a.data == 0) & (np.roll(a.data, 3, axis=0) > 0)] = 2  # B: more edema around
    b_data[a.data == 4] = 2  # and no ET at all
    b_file = tmp_path / "b.nii.gz"
    nib.save(nib.Nifti1Image(b_data, a.affine, a.header), b_file)
    out = tmp_path / "merged.nii.gz"
    assert main(["merge-labels", str(a_file), str(b_file), str(out)]) == 0
    merged = load_label_map(out)
    np.testing.assert_array_equal(merged.data, merge_labelmaps(a.data, b_data, "2021"))
    np.testing.assert_array_equal(merged.affine, a.affine)
    assert (merged.data == 4).sum() == (a.data == 4).sum()  # ET from A
    assert (merged.data > 0).sum() > (a.data > 0).sum()  # edema from B
    assert "voxels differ from A" in capsys.readouterr().out
    shifted = tmp_path / "shifted.nii.gz"
    affine = a.affine.copy()
    affine[0, 3] += 5
    nib.save(nib.Nifti1Image(b_data, affine, a.header), shifted)
    assert main(["merge-labels", str(a_file), str(shifted), str(tmp_path / "x.nii.gz")]) == 2
    assert "not on the voxel grid of A" in capsys.readouterr().err
    assert not (tmp_path / "x.nii.gz").exists()
