"""The one predictor of every front end (:mod:`bratseg.predictor`) on a real case.

Checks that it predicts exactly what the recipe the front ends wrote out by hand did (load, the
ensemble's postprocessing, :func:`run_inference`), that it keeps loaded networks between
predictors sharing a :class:`ModelCache`, and which postprocessing it chooses.
"""

from __future__ import annotations

import dataclasses
import os

import numpy as np
import pytest
import torch

from bratseg.checkpoint import load_checkpoint
from bratseg.errors import BratsInputError, CheckpointError
from bratseg.inference import InferenceOptions, run_inference
from bratseg.postprocess import PostprocessConfig
from bratseg.predictor import ModelCache, Predictor, default_model_paths
from bratseg.progress import run_to_end
from bratseg.zoo import default_postprocess, ensemble_postprocess

torch.set_num_threads(2)


@pytest.fixture(scope="module")
def paths(standin, tmp_path_factory):
    folder = tmp_path_factory.mktemp("standins")
    return [
        standin.save_standin(folder / "regions.pt", "regions", 0),
        standin.save_standin(folder / "shifted.pt", "regions", 1, target_spacing=2.0),
        standin.save_standin(folder / "classes.pt", "classes", 0),
    ]


@pytest.mark.slow
def test_predictor_equals_the_hand_written_recipe(brats2018_case, paths):
    """What cli/predict, the Segment job and the batch did before: load, ensemble_postprocess,
    run_inference. The predictor's output is bit-identical (probabilities, spread, labels)."""
    options = InferenceOptions(device="cpu", keep_spread=True, keep_class_probs=True)
    models = [load_checkpoint(p) for p in paths]
    by_hand = dataclasses.replace(options, postprocess=ensemble_postprocess(models))
    expected = run_to_end(run_inference(brats2018_case, models, by_hand))

    got = Predictor(paths, options).predict(brats2018_case)

    np.testing.assert_array_equal(got.region_probs, expected.region_probs)
    np.testing.assert_array_equal(got.labels, expected.labels)
    assert got.spread is not None and expected.spread is not None
    np.testing.assert_array_equal(got.spread.values, expected.spread.values)
    assert got.class_probs is None and expected.class_probs is None  # mixed kinds: no classes
    assert got.postprocess == expected.postprocess
    assert got.models == ["regions", "shifted", "classes"]
    assert int(np.count_nonzero(got.labels)) > 1000  # the stand-ins find the tumour


def test_a_shared_cache_loads_each_network_once(paths):
    cache = ModelCache()
    first = Predictor(paths[:2], InferenceOptions(device="cpu"), cache=cache)
    reports = []
    models = run_to_end(first.load(), reports.append)
    assert [r.message for r in reports] == [
        "loading model 1/2: regions.pt",
        "loading model 2/2: shifted.pt",
    ]
    assert cache.loads == 2 and len(cache) == 2

    # a second click: same networks, nothing read from disk, no loading step shown
    second = Predictor(paths[:2], InferenceOptions(device="cpu"), cache=cache)
    reports.clear()
    again = run_to_end(second.load(), reports.append)
    assert all(a is b for a, b in zip(again, models, strict=True))
    assert reports == [] and cache.loads == 2

    # another device, or a rewritten checkpoint file, is loaded again
    assert len(Predictor(paths[:1], InferenceOptions(device="auto"), cache=cache).models) == 1
    assert cache.loads == 3
    stat = paths[0].stat()
    os.utime(paths[0], ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    reloaded = Predictor(paths[:1], InferenceOptions(device="cpu"), cache=cache).models
    assert reloaded[0] is not models[0] and cache.loads == 4


def test_the_cache_keeps_the_most_recently_used(paths):
    cache = ModelCache(size=2)
    for path in paths:
        cache.load(path, "cpu")
    assert cache.cached(paths[0], "cpu") is None  # the oldest was dropped
    assert cache.cached(paths[2], "cpu") is not None and len(cache) == 2


def test_missing_checkpoint_and_no_model_are_refused(tmp_path):
    with pytest.raises(CheckpointError, match="not found"):
        run_to_end(Predictor([tmp_path / "gone.pt"]).load())
    with pytest.raises(BratsInputError, match="no model given"):
        Predictor([])


def test_postprocessing_choice(paths):
    # any other choice than the default ensemble: the first model's settings, overrides on top
    predictor = Predictor(paths, postprocess_overrides={"et_threshold": 0.7, "wt_threshold": None})
    first = PostprocessConfig.from_dict(dict(predictor.models[0].meta["postprocess"]))
    assert predictor.postprocess_config() == dataclasses.replace(first, et_threshold=0.7)
    assert predictor.inference_options().postprocess == predictor.postprocess_config()
    # a whole config given in the options is used as it is (overrides still apply)
    given = PostprocessConfig(et_min_volume=7)
    chosen = Predictor(paths, InferenceOptions(postprocess=given)).postprocess_config()
    assert chosen == given
    assert Predictor(
        paths, InferenceOptions(postprocess={"mode": "argmax"})
    ).postprocess_config() == (PostprocessConfig(mode="argmax"))


def test_the_default_ensemble_uses_its_own_settings():
    """What ``predict --help`` promises: without --model, the ensemble's settings are used."""
    try:
        default = default_model_paths()
    except BratsInputError:
        pytest.skip("no bundled default model in this checkout")
    predictor = Predictor.from_names(None)
    assert predictor.paths == default
    assert predictor.postprocess_config() == default_postprocess(predictor.models[0])


def test_predict_help_says_what_the_code_does(capsys):
    """The help used to say "default: the first model's checkpoint settings" while the code used
    the default ensemble's own settings."""
    from bratseg.cli.main import main

    with pytest.raises(SystemExit):
        main(["predict", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "default: the bundled default ensemble's cross-validated settings" in text
    assert "with other --model choices, the first model's checkpoint settings" in text
