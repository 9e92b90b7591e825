"""The case-level no-enhancement ET rule, on real cases and their contrast-removed copies."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage as ndi

from bratseg.errors import BratsInputError
from bratseg.inference.engine import t1_t1ce
from bratseg.io import load_case
from bratseg.io.channels import MODALITIES
from bratseg.labels import LABEL_VALUES
from bratseg.postprocess import (
    PostprocessConfig,
    enhancement_ratio,
    postprocess,
    postprocess_with_evidence,
)

ET = LABEL_VALUES["2021"]["et"]
NCR = LABEL_VALUES["2021"]["ncr"]


@pytest.fixture(scope="module")
def case(brats2018_dir: Path):
    """An enhancing glioblastoma with its expert labels."""
    return load_case(brats2018_dir / "Brats18_CBICA_ABM_1")


def _probs(seg: np.ndarray) -> np.ndarray:
    """Region probabilities (3, X, Y, Z) that reproduce ``seg`` exactly (WT, TC, ET masks)."""
    wt = seg > 0
    tc = (seg == NCR) | (seg == ET)
    return np.stack([wt, tc, seg == ET]).astype(np.float32)


def _without_contrast(image: np.ndarray, seg: np.ndarray) -> np.ndarray:
    """T1Gd inside ET and a one-voxel rim replaced by T1 mapped linearly onto T1Gd (fit on the
    brain outside the tumour): what a tumour without contrast uptake looks like."""
    t1, t1ce = image[MODALITIES.index("t1")], image[MODALITIES.index("t1ce")]
    brain = (t1 > 0) & (t1ce > 0) & (seg == 0)
    a, b = np.polyfit(t1[brain][::20], t1ce[brain][::20], 1)
    region = ndi.binary_dilation(seg == ET, iterations=1)
    out = image.copy()
    out[MODALITIES.index("t1ce")][region] = a * t1[region] + b
    return out


def test_the_reference_et_of_an_enhancing_case_enhances(case) -> None:
    seg = case.seg
    ratio = enhancement_ratio(t1_t1ce(case.image), seg > 0, seg == ET)
    assert ratio is not None and ratio > 1.5


def test_enhancing_case_keeps_its_et_with_the_rule_on(case) -> None:
    config = PostprocessConfig(et_enhancement_min=1.15, et_component_rule=False)
    labels, evidence = postprocess_with_evidence(
        _probs(case.seg), config, t1_t1ce=t1_t1ce(case.image)
    )
    assert evidence is not None and not evidence.removed
    assert evidence.ratio is not None and evidence.ratio > 1.5
    np.testing.assert_array_equal(labels, case.seg)
    assert evidence.message().startswith("ET kept")


def test_contrast_removed_copy_loses_its_et_to_the_core(case) -> None:
    image = _without_contrast(case.image, case.seg)
    config = PostprocessConfig(et_enhancement_min=1.15, et_component_rule=False)
    labels, evidence = postprocess_with_evidence(_probs(case.seg), config, t1_t1ce=t1_t1ce(image))
    assert evidence is not None and evidence.removed
    assert evidence.ratio is not None and 0.8 < evidence.ratio < 1.15
    assert evidence.et_voxels == int((case.seg == ET).sum())
    assert not (labels == ET).any()
    # ET became NCR: the tumour core and the whole tumour are unchanged.
    np.testing.assert_array_equal(labels > 0, case.seg > 0)
    np.testing.assert_array_equal(labels == NCR, (case.seg == NCR) | (case.seg == ET))
    msg = evidence.message(voxel_ml=0.001)
    assert msg.startswith("ET removed: no enhancement (T1Gd/T1 ")
    assert f"{evidence.et_voxels * 0.001:.1f} mL became NCR" in msg


def test_rule_off_or_without_images_changes_nothing(case) -> None:
    image = _without_contrast(case.image, case.seg)
    off = postprocess_with_evidence(
        _probs(case.seg), PostprocessConfig(et_component_rule=False), t1_t1ce=t1_t1ce(image)
    )
    assert off[1] is None
    np.testing.assert_array_equal(off[0], case.seg)
    on = PostprocessConfig(et_enhancement_min=1.15, et_component_rule=False)
    no_images = postprocess(_probs(case.seg), on)
    np.testing.assert_array_equal(no_images, case.seg)


@pytest.mark.parametrize("value", [-0.1, 3.5, float("nan")])
def test_threshold_out_of_range_is_refused(value: float) -> None:
    with pytest.raises(BratsInputError, match="et_enhancement_min"):
        PostprocessConfig(et_enhancement_min=value)


def _graded_probs(seg: np.ndarray) -> np.ndarray:
    """Region probabilities (3, X, Y, Z) of ``seg`` graded so that thresholds move the masks:
    edema and ET voxels get probabilities spread over 0.3-0.95 (seeded), the core 0.9."""
    rng = np.random.default_rng(0)
    probs = _probs(seg) * np.float32(0.9)
    wt, et = probs[0] > 0, probs[2] > 0
    probs[0][wt & ~(probs[1] > 0)] = rng.uniform(0.3, 0.95, int((wt & ~(probs[1] > 0)).sum()))
    probs[2][et] = rng.uniform(0.3, 0.95, int(et.sum()))
    return probs


def test_a_review_session_fits_the_reference_once_across_threshold_moves(case) -> None:
    """Two moves of the ET thresholds refit nothing (the tumour the fit leaves out is
    unchanged), a WT move fits again; every result equals postprocessing afresh."""
    import dataclasses

    from bratseg.review import ModelInfo, ReviewSession

    probs = _graded_probs(case.seg)
    images = t1_t1ce(case.image)
    config = PostprocessConfig(et_enhancement_min=1.15, et_component_rule=False)
    labels, evidence = postprocess_with_evidence(probs, config, t1_t1ce=images)
    wt_voxels = int((labels > 0).sum())
    session = ReviewSession(
        case=case,
        convention="2021",
        region_probs=probs,
        config=config,
        proposal=labels.copy(),
        labels=labels,
        overrides=np.zeros(labels.shape, dtype=bool),
        model=ModelInfo(["graded"], [], []),
        et_evidence=evidence,
    )
    seen = []
    for changes in (
        {"et_threshold": 0.6},
        {"et_threshold": 0.7, "et_enhancement_min": 1.9},
        {"wt_threshold": 0.7},
    ):
        moved = dataclasses.replace(config, **changes)
        session.apply_config(moved)
        fresh_labels, fresh_evidence = postprocess_with_evidence(probs, moved, t1_t1ce=images)
        np.testing.assert_array_equal(session.labels, fresh_labels)
        assert session.et_evidence == fresh_evidence is not None
        seen.append((session.reference_fits.fits, int((fresh_labels > 0).sum())))
    assert seen[0] == seen[1] == (1, wt_voxels)  # two threshold moves, one fit
    assert session.et_evidence is not None
    assert seen[2][0] == 2 and seen[2][1] < wt_voxels  # WT moved: fitted again
    assert [session.et_evidence.removed, session.et_evidence.threshold] == [False, 1.15]


def _thin_et(seg: np.ndarray) -> np.ndarray:
    """``seg`` with its ET eroded to a few voxels inside an unchanged core (a mostly
    non-enhancing core, as the network paints it on a contrast-free tumour)."""
    out = seg.copy()
    et = seg == ET
    keep = ndi.binary_erosion(et, iterations=3)
    out[et & ~keep] = NCR
    return out


def test_core_fraction_rule_removes_a_small_share_of_et_and_says_so(case) -> None:
    seg = _thin_et(case.seg)
    core = int(((seg == NCR) | (seg == ET)).sum())
    share = int((seg == ET).sum()) / core
    assert 0 < share < 0.2
    config = PostprocessConfig(et_core_fraction_min=0.2, et_component_rule=False)
    labels, evidence = postprocess_with_evidence(_probs(seg), config)  # no images needed
    assert evidence is not None and evidence.removed and evidence.little_et
    assert not evidence.no_uptake and evidence.ratio is None
    assert evidence.core_fraction == pytest.approx(share)
    assert not (labels == ET).any()
    np.testing.assert_array_equal(labels == NCR, (seg == NCR) | (seg == ET))
    msg = evidence.message(voxel_ml=0.001)
    assert msg.startswith(f"ET removed: no enhancement (ET {share:.0%} of the core < 20%")
    # A larger share keeps the ET, and the evidence says by how much.
    kept, evidence = postprocess_with_evidence(
        _probs(case.seg), config, t1_t1ce=t1_t1ce(case.image)
    )
    np.testing.assert_array_equal(kept, case.seg)
    assert evidence is not None and not evidence.removed
    assert evidence.message().startswith("ET kept: ET ") and ">= 20%" in evidence.message()


def test_both_rules_report_both_pieces_of_evidence(case) -> None:
    image = _without_contrast(case.image, case.seg)
    config = PostprocessConfig(
        et_enhancement_min=1.15, et_core_fraction_min=0.05, et_component_rule=False
    )
    labels, evidence = postprocess_with_evidence(_probs(case.seg), config, t1_t1ce=t1_t1ce(image))
    assert evidence is not None and evidence.removed and evidence.no_uptake
    assert not evidence.little_et and evidence.core_fraction is not None
    assert not (labels == ET).any()
    # on the real images the ET enhances and is a large share: both rules keep it
    labels, evidence = postprocess_with_evidence(
        _probs(case.seg), config, t1_t1ce=t1_t1ce(case.image)
    )
    np.testing.assert_array_equal(labels, case.seg)
    assert evidence is not None and not evidence.removed
    msg = evidence.message()
    assert "T1Gd/T1" in msg and "of the core >= 5%" in msg
