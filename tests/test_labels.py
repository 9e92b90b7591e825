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

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"

SHAPE = st.tuples(*(st.integers(1, 6) for _ in range(3)))


def label_maps(convention: str):
    return hnp.arrays(np.uint8, SHAPE, elements=st.sampled_from(valid_labels(convention)))


conv_and_map = st.sampled_from(CONVENTIONS).flatmap(
    lambda c: st.tuples(st.just(c), label_maps(c))
)


def test_constants_consistent():
    assert REGIONS == ("wt", "tc", "et")
    assert CLASSES == ("background", "ncr", "ed", "et")
    assert LABEL_VALUES["2021"]["et"] == 4 and LABEL_VALUES["2023"]["et"] == 3
    for conv in CONVENTIONS:
        assert valid_labels(conv) == (0, 1, 2, LABEL_VALUES[conv]["et"])
        assert label_value("et", conv) == LABEL_VALUES[conv]["et"]
        lut = tissue_index_map(conv)
        for idx, tissue in enumerate(CLASSES[1:], start=1):
            assert lut[LABEL_VALUES[conv][tissue]] == idx
    assert set(LABEL_NAMES) == set(LABEL_COLORS) == {"ncr", "ed", "et"}
    assert set(REGION_TISSUES["et"]) < set(REGION_TISSUES["tc"]) < set(REGION_TISSUES["wt"])
    with pytest.raises(BratsInputError):
        check_convention("2019")


@settings(max_examples=80, deadline=None)
@given(data=conv_and_map)
def test_convert_round_trip(data):
    conv, labels = data
    other = "2023" if conv == "2021" else "2021"
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
@given(data=conv_and_map, default=st.sampled_from(CONVENTIONS))
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
    both = np.array([0, 3, 4], dtype=np.uint8)
    with pytest.raises(BratsInputError, match="both 3 and 4") as err:
        detect_convention(both, source="seg.nii.gz")
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
        DATA / "brats2023-naming" / "BraTS-GLI-00001-000"
        / "algorithm-output-not-ground-truth-seg.nii.gz"
    )
    if algo.is_file():
        lab = np.asarray(nib.load(algo).dataobj)
        assert detect_convention(lab) == "2023"
        back = convert_labels(convert_labels(lab, "2023", "2021"), "2021", "2023")
        np.testing.assert_array_equal(back, lab)
