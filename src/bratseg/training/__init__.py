"""Training engine: datasets and crop cache, MONAI augmentations, seed losses and recipes, the
resumable training loop (:func:`train_events`) and data-parallel support.

Typical use::

    from bratseg.training import TrainConfig, train_events
    for event in train_events(TrainConfig(data=["cases/"], out="runs/x", model="nnunet", epochs=5)):
        print(event)
"""

from bratseg.training.augment import AugmentConfig, build_augmentation
from bratseg.training.config import TrainConfig
from bratseg.training.data import CaseRef, discover_cases, split_cases
from bratseg.training.losses import SegmentationLoss, loss_for
from bratseg.training.recipes import DEFAULT_RECIPES, Recipe, default_recipe, lr_factor
from bratseg.training.trainer import train_events

__all__ = [
    "DEFAULT_RECIPES",
    "AugmentConfig",
    "CaseRef",
    "Recipe",
    "SegmentationLoss",
    "TrainConfig",
    "build_augmentation",
    "default_recipe",
    "discover_cases",
    "loss_for",
    "lr_factor",
    "split_cases",
    "train_events",
]
