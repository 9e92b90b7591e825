"""Futrega et al. 2021's two ET rules together: the total-ET rule counts the survivors of the component rule.

Futrega et al. (Futrega et al. 2021) first turn small unsure ET components into NCR, then turn *all* ET into
NCR when fewer than 73 ET voxels remain with a mean probability below 0.9. "Remain" matters: a
case whose ET is one 70-voxel component plus a few specks has more than 73 ET voxels before the
component rule and fewer after it. These tests build such cases on purpose (the random fields of
``test_postprocess.py`` almost never make the two rules interact).
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from scipy import ndimage

from bratseg.postprocess import PostprocessConfig, apply_et_rules, postprocess

CELL = 8  # blobs live in separate 8^3 cells, at most 7 voxels wide: never touching
GRID = 3  # 3 x 3 x 3 cells
SHAPE = (CELL * GRID,) * 3


def reference_et_rules(et: np.ndarray, prob: np.ndarray, config: PostprocessConfig) -> np.ndarray:
    """Futrega et al. 2021's rules written plainly with ``ndimage.label`` (a new array is returned)."""
    et, prob = et.copy(), prob.astype(np.float64)  # probabilities compared in float64
    structure = ndimage.generate_binary_structure(3, config.et_component_connectivity)
    comps, n = ndimage.label(et, structure=structure)
    for i in range(1, n + 1):
        comp = comps == i
        if (
            comp.sum() < config.et_component_min_voxels
            and prob[comp].mean() < config.et_component_prob
        ):
            et[comp] = False
    survivors = int(et.sum())  # counted after the component rule
    if 0 < survivors < config.et_total_min_voxels and prob[et].mean() < config.et_total_prob:
        et[:] = False
    return et


def _blob_field(blobs: list[tuple[tuple[int, int, int], float]]) -> np.ndarray:
    """ET probability field: blob ``k`` is a box of the given size in cell ``k``, at its prob."""
    prob = np.zeros(SHAPE, dtype=np.float32)
    for k, (size, p) in enumerate(blobs):
        cx, cy, cz = np.unravel_index(k, (GRID,) * 3)
        x, y, z = cx * CELL, cy * CELL, cz * CELL
        prob[x : x + size[0], y : y + size[1], z : z + size[2]] = p
    return prob


def _box_of(n_voxels: int, draw) -> tuple[int, int, int]:
    """A box of at most 4 x 4 x 4 with about ``n_voxels`` voxels (exactly when it factors)."""
    options = [
        (a, b, c)
        for a in range(1, 5)
        for b in range(1, 5)
        for c in range(1, 5)
        if a * b * c == n_voxels
    ]
    if options:
        return draw(st.sampled_from(options))
    return (1, 1, max(1, min(4, n_voxels)))


@st.composite
def interacting_cases(draw):
    """One ET core at least ``et_component_min_voxels`` big plus specks below that size, with the
    total-ET limit drawn around the core's size: both rules fire together in most examples."""
    min_voxels = draw(st.integers(2, 8))
    core = _box_of(draw(st.integers(min_voxels, 64)), draw)
    probs = st.sampled_from([0.5, 0.8, 0.89, 0.9, 0.95])
    blobs = [(core, draw(probs))]
    for _ in range(draw(st.integers(0, GRID**3 - 1))):
        blobs.append((_box_of(draw(st.integers(1, min_voxels - 1)), draw), draw(probs)))
    all_et = sum(int(np.prod(size)) for size, _ in blobs)
    core_size = int(np.prod(core))
    # half of the limits fall between the core's size and all ET: where the two counts disagree
    total_min = draw(
        st.one_of(st.integers(0, all_et + 2), st.integers(core_size, max(core_size, all_et)))
    )
    config = PostprocessConfig(
        et_component_min_voxels=min_voxels,
        et_component_prob=draw(st.sampled_from([0.8, 0.9, 0.92])),
        et_total_min_voxels=total_min,
        et_total_prob=draw(st.sampled_from([0.8, 0.9, 0.92])),
        et_component_connectivity=draw(st.integers(1, 3)),
    )
    return _blob_field(blobs), config


def _audit_case() -> tuple[np.ndarray, PostprocessConfig]:
    """70 ET voxels at p 0.8 in one component plus five 2-voxel specks at p 0.5 (Futrega et al. 2021 defaults)."""
    blobs = [((2, 5, 7), 0.8)] + [((1, 1, 2), 0.5)] * 5
    return _blob_field(blobs), PostprocessConfig()


@settings(max_examples=150, deadline=None)
@given(case=interacting_cases())
@example(case=_audit_case())
def test_et_rules_equal_the_plain_reference_when_both_rules_fire(case):
    prob, config = case
    et = prob >= config.et_threshold
    expected = reference_et_rules(et, prob, config)
    np.testing.assert_array_equal(apply_et_rules(et.copy(), prob, config), expected)


def test_total_rule_removes_a_70_voxel_et_once_the_specks_are_gone():
    """The audit's counterexample: 80 ET voxels before the component rule, 70 after it."""
    et_prob, config = _audit_case()
    assert (config.et_component_min_voxels, config.et_component_prob) == (16, 0.9)
    assert (config.et_total_min_voxels, config.et_total_prob) == (73, 0.9)
    probs = np.stack([np.ones(SHAPE, np.float32), np.ones(SHAPE, np.float32), et_prob])
    labels = postprocess(probs, config, convention="2021")
    assert np.count_nonzero(et_prob >= config.et_threshold) == 80
    assert np.count_nonzero(labels == 4) == 0  # 70 survivors < 73 with mean 0.8 < 0.9: all NCR
    assert np.count_nonzero(labels == 1) == labels.size  # everything is tumour core (TC = 1)
    # without the specks the same 70-voxel component goes the same way ...
    core_only = probs.copy()
    core_only[2][(et_prob > 0) & (et_prob < 0.8)] = 0.0
    assert np.count_nonzero(postprocess(core_only, config, convention="2021") == 4) == 0
    # ... and a confident one stays
    confident = probs.copy()
    confident[2][et_prob == np.float32(0.8)] = 0.95
    assert np.count_nonzero(postprocess(confident, config, convention="2021") == 4) == 70


@pytest.mark.parametrize("specks", [0, 2, 5])
def test_specks_never_doom_a_large_core(specks):
    """A 75-voxel core stays ET whatever the number of removed specks (75 survivors >= 73)."""
    blobs = [((3, 5, 5), 0.8)] + [((1, 1, 2), 0.5)] * specks
    et_prob = _blob_field(blobs)
    probs = np.stack([np.ones(SHAPE, np.float32), np.ones(SHAPE, np.float32), et_prob])
    labels = postprocess(probs, PostprocessConfig(), convention="2021")
    assert np.count_nonzero(labels == 4) == 75
