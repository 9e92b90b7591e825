"""The one from_dict policy of every config dataclass: unknown keys and wrong kinds are refused."""

from __future__ import annotations

import pytest

from bratseg.errors import BratsInputError


def test_every_config_refuses_an_unknown_key_with_the_closest_name() -> None:
    from bratseg.models import get_architecture
    from bratseg.postprocess import PostprocessConfig
    from bratseg.preprocess import PreprocessConfig
    from bratseg.training.augment import AugmentConfig
    from bratseg.training.config import TrainConfig
    from bratseg.training.recipes import Recipe

    cases = [
        (
            PostprocessConfig,
            {"wt_treshold": 0.5},
            "unknown postprocessing key 'wt_treshold' (did you mean 'wt_threshold'?",
        ),
        (
            PreprocessConfig,
            {"target_spacin": 2.0},
            "unknown preprocessing key 'target_spacin' (did you mean 'target_spacing'?",
        ),
        (
            AugmentConfig,
            {"flip_prb": 0.5},
            "unknown augment key 'flip_prb' (did you mean 'flip_prob'?",
        ),
        (Recipe, {"learning_rate": 1e-3}, "unknown recipe key 'learning_rate'"),
        (
            TrainConfig,
            {"data": [], "out": "x", "epoch": 3},
            "unknown training config key 'epoch' (did you mean 'epochs'?",
        ),
        (
            get_architecture("nnunet").config_cls,
            {"filter": [8, 16]},
            "unknown NNUNetConfig key 'filter' (did you mean 'filters'?",
        ),
    ]
    for cls, data, message in cases:
        with pytest.raises(BratsInputError) as err:
            cls.from_dict(data)
        assert str(err.value).startswith(message), (cls, str(err.value))
        assert "\n" not in str(err.value)


def test_wrong_kinds_are_refused_and_lists_become_tuples() -> None:
    from bratseg.postprocess import PostprocessConfig
    from bratseg.training.augment import AugmentConfig
    from bratseg.training.recipes import Recipe

    with pytest.raises(
        BratsInputError, match="postprocessing key 'wt_threshold' must be a number, got '0.5'"
    ):
        PostprocessConfig.from_dict({"wt_threshold": "0.5"})
    with pytest.raises(BratsInputError, match="key 'et_component_rule' must be true or false"):
        PostprocessConfig.from_dict({"et_component_rule": 1})
    with pytest.raises(BratsInputError, match="augment key 'blur_sigma' must be a list of numbers"):
        AugmentConfig.from_dict({"blur_sigma": 1.0})
    with pytest.raises(BratsInputError, match="recipe key 'batch_size' must be an integer"):
        Recipe.from_dict({"batch_size": 2.5})
    aug = AugmentConfig.from_dict({"blur_sigma": [0.4, 1.2], "flip_prob": 1})  # an int is a number
    assert aug.blur_sigma == (0.4, 1.2) and aug.flip_prob == 1
    assert PostprocessConfig.from_dict(None) == PostprocessConfig()
    assert Recipe.from_dict(Recipe().to_dict()) == Recipe()  # round trip, nested augment included


def test_what_the_engine_wrote_reads_back_under_the_strict_policy() -> None:
    from bratseg.checkpoint import load_checkpoint
    from bratseg.postprocess import PostprocessConfig
    from bratseg.preprocess import PreprocessConfig
    from bratseg.training.recipes import Recipe
    from bratseg.zoo import bundled_models

    models = bundled_models()
    assert models
    for entry in models:  # every shipped checkpoint's settings are valid configs
        loaded = load_checkpoint(entry.path)
        PostprocessConfig.from_dict(loaded.meta["postprocess"])
        PreprocessConfig.from_dict(loaded.meta["preprocess"])
        Recipe.from_dict(loaded.provenance["recipe"])
        assert type(loaded.config).from_dict(loaded.config.to_dict()) == loaded.config
