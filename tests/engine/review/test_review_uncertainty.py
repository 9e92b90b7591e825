"""Uncertainty a reviewer can act on: entropy and disagreement maps, hotspots, the review rules."""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest

from bratseg.inference import MemberSpread
from bratseg.labels import LABEL_VALUES
from bratseg.review.flag_rules import CaseFacts, far_component_mm, review_reasons
from bratseg.review.uncertainty import (
    DEFAULT_RULES,
    Hotspot,
    ReviewRules,
    assess_case,
    component_hotspots,
    uncertain_hotspots,
)
from bratseg.review.uncertainty_maps import binary_entropy, uncertainty_map

SHAPE = (24, 20, 16)
ET, NCR, ED = (LABEL_VALUES["2021"][t] for t in ("et", "ncr", "ed"))
#: Every rule off but "no tumour predicted".
OFF = ReviewRules(
    min_wt_ml=0.0,
    max_wt_ml=math.inf,
    max_uncertain_ml=math.inf,
    max_disagreement_ml=math.inf,
    max_uncertain_fraction=math.inf,
    max_disagreement_fraction=math.inf,
    min_et_mean_prob=0.0,
    min_et_fraction=0.0,
    max_component_distance_mm=math.inf,
    max_low_confidence_ml=math.inf,
    min_hotspot_ml=0.001,
)


def _case():
    """Probabilities and labels of a synthetic case: a confident tumour with an ET core, a less
    confident satellite, and a large and a small uncertain blob away from both."""
    probs = np.zeros((3, *SHAPE), dtype=np.float32)
    labels = np.zeros(SHAPE, dtype=np.uint8)
    labels[2:8, 2:8, 2:8] = ED
    labels[3:6, 3:6, 3:6] = ET
    probs[0][2:8, 2:8, 2:8] = 0.99
    probs[1][3:6, 3:6, 3:6] = probs[2][3:6, 3:6, 3:6] = 0.98
    labels[18:21, 2:5, 2:5] = ED  # satellite, low WT probability
    probs[0][18:21, 2:5, 2:5] = 0.7
    probs[2][10:16, 12:18, 8:14] = 0.5  # large uncertain ET blob (216 voxels)
    probs[0][2:4, 15:17, 12:14] = 0.45  # small uncertain WT blob (8 voxels)
    return probs.astype(np.float16), labels


def test_binary_entropy():
    h = binary_entropy(np.array([0.0, 1.0, 0.5, 0.2, 0.8, 0.11]))
    assert h.dtype == np.float32
    np.testing.assert_allclose(h[:3], [0.0, 0.0, 1.0], atol=1e-4)
    assert h[3] == pytest.approx(h[4]) and h[3] == pytest.approx(0.7219, abs=1e-3)
    assert h[5] == pytest.approx(0.4999, abs=1e-2)


def test_binary_entropy_of_float16_is_the_computed_value_for_every_float16():
    """The table lookup for float16 probabilities (what inference keeps) gives exactly what the
    logarithms give in float32, for all 65,536 bit patterns (NaN stays NaN), in any layout."""
    every = np.arange(2**16, dtype=np.uint16).view(np.float16)
    looked_up = binary_entropy(every)
    with np.errstate(invalid="ignore"):
        computed = binary_entropy(every.astype(np.float32))
    assert looked_up.dtype == np.float32 and looked_up.shape == every.shape
    np.testing.assert_array_equal(looked_up, computed)  # NaN == NaN here
    strided = every.reshape(256, 256)[:, ::3]
    np.testing.assert_array_equal(binary_entropy(strided), binary_entropy(strided.copy()))
    probs = np.stack([every.reshape(64, 32, 32)] * 2 + [every[::-1].reshape(64, 32, 32)])
    probs = np.nan_to_num(probs, nan=0.5, posinf=1.0, neginf=0.0)
    for per_region in (False, True):  # the map from float16 equals the map from float32
        fast, _ = uncertainty_map(probs, per_region=per_region)
        slow, _ = uncertainty_map(probs.astype(np.float32), per_region=per_region)
        assert fast.dtype == slow.dtype == np.float16
        np.testing.assert_array_equal(fast, slow)


