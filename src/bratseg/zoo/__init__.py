"""The model zoo: which models exist, what their cards say, and the bundled default.

- :mod:`~bratseg.zoo.catalogue`: bundled and user checkpoints (:class:`ModelEntry`), their
  metadata without the weights, the user's folders, name -> file resolution;
- :mod:`~bratseg.zoo.card`: the model card (:class:`ModelCard`) and its text forms;
- :mod:`~bratseg.zoo.default_ensemble`: the default model(s), their cross-validated
  postprocessing and the ensemble's card.

The names used across the engine are re-exported here: ``from bratseg.zoo import resolve_model``.
"""

from bratseg.user_folders import bratseg_cache, bratseg_home, user_models_dir
from bratseg.zoo.card import ModelCard, embedded_card, format_card
from bratseg.zoo.catalogue import (
    BUNDLED_DIR,
    CHECKPOINT_SUFFIXES,
    ModelEntry,
    bundled_models,
    list_models,
    read_checkpoint_meta,
    resolve_model,
)
from bratseg.zoo.default_ensemble import (
    DEFAULT_SETTINGS_FILE,
    default_model_names,
    default_model_paths,
    default_postprocess,
    default_postprocess_overrides,
    ensemble_postprocess,
    is_default_ensemble,
    load_default_models,
    no_default_model_message,
    verify_bundled,
)

__all__ = [
    "BUNDLED_DIR",
    "CHECKPOINT_SUFFIXES",
    "DEFAULT_SETTINGS_FILE",
    "ModelCard",
    "ModelEntry",
    "bratseg_cache",
    "bratseg_home",
    "bundled_models",
    "default_model_names",
    "default_model_paths",
    "default_postprocess",
    "default_postprocess_overrides",
    "embedded_card",
    "ensemble_postprocess",
    "format_card",
    "is_default_ensemble",
    "list_models",
    "load_default_models",
    "no_default_model_message",
    "read_checkpoint_meta",
    "resolve_model",
    "user_models_dir",
    "verify_bundled",
]
