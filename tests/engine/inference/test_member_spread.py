"""The opt-in members' spread of a prediction (ensemble models, flip TTA) on a real case."""

from __future__ import annotations

import numpy as np
import pytest

from bratseg.checkpoint import load_checkpoint
from bratseg.inference import InferenceOptions, predict_case
from bratseg.inference.spread import RunningRange


@pytest.fixture(scope="module")
def standins(standin, tmp_path_factory):
    folder = tmp_path_factory.mktemp("spread")
    return {
        name: load_checkpoint(
            standin.save_standin(folder / f"{name}.pt", kind=kind, shift=shift, target_spacing=3.0)
        )
        for name, kind, shift in (
            ("regions", "regions", 0),
            ("classes", "classes", 0),
            ("shifted", "regions", 1),
        )
    }


def test_running_range_of_arrays_and_tensors():
    import torch

    values = [np.array([0.2, 0.9, 0.5]), np.array([0.4, 0.1, 0.5]), np.array([0.3, 0.5, 0.5])]
    rr = RunningRange()
    for v in values:
        rr.update(v)
    np.testing.assert_allclose(rr.spread(), [0.2, 0.8, 0.0], atol=1e-3)
    rt = RunningRange()
    for v in values:
        rt.update(torch.tensor(v))
    assert rt.count == 3
    np.testing.assert_allclose(rt.spread().numpy(), [0.2, 0.8, 0.0], atol=1e-6)
    with pytest.raises(ValueError):
        RunningRange().spread()


def test_default_prediction_keeps_no_spread(brats2018_case, standins):
    pair = [standins["regions"], standins["classes"]]
    plain = predict_case(brats2018_case, pair, InferenceOptions(device="cpu"))
    kept = predict_case(brats2018_case, pair, InferenceOptions(device="cpu", keep_spread=True))
    assert plain.spread is None
    np.testing.assert_array_equal(plain.region_probs, kept.region_probs)
    np.testing.assert_array_equal(plain.labels, kept.labels)


def test_ensemble_spread_is_the_members_range(brats2018_case, standins):
    pair = [standins["regions"], standins["classes"]]
    ens = predict_case(brats2018_case, pair, InferenceOptions(device="cpu", keep_spread=True))
    singles = [
        predict_case(brats2018_case, [m], InferenceOptions(device="cpu")).region_probs.astype(
            np.float32
        )
        for m in pair
    ]
    assert (
        ens.spread is not None
        and ens.spread.kind == "ensemble disagreement"
        and ens.spread.members == 2
    )
    assert (
        ens.spread.values.shape == (3, *brats2018_case.shape)
        and ens.spread.values.dtype == np.float16
    )
    expected = np.abs(singles[0] - singles[1])
    np.testing.assert_allclose(ens.spread.values.astype(np.float32), expected, atol=3e-3)
    assert expected.max() > 0.3  # the two stand-ins really disagree somewhere


def test_tta_spread_of_one_model(brats2018_case, standins):
    options = InferenceOptions(device="cpu", tta=8, keep_spread=True)
    symmetric = predict_case(brats2018_case, [standins["regions"]], options)
    shifted = predict_case(brats2018_case, [standins["shifted"]], options)
    assert symmetric.spread.kind == "TTA disagreement" and symmetric.spread.members == 8
    # a point-wise network gives the same output under every flip; a shifted one does not
    assert float(symmetric.spread.values.max()) < 2e-3
    assert float(shifted.spread.values.max()) > 0.2
    assert shifted.spread.values.min() >= 0 and shifted.spread.values.max() <= 1
    single = predict_case(
        brats2018_case, [standins["regions"]], InferenceOptions(device="cpu", keep_spread=True)
    )
    assert single.spread is None  # one model, one pass: nothing to compare