def test_uncertainty_map_measures():
    probs, _ = _case()
    values, measure = uncertainty_map(probs)
    assert measure == "entropy" and values.shape == SHAPE and values.dtype == np.float16
    assert float(values[12, 14, 10]) == pytest.approx(
        1.0, abs=1e-3
    )  # p = 0.5 in ET only: max over regions
    assert float(values[0, 0, 0]) == pytest.approx(0.0, abs=1e-3)
    per_region, _ = uncertainty_map(probs, per_region=True)
    assert per_region.shape == (3, *SHAPE) and float(per_region[0, 12, 14, 10]) < 1e-3

    a, b = probs.astype(np.float32), probs.astype(np.float32).copy()
    b[1, 0, 0, 0] = 0.7
    c = a.copy()
    c[1, 0, 0, 0] = 0.2
    spread, measure = uncertainty_map(probs, [a, b, c])
    assert measure == "ensemble disagreement" and float(spread[0, 0, 0]) == pytest.approx(
        0.7, abs=1e-3
    )
    assert float(spread.max()) == pytest.approx(0.7, abs=1e-3)
    tta, measure = uncertainty_map(
        probs, MemberSpread((b - a).astype(np.float16), "TTA disagreement", 8)
    )
    assert measure == "TTA disagreement" and float(tta[0, 0, 0]) == pytest.approx(0.7, abs=1e-3)
    with pytest.raises(ValueError):
        uncertainty_map(probs, [a])
    with pytest.raises(ValueError):
        uncertainty_map(probs[:2])
    with pytest.raises(ValueError):
        uncertainty_map(
            probs, MemberSpread(np.zeros((3, 2, 2, 2), np.float16), "TTA disagreement", 8)
        )


def test_uncertain_hotspots_largest_first_with_their_region_and_geometry():
    probs, _ = _case()
    values, _ = uncertainty_map(probs)
    spots, uncertain_ml = uncertain_hotspots(probs, values, 0.9, (1.0, 1.0, 1.0), OFF)
    assert [s.voxels for s in spots] == [216, 8]
    big, small = spots
    assert (big.kind, big.region, small.region) == ("uncertain", "et", "wt")
    assert big.volume_ml == pytest.approx(0.216) and uncertain_ml == pytest.approx(0.224)
    assert big.bbox_min == (10, 12, 8) and big.bbox_max == (15, 17, 13)
    assert all(lo <= c <= hi for c, lo, hi in zip(big.centroid, big.bbox_min, big.bbox_max))
    assert big.mean_probability == pytest.approx(0.5, abs=1e-3) and big.mean_uncertainty > 0.99
    # anisotropic voxels: volumes scale, and the size floor hides the small blob
    spots, uncertain_ml = uncertain_hotspots(
        probs, values, 0.9, (1.0, 1.0, 2.0), dataclasses.replace(OFF, min_hotspot_ml=0.05)
    )
    assert (
        len(spots) == 1
        and spots[0].volume_ml == pytest.approx(0.432)
        and uncertain_ml == pytest.approx(0.448)
    )


def test_low_confidence_components():
    probs, labels = _case()
    values, _ = uncertainty_map(probs)
    from bratseg.labels import region_masks

    masks = region_masks(labels, "2021")
    rules = dataclasses.replace(OFF, low_component_prob=0.75)
    low = component_hotspots(probs, masks, values, (1.0, 1.0, 1.0), rules)
    assert len(low) == 1 and low[0].kind == "low-confidence component" and low[0].region == "wt"
    assert low[0].voxels == 27 and low[0].mean_probability == pytest.approx(0.7, abs=1e-3)
    every = component_hotspots(probs, masks, values, (1.0, 1.0, 1.0), rules, low_only=False)
    assert sorted((h.region, h.voxels) for h in every) == [
        ("et", 27),
        ("tc", 27),
        ("wt", 27),
        ("wt", 216),
    ]
    assert [h.voxels for h in every] == sorted((h.voxels for h in every), reverse=True)


def _facts(**changes) -> CaseFacts:
    base = CaseFacts(
        measure="entropy",
        uncertain_ml=10.0,
        volumes_ml={"wt": 50.0, "tc": 20.0, "et": 10.0},
        et_mean_prob=0.95,
        spacing=(1.0, 1.0, 1.0),
    )
    return dataclasses.replace(base, **changes)


def _spot(
    voxels: int, centroid: tuple[int, int, int], region: str = "wt", p: float = 0.95
) -> Hotspot:
    return Hotspot(
        "low-confidence component",
        region,
        voxels / 1000.0,
        voxels,
        centroid,
        centroid,
        centroid,
        p,
        0.1,
    )


