"""Postprocessing: thresholds, ET rules, argmax, merge table, invariants (hypothesis)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from scipy import ndimage

from bratseg.components import mask_components
from bratseg.errors import BratsInputError
from bratseg.labels import (
    CLASSES,
    CONVENTIONS,
    LABEL_VALUES,
    REGIONS,
    labels_from_regions,
    region_masks,
    regions_to_stack,
    valid_labels,
)
from bratseg.metrics import dice_regions
from bratseg.postprocess import (
    MERGE_TABLE,
    PostprocessConfig,
    apply_et_rules,
    argmax_classes,
    class_probs_to_region_probs,
    merge_labelmaps,
    postprocess,
)

DATA = Path(__file__).resolve().parents[3].parent / "shared" / "data"
BRATS2018 = DATA / "brats2018"

SHAPE = (6, 5, 4)


# --------------------------------------------------------------------------- references


def reference_postprocess(region_probs, config: PostprocessConfig, convention: str) -> np.ndarray:
    """Plain float64 / ndimage.label implementation of Futrega et al. 2021; Jiang et al. 2020; Henry et al. 2021 for comparison."""
    p = region_probs.astype(np.float64)
    c = config
    wt = p[0] >= c.wt_threshold
    if c.min_island_fraction > 0:
        comps, n = ndimage.label(wt, structure=np.ones((3, 3, 3)))
        sizes = np.bincount(comps.ravel())[1:]
        for i in range(1, n + 1):
            if sizes[i - 1] < c.min_island_fraction * sizes.max():
                wt[comps == i] = False
    tc = wt & (p[1] >= c.tc_threshold)
    et = tc & (p[2] >= c.et_threshold)
    if c.et_component_rule:
        structure = ndimage.generate_binary_structure(3, c.et_component_connectivity)
        comps, n = ndimage.label(et, structure=structure)
        for i in range(1, n + 1):
            comp = comps == i
            if comp.sum() < c.et_component_min_voxels and p[2][comp].mean() < c.et_component_prob:
                et[comp] = False
        if 0 < et.sum() < c.et_total_min_voxels and p[2][et].mean() < c.et_total_prob:
            et[:] = False
    if 0 < et.sum() < c.et_min_volume:
        et[:] = False
    v = LABEL_VALUES[convention]
    out = np.zeros(wt.shape, np.uint8)
    out[wt] = v["ed"]
    out[tc & ~et] = v["ncr"]
    out[et] = v["et"]
    return out


# --------------------------------------------------------------------------- strategies


def _random_probs(seed: int, levels: int, dtype) -> np.ndarray:
    """Probabilities on a grid of ``levels`` steps (hits thresholds such as 0.45 exactly)."""
    rng = np.random.default_rng(seed)
    return (rng.integers(0, levels + 1, size=(3, *SHAPE)) / levels).astype(dtype)


# Whole arrays from a seed: far faster to draw than element-wise strategies.
probabilities = st.builds(
    _random_probs,
    seed=st.integers(0, 2**32 - 1),
    levels=st.sampled_from([2, 4, 10, 20, 100, 1000]),
    dtype=st.sampled_from([np.float16, np.float32]),
)

configs = st.builds(
    PostprocessConfig,
    wt_threshold=st.floats(0.05, 0.95),
    tc_threshold=st.floats(0.05, 0.95),
    et_threshold=st.sampled_from([0.45, 0.5, 0.3, 0.7, 0.1]),
    et_min_volume=st.integers(0, 20),
    et_component_rule=st.booleans(),
    et_component_min_voxels=st.integers(0, 10),
    et_component_prob=st.floats(0.0, 1.0),
    et_total_min_voxels=st.integers(0, 30),
    et_total_prob=st.floats(0.0, 1.0),
    et_component_connectivity=st.integers(1, 3),
    min_island_fraction=st.sampled_from([0.0, 0.0, 0.2, 0.5, 1.0]),
)


@settings(max_examples=80, deadline=None)
@given(probs=probabilities, config=configs, convention=st.sampled_from(CONVENTIONS))
def test_postprocess_nested_and_equal_to_plain_reference(probs, config, convention):
    labels = postprocess(probs, config, convention=convention)
    assert labels.dtype == np.uint8 and labels.shape == SHAPE
    assert set(np.unique(labels).tolist()) <= set(valid_labels(convention))
    m = region_masks(labels, convention)
    assert not (m["et"] & ~m["tc"]).any() and not (m["tc"] & ~m["wt"]).any()
    # regions never exceed their thresholds
    assert not (m["wt"] & (probs[0].astype(np.float64) < config.wt_threshold)).any()
    assert not (m["et"] & (probs[2].astype(np.float64) < config.et_threshold)).any()
    np.testing.assert_array_equal(labels, reference_postprocess(probs, config, convention))


@settings(max_examples=60, deadline=None)
@given(
    raw=hnp.arrays(np.float32, (4, *SHAPE), elements=st.floats(0.0, 1.0, width=32)),
    dtype=st.sampled_from([np.float16, np.float32]),
    mode=st.sampled_from(["argmax", "hierarchical"]),
    rule=st.booleans(),
    convention=st.sampled_from(CONVENTIONS),
)
def test_class_probabilities_both_modes_nested(raw, dtype, mode, rule, convention):
    class_probs = (raw / np.maximum(raw.sum(0, keepdims=True), 1e-6)).astype(dtype)
    config = PostprocessConfig(mode=mode, et_component_rule=rule)
    labels = postprocess(None, config, convention=convention, class_probs=class_probs)
    assert set(np.unique(labels).tolist()) <= set(valid_labels(convention))
    m = region_masks(labels, convention)
    assert not (m["et"] & ~m["tc"]).any() and not (m["tc"] & ~m["wt"]).any()
    if mode == "argmax" and not rule:
        winner = np.argmax(class_probs, axis=0)
        values = np.array([0] + [LABEL_VALUES[convention][t] for t in CLASSES[1:]], np.uint8)
        np.testing.assert_array_equal(labels, values[winner])


@settings(max_examples=60, deadline=None)
@given(
    probs=hnp.arrays(
        st.sampled_from([np.float16, np.float32]),
        (4, *SHAPE),
        elements=st.sampled_from([0.0, 0.25, 0.5, 0.75, 1.0, 0.1, -0.5, -0.25]),
    )
)
def test_argmax_classes_matches_numpy_with_ties_and_negatives(probs):
    np.testing.assert_array_equal(argmax_classes(probs), np.argmax(probs, axis=0))


@settings(max_examples=80, deadline=None)
@given(
    mask=hnp.arrays(
        bool, st.tuples(*(st.integers(1, 8) for _ in range(3))), elements=st.booleans()
    ),
    connectivity=st.integers(1, 3),
)
@pytest.mark.parametrize("path", ["cc3d box", "flat indices"])
def test_mask_components_equals_ndimage_label(mask, connectivity, path):
    import bratseg.components as components

    previous = components.CC3D_MAX_BOX_PER_VOXEL
    components.CC3D_MAX_BOX_PER_VOXEL = 10**9 if path == "cc3d box" else 0  # force one path
    try:
        flat, comp, n = mask_components(mask, connectivity)
    finally:
        components.CC3D_MAX_BOX_PER_VOXEL = previous
    ref, n_ref = ndimage.label(mask, ndimage.generate_binary_structure(3, connectivity))
    assert n == n_ref
    np.testing.assert_array_equal(flat, np.flatnonzero(mask))
    ref_ids = ref.reshape(-1)[flat]
    # same partition: the map from our ids to ndimage's ids is a bijection
    pairs = set(zip(comp.tolist(), ref_ids.tolist()))
    assert len(pairs) == n == len({a for a, _ in pairs}) == len({b for _, b in pairs})


def test_class_probs_to_region_probs():
    rng = np.random.default_rng(0)
    raw = rng.random((4, *SHAPE)).astype(np.float32)
    cp = raw / raw.sum(0)
    rp = class_probs_to_region_probs(cp)
    assert rp.shape == (3, *SHAPE) and rp.dtype == np.float32
    i = {c: CLASSES.index(c) for c in CLASSES}
    np.testing.assert_allclose(rp[REGIONS.index("wt")], 1 - cp[i["background"]], atol=1e-6)
    np.testing.assert_allclose(rp[REGIONS.index("tc")], cp[i["ncr"]] + cp[i["et"]], atol=1e-6)
    np.testing.assert_array_equal(rp[REGIONS.index("et")], cp[i["et"]])
    assert class_probs_to_region_probs(cp.astype(np.float16)).dtype == np.float16


def test_futrega2021_defaults():
    c = PostprocessConfig()
    assert (c.wt_threshold, c.tc_threshold, c.et_threshold) == (0.45, 0.40, 0.45)
    assert c.et_component_rule is True
    assert (c.et_component_min_voxels, c.et_component_prob) == (16, 0.9)
    assert (c.et_total_min_voxels, c.et_total_prob) == (73, 0.9)
    assert c.mode == "hierarchical"


def test_threshold_is_inclusive_and_exact_in_float16():
    probs = np.zeros((3, 1, 1, 4), dtype=np.float16)
    t16 = np.float16(0.45)  # 0.449951..., just below 0.45
    probs[0, 0, 0] = [t16, np.nextafter(t16, np.float16(1)), 0.44, 1.0]
    labels = postprocess(probs, PostprocessConfig(et_component_rule=False))
    assert labels.ravel().tolist() == [0, 2, 0, 2]  # ED where p_WT >= 0.45 only
    # the decision depends on the value only, not on the dtype: float32(0.45) < 0.45
    probs32 = probs.astype(np.float32)
    probs32[0, 0, 0, :2] = [np.float32(0.45), np.nextafter(np.float32(0.45), np.float32(1))]
    out32 = postprocess(probs32, PostprocessConfig(et_component_rule=False))
    assert out32[0, 0, :2].tolist() == [0, 2]
    probs64 = probs32.astype(np.float64)
    probs64[0, 0, 0, 0] = 0.45  # exactly the threshold counts
    assert postprocess(probs64, PostprocessConfig(et_component_rule=False))[0, 0, 0] == 2


def _et_block_probs(n_voxels: int, prob: float, size=(12, 12, 12)) -> np.ndarray:
    """Region probs with one ET blob of ``n_voxels`` (a line) inside a large certain TC."""
    probs = np.zeros((3, *size), dtype=np.float32)
    probs[0] = probs[1] = 1.0
    probs[2].reshape(-1)[:n_voxels] = prob
    return probs


@pytest.mark.parametrize(
    ("n", "prob", "stays_et"),
    [(15, 0.8, False), (16, 0.8, True), (15, 0.95, True), (16, 0.95, True)],
)
def test_futrega2021_component_rule(n, prob, stays_et):
    config = PostprocessConfig(et_total_min_voxels=0)  # isolate the component rule
    labels = postprocess(_et_block_probs(n, prob), config, convention="2021")
    assert np.count_nonzero(labels == 4) == (n if stays_et else 0)
    assert np.count_nonzero(labels == 1) == labels.size - np.count_nonzero(labels == 4)


@pytest.mark.parametrize(
    ("n", "prob", "stays_et"),
    [(72, 0.8, False), (73, 0.8, True), (72, 0.95, True)],
)
def test_futrega2021_total_rule(n, prob, stays_et):
    config = PostprocessConfig(et_component_min_voxels=0)  # isolate the total rule
    labels = postprocess(_et_block_probs(n, prob), config, convention="2023")
    assert np.count_nonzero(labels == 3) == (n if stays_et else 0)
    assert np.count_nonzero(labels == 0) == 0  # removed ET became NCR, not background


def test_component_rule_per_component_and_total_counts_survivors():
    probs = np.zeros((3, 20, 20, 20), dtype=np.float32)
    probs[:2] = 1.0
    probs[2, 0:5, 0:5, 0:4] = 0.8  # 100 voxels: large, stays
    probs[2, 10, 10, 10:13] = 0.5  # 3 voxels, low prob: removed
    probs[2, 15, 15, 15:17] = 0.99  # 2 voxels, confident: stays
    labels = postprocess(probs, PostprocessConfig(), convention="2021")
    assert np.count_nonzero(labels == 4) == 102
    assert (labels[10, 10, 10:13] == 1).all()


def test_et_min_volume_jiang2020():
    probs = _et_block_probs(40, 0.99)
    keep = postprocess(probs, PostprocessConfig(et_min_volume=40))
    gone = postprocess(probs, PostprocessConfig(et_min_volume=41))
    assert np.count_nonzero(keep == 4) == 40
    assert np.count_nonzero(gone == 4) == 0 and np.count_nonzero(gone == 1) == gone.size
    assert (
        PostprocessConfig().et_min_volume == 0
    )  # Jiang et al. 2020 gives no value: off by default


def test_case_level_et_decision_uses_the_mean_over_the_surviving_et():
    # 500 ET voxels at p 0.6 plus 4 tiny confident voxels elsewhere: the mean decides, not the size
    probs = np.zeros((3, 20, 20, 20), dtype=np.float32)
    probs[:2] = 1.0
    probs[2, 0:10, 0:10, 0:5] = 0.6
    probs[2, 15, 15, 15:19] = 0.55  # 4 voxels, removed by the component rule before the decision
    mean_kept = 0.6
    off = postprocess(probs, PostprocessConfig(), convention="2021")
    assert np.count_nonzero(off == 4) == 500  # the seed rules keep a large unsure ET
    kept = postprocess(
        probs, PostprocessConfig(et_case_min_prob=mean_kept - 0.01), convention="2021"
    )
    assert np.count_nonzero(kept == 4) == 500
    gone = postprocess(
        probs, PostprocessConfig(et_case_min_prob=mean_kept + 0.01), convention="2021"
    )
    assert (
        np.count_nonzero(gone == 4) == 0 and np.count_nonzero(gone == 1) == gone.size
    )  # ET -> NCR
    # with the 4 stray voxels at p 0.2, the mean over all ET is (300 + 0.8) / 504 = 0.597 < 0.599,
    # over the survivors of the component rule it is 0.6: the decision counts survivors only
    probs[2, 15, 15, 15:19] = 0.2
    survivors = postprocess(probs, PostprocessConfig(et_case_min_prob=0.599), convention="2021")
    assert np.count_nonzero(survivors == 4) == 500
    with pytest.raises(BratsInputError, match="et_case_min_prob"):
        PostprocessConfig(et_case_min_prob=1.5)
    assert PostprocessConfig().et_case_min_prob == 0.0


def test_sparse_et_in_a_large_core_keeps_only_its_confident_et():
    # a 2,000-voxel core (TC everywhere) with a 200-voxel ET rim: 100 voxels at p 0.95, 100 at 0.6
    probs = np.zeros((3, 20, 20, 20), dtype=np.float32)
    probs[:2, :, :, :5] = 1.0
    probs[2, 0:10, 0:10, 0] = 0.95
    probs[2, 0:10, 0:10, 1] = 0.6

    def labels(**config):
        return postprocess(probs, PostprocessConfig(et_component_rule=False, **config), "2021")

    assert np.count_nonzero(labels() == 4) == 200  # off by default
    # ET / TC = 0.1: sparse below 0.11, not below 0.1 (strict), whatever the threshold
    sparse = labels(et_sparse_fraction=0.11, et_sparse_threshold=0.9)
    assert np.count_nonzero(sparse == 4) == 100 and (sparse[0:10, 0:10, 0] == 4).all()
    assert (sparse[0:10, 0:10, 1] == 1).all()  # the unsure half became NCR, still core
    assert np.array_equal(labels(et_sparse_fraction=0.1, et_sparse_threshold=0.9), labels())
    assert np.count_nonzero(labels(et_sparse_fraction=0.5, et_sparse_threshold=0.99) == 4) == 0
    # without a core mask the rule is skipped (apply_et_rules called alone)
    et = probs[2] >= 0.5
    apply_et_rules(et, probs[2], PostprocessConfig(et_sparse_fraction=0.5, et_component_rule=False))
    assert np.count_nonzero(et) == 200
    with pytest.raises(BratsInputError, match="et_sparse_threshold"):
        PostprocessConfig(et_sparse_threshold=2.0)


def test_apply_et_rules_without_probabilities_only_volume_rule():
    et = np.zeros((5, 5, 5), bool)
    et[0, 0, :3] = True
    apply_et_rules(et, None, PostprocessConfig())
    assert et.sum() == 3
    apply_et_rules(et, None, PostprocessConfig(et_min_volume=4))
    assert et.sum() == 0


@pytest.mark.parametrize("convention", CONVENTIONS)
def test_merge_table_henry2021_all_pairs(convention):
    v = LABEL_VALUES[convention]
    order = [0, v["ncr"], v["ed"], v["et"]]
    a = np.array([[x for x in order for _ in order]], dtype=np.uint8)
    b = np.array([[y for _ in order for y in order]], dtype=np.uint8)
    merged = merge_labelmaps(a, b, convention).reshape(4, 4)  # [A class, B class]
    expected_2021 = {  # Henry et al. 2021 Table 1, written as (A, B) -> merged, 2021 labels
        (0, 0): 0,
        (0, 1): 0,
        (0, 2): 2,
        (0, 4): 0,
        (1, 0): 1,
        (1, 1): 1,
        (1, 2): 1,
        (1, 4): 1,
        (2, 0): 0,
        (2, 1): 2,
        (2, 2): 2,
        (2, 4): 2,
        (4, 0): 4,
        (4, 1): 4,
        (4, 2): 4,
        (4, 4): 4,
    }
    to_conv = {0: 0, 1: v["ncr"], 2: v["ed"], 4: v["et"]}
    order_2021 = [0, 1, 2, 4]
    for ia, la in enumerate(order_2021):
        for ib, lb in enumerate(order_2021):
            assert merged[ia, ib] == to_conv[expected_2021[(la, lb)]], (la, lb)
    assert MERGE_TABLE.shape == (4, 4)


def test_merge_shape_mismatch():
    with pytest.raises(BratsInputError):
        merge_labelmaps(np.zeros((2, 2, 2), np.uint8), np.zeros((2, 2, 3), np.uint8))


@settings(max_examples=60, deadline=None)
@given(
    masks=hnp.arrays(bool, (3, *SHAPE), elements=st.booleans()),
    convention=st.sampled_from(CONVENTIONS),
)
def test_reconstruct_labels_henry2021(masks, convention):
    wt, tc, et = masks
    labels = labels_from_regions(wt, tc, et, convention, nesting="keep_et")
    v = LABEL_VALUES[convention]
    np.testing.assert_array_equal(labels == v["et"], et)  # ET left untouched
    np.testing.assert_array_equal(labels == v["ncr"], tc & ~et)  # NET = TC - ET
    np.testing.assert_array_equal(labels == v["ed"], wt & ~tc & ~et)  # ED = WT - TC
    m = region_masks(labels, convention)
    assert not (m["et"] & ~m["tc"]).any() and not (m["tc"] & ~m["wt"]).any()


@pytest.mark.parametrize(
    ("fraction", "kept"),
    [(0.0, 100 + 10 + 8), (0.08, 100 + 10 + 8), (0.1, 100 + 10), (0.11, 100), (1.0, 100)],
)
@pytest.mark.parametrize("labelling", ["sparse", "dense"])
def test_small_islands_removed_with_all_their_labels(fraction, kept, labelling, monkeypatch):
    import bratseg.components as components

    monkeypatch.setattr(components, "CC3D_MAX_BOX_PER_VOXEL", 0 if labelling == "sparse" else 10**9)
    probs = np.zeros((3, 20, 20, 20), dtype=np.float32)
    probs[:, 0:5, 0:5, 0:4] = 0.9  # main tumour, 100 voxels, all ET
    probs[:, 10, 10, 10:15] = 0.9  # island of 10 voxels: a line plus its diagonal neighbours
    probs[:, 11, 11, 11:16] = 0.9
    probs[:, 18, 18, 10:18] = 0.9  # island of 8 voxels
    config = PostprocessConfig(min_island_fraction=fraction, et_component_rule=False)
    labels = postprocess(probs, config, convention="2021")
    assert np.count_nonzero(labels) == kept  # 26-connectivity: the diagonal lines are one island
    assert (
        np.count_nonzero(labels == 4) == kept
    )  # TC and ET removed with the island, not left as ET
    assert (labels[0:5, 0:5, 0:4] == 4).all()
    assert PostprocessConfig().min_island_fraction == 0.0  # off unless a checkpoint sets it
    with pytest.raises(BratsInputError, match="min_island_fraction"):
        PostprocessConfig(min_island_fraction=1.5)


@pytest.mark.parametrize("labelling", ["sparse", "dense"])
def test_tumour_parts_without_core_removed_unless_there_is_no_core(labelling, monkeypatch):
    import bratseg.components as components

    monkeypatch.setattr(components, "CC3D_MAX_BOX_PER_VOXEL", 0 if labelling == "sparse" else 10**9)
    probs = np.zeros((3, 20, 20, 20), dtype=np.float32)
    probs[0, 0:6, 0:6, 0:6] = 0.9  # main tumour: 216 voxels of WT ...
    probs[1, 1:4, 1:4, 1:4] = 0.9  # ... with a 27-voxel core
    probs[0, 12:16, 12:16, 12:16] = 0.9  # edema only, larger than any island rule would drop
    probs[0, 9, 9, 9:12] = 0.9  # a line touching nothing: edema only
    probs[0, 6, 6, 6] = 0.9  # diagonal neighbour of the main tumour: part of it (26-connected)
    config = PostprocessConfig(wt_needs_core=True, et_component_rule=False)
    labels = postprocess(probs, config, convention="2021")
    wt = labels > 0
    assert np.count_nonzero(wt) == 216 + 1 and wt[0:6, 0:6, 0:6].all() and wt[6, 6, 6]
    assert np.count_nonzero(labels == 1) == 27  # the core itself untouched (NCR: no ET given)
    off = postprocess(probs, PostprocessConfig(et_component_rule=False), convention="2021")
    assert np.count_nonzero(off) == 216 + 1 + 64 + 3  # off by default: everything kept
    # no core anywhere: the edema is all there is, nothing is removed
    probs[1] = 0
    none = postprocess(probs, config, convention="2021")
    assert np.count_nonzero(none) == 216 + 1 + 64 + 3 and (none[none > 0] == 2).all()
    assert PostprocessConfig.from_dict({"wt_needs_core": True}).wt_needs_core is True
    with pytest.raises(BratsInputError, match="wt_needs_core"):
        PostprocessConfig.from_dict({"wt_needs_core": "yes"})


def test_config_roundtrip_and_validation():
    c = PostprocessConfig(mode="argmax", wt_threshold=0.5, et_min_volume=200)
    assert PostprocessConfig.from_dict(c.to_dict()) == c
    assert PostprocessConfig.from_dict(None) == PostprocessConfig()
    as_dict = c.to_dict() | {"mode": "hierarchical"}
    assert postprocess(_et_block_probs(3, 0.5), as_dict).dtype == np.uint8
    with pytest.raises(BratsInputError, match="unknown"):
        PostprocessConfig.from_dict({"wt_thresh": 0.5})
    with pytest.raises(BratsInputError):
        PostprocessConfig(tc_threshold=1.5)
    with pytest.raises(BratsInputError):
        PostprocessConfig(mode="softmax")
    with pytest.raises(BratsInputError):
        PostprocessConfig(et_component_connectivity=4)


def test_bad_inputs():
    with pytest.raises(BratsInputError, match="argmax"):
        postprocess(np.zeros((3, 2, 2, 2), np.float32), PostprocessConfig(mode="argmax"))
    with pytest.raises(BratsInputError, match="shape"):
        postprocess(np.zeros((4, 2, 2, 2), np.float32))
    with pytest.raises(BratsInputError):
        postprocess(None)


@pytest.mark.skipif(not BRATS2018.is_dir(), reason="BraTS 2018 cases not found in ../shared/data")
def test_real_case_probabilities_recover_expert_labels():
    nib = pytest.importorskip("nibabel")
    seg_file = next(BRATS2018.glob("*/*_seg.nii.gz"))
    seg = np.asarray(nib.load(seg_file).dataobj).astype(np.uint8)
    idx = np.argwhere(seg > 0)
    box = tuple(slice(max(lo - 4, 0), hi + 5) for lo, hi in zip(idx.min(0), idx.max(0)))
    seg = seg[box]
    regions = regions_to_stack(seg, "2021")
    probs = np.stack([ndimage.gaussian_filter(r.astype(np.float32), 1.0) for r in regions]).astype(
        np.float16
    )
    for convention in CONVENTIONS:
        labels = postprocess(probs, convention=convention)
        d = dice_regions(regions_to_stack(labels, convention), regions)
        assert (d > 0.85).all(), d


@pytest.mark.parametrize("threshold", [0.45, 0.4, 0.9, 0.5, 1.0, 1e-3, 6e-8, 0.0])
def test_float16_threshold_exhaustive(threshold):
    """The bit-pattern fast path equals float64 ``p >= t`` for every float16 value (NaN, inf,
    negatives and subnormals included)."""
    from bratseg.postprocess.pipeline import _ge_threshold

    every = np.arange(2**16, dtype=np.uint16).view(np.float16)
    with np.errstate(invalid="ignore"):
        expected = every.astype(np.float64) >= threshold
    np.testing.assert_array_equal(_ge_threshold(every, threshold), expected)
