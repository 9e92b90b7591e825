"""A run's bias-field correction: asked for, inherited from the fine-tuned checkpoint, or off."""

from __future__ import annotations

from bratseg.training import TrainConfig
from bratseg.training.setup import initial_model, preprocess_for


def config(**kw) -> TrainConfig:
    return TrainConfig(data=["unused"], out="unused", **kw)


def test_fresh_architecture_is_off_unless_asked():
    init = initial_model("nnunet", preset="tiny")
    assert preprocess_for(config(), init).bias_correction is False
    assert preprocess_for(config(bias_correction=True), init).bias_correction is True


def test_fine_tuning_inherits_the_checkpoints_and_an_explicit_setting_wins():
    init = initial_model("nnunet-small-cv44-f0")
    assert preprocess_for(config(), init).bias_correction is False
    init.preprocess["bias_correction"] = True
    assert preprocess_for(config(), init).bias_correction is True
    assert preprocess_for(config(bias_correction=False), init).bias_correction is False