@pytest.mark.parametrize(
    "rule, fires, quiet, facts, words",
    [
        ("min_wt_ml", 60.0, 40.0, {}, "Whole tumour only"),
        ("max_wt_ml", 40.0, 60.0, {}, "Whole tumour 50 mL"),
        ("max_uncertain_ml", 5.0, 20.0, {}, "10.0 mL uncertain"),
        ("max_uncertain_fraction", 0.1, 0.3, {}, "times the whole tumour"),
        (
            "max_disagreement_ml",
            5.0,
            20.0,
            {"measure": "ensemble disagreement"},
            "(ensemble disagreement)",
        ),
        ("min_et_mean_prob", 0.97, 0.9, {}, "low mean probability (0.95)"),
        ("min_et_fraction", 0.25, 0.15, {}, "Little enhancing tumour: 10.0 mL, 20%"),
        (
            "max_component_distance_mm",
            20.0,
            40.0,
            {"components": [_spot(5000, (10, 10, 10)), _spot(300, (40, 10, 10))]},
            "Tumour in 2 parts, up to 30 mm apart",
        ),
        (
            "max_low_confidence_ml",
            0.2,
            0.5,
            {"components": [_spot(300, (10, 10, 10), "et", 0.5)]},
            "1 low-confidence component(s), 0.3 mL",
        ),
    ],
)
def test_each_rule_fires_and_stays_quiet(rule, fires, quiet, facts, words):
    rules = dataclasses.replace(OFF, low_component_prob=0.75)
    assert review_reasons(rules, _facts(**facts)) == []
    assert review_reasons(dataclasses.replace(rules, **{rule: quiet}), _facts(**facts)) == []
    reasons = review_reasons(dataclasses.replace(rules, **{rule: fires}), _facts(**facts))
    assert len(reasons) == 1 and words in reasons[0], reasons


def test_no_tumour_always_needs_review_and_small_et_is_not_judged_by_probability():
    assert review_reasons(OFF, _facts(volumes_ml={"wt": 0.0, "tc": 0.0, "et": 0.0})) == [
        "No tumour predicted."
    ]
    rules = dataclasses.replace(OFF, min_et_mean_prob=0.99, min_et_ml=0.5)
    assert review_reasons(rules, _facts(volumes_ml={"wt": 50.0, "tc": 1.0, "et": 0.2})) == []


def test_far_component_distance_uses_the_spacing():
    parts = [_spot(100, (0, 0, 0)), _spot(10, (3, 4, 0)), _spot(20, (0, 0, 2))]
    assert far_component_mm(parts, (1.0, 1.0, 1.0)) == pytest.approx(5.0)
    assert far_component_mm(parts, (1.0, 1.0, 5.0)) == pytest.approx(10.0)
    assert far_component_mm(parts[:1], (1.0, 1.0, 1.0)) == 0.0


def test_assess_case_end_to_end():
    probs, labels = _case()
    rules = dataclasses.replace(
        OFF, low_component_prob=0.75, max_low_confidence_ml=0.01, max_component_distance_mm=10.0
    )
    result = assess_case(probs, labels, (1.0, 1.0, 1.0), "2021", rules=rules)
    assert result.needs_review and result.measure == "entropy"
    assert any("low-confidence" in r for r in result.reasons) and any(
        "2 parts" in r for r in result.reasons
    )
    assert [h.voxels for h in result.hotspots] == sorted(
        (h.voxels for h in result.hotspots), reverse=True
    )
    assert {h.kind for h in result.hotspots} == {"uncertain", "low-confidence component"}
    assert result.volumes_ml["wt"] == pytest.approx(0.243) and result.et_mean_prob == pytest.approx(
        0.98, abs=1e-3
    )
    data = json.loads(json.dumps(result.to_dict()))
    assert (
        data["needs_review"] is True and data["hotspots"][0]["voxels"] == result.hotspots[0].voxels
    )
    assert "uncertainty" not in data and result.uncertainty.shape == SHAPE
    quiet = assess_case(probs, labels, (1.0, 1.0, 1.0), "2021", rules=OFF)
    assert not quiet.needs_review and quiet.reasons == []
    with pytest.raises(ValueError):
        assess_case(probs, labels[:-1], (1.0, 1.0, 1.0), "2021")


def test_assessment_of_a_real_case_predicted_by_a_stand_in_ensemble(
    standin, brats2018_case, tmp_path
):
    from bratseg.checkpoint import load_checkpoint
    from bratseg.inference import InferenceOptions, predict_case

    models = [
        load_checkpoint(standin.save_standin(tmp_path / f"{k}.pt", kind=k, target_spacing=2.0))
        for k in ("regions", "classes")
    ]
    pred = predict_case(brats2018_case, models, InferenceOptions(device="cpu", keep_spread=True))
    entropy = assess_case(pred.region_probs, pred.labels, brats2018_case.spacing, pred.convention)
    spread = assess_case(
        pred.region_probs, pred.labels, brats2018_case.spacing, pred.convention, members=pred.spread
    )
    for result in (entropy, spread):
        assert result.uncertainty.shape == brats2018_case.shape
        assert result.hotspots and [h.voxels for h in result.hotspots] == sorted(
            (h.voxels for h in result.hotspots), reverse=True
        )
        assert len(result.hotspots) <= DEFAULT_RULES.max_hotspots
        assert result.needs_review == bool(result.reasons)
        assert result.volumes_ml["wt"] > 1.0
    assert (entropy.measure, spread.measure) == ("entropy", "ensemble disagreement")
    hot = spread.hotspots[0]
    assert (
        float(pred.spread.values[:, hot.centroid[0], hot.centroid[1], hot.centroid[2]].max()) >= 0.5
        or hot.kind == "low-confidence component"
    )
