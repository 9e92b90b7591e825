"""Optimisation recipes: optimiser, learning-rate schedule, loss and augmentation per paper.

Schedules are functions of the *training progress* ``p`` in [0, 1] (step / total steps, or
elapsed / budget for a time-budgeted run), so the same recipe serves a 50-epoch paper run and a
90-minute CPU run, and a resumed run continues the same curve. Each architecture of the model
registry has a default recipe from its paper (:data:`DEFAULT_RECIPES`).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import torch

from bratseg.configdict import check_config_dict, config_from_dict
from bratseg.errors import BratsInputError
from bratseg.references import cite
from bratseg.training.augment import AugmentConfig

logger = logging.getLogger(__name__)

SCHEDULES = ("poly", "cosine", "plateau", "constant")
OPTIMIZERS = ("adam", "adamw")
DEEP_SUPERVISION = ("halving", "equal")


@dataclass
class Recipe:
    """How to train one architecture.

    Attributes:
        name: Recipe name (usually the architecture's).
        source: Seed paper the numbers come from.
        optimizer: ``"adam"`` or ``"adamw"``.
        lr: Peak learning rate.
        weight_decay: L2 weight decay.
        schedule: One of :data:`SCHEDULES`.
        warmup: Fraction of the run with linear warm-up from ``warmup_start`` x lr.
        warmup_start: Starting factor of the warm-up.
        poly_power: Exponent of the poly decay (Jiang et al. 2020; Adeniji & Liu: 0.9).
        plateau_factor: LR multiplier on a validation plateau (Ashtari et al. 2021: divide by 5).
        plateau_patience: Epochs without improvement before reducing (Ashtari et al. 2021: 5).
        swa_fraction: Final fraction of the run spent in stochastic weight averaging (Henry et al. 2021);
            0 disables it.
        swa_cycles: Cosine cycles in the SWA phase, each restarting at ``swa_lr_factor`` x lr.
        swa_lr_factor: Restart factor (Henry et al. 2021: half the initial learning rate).
        loss: Loss kind (see :mod:`bratseg.training.losses`).
        region_weights: Weights of the WT, TC and ET terms of a region loss (``"dice"``,
            ``"dice_bce"``); (1, 1, 1) is the papers' loss. Not from the papers: more weight on
            ET (a thin rim) is a lever to try on the cross-validation protocol.
        source_region_weights: Region weights for the cases of one source (a name of
            :data:`bratseg.training.splits.SOURCES`), in place of ``region_weights`` for them,
            e.g. ``{"brats-africa": [0.3, 1, 2]}``. Not from the papers: a lever for sources
            whose references disagree on a region's extent (BraTS-Africa's edema).
        deep_supervision: ``"halving"`` (Futrega et al. 2021) or ``"equal"`` (Henry et al. 2021).
        vae_weight_l2, vae_weight_kl: VAE term weights (Adeniji & Liu: 0.1, 0.1).
        batch_size: Patches per step and process (all seeds: 1).
        amp: Mixed precision: on CUDA, and bfloat16 on a CPU that computes it natively.
        grad_clip: Max gradient norm, or 0 for none.
        augment: Augmentation probabilities and ranges.
    """

    name: str = "default"
    source: str = ""
    optimizer: str = "adam"
    lr: float = 1e-4
    weight_decay: float = 1e-5
    schedule: str = "poly"
    warmup: float = 0.0
    warmup_start: float = 0.01
    poly_power: float = 0.9
    plateau_factor: float = 0.2
    plateau_patience: int = 5
    swa_fraction: float = 0.0
    swa_cycles: int = 5
    swa_lr_factor: float = 0.5
    loss: str = "dice"
    region_weights: tuple[float, float, float] = (1.0, 1.0, 1.0)
    source_region_weights: dict[str, list[float]] = field(default_factory=dict)
    deep_supervision: str = "halving"
    vae_weight_l2: float = 0.1
    vae_weight_kl: float = 0.1
    batch_size: int = 1
    amp: bool = True
    grad_clip: float = 0.0
    augment: AugmentConfig = field(default_factory=AugmentConfig)

    def to_dict(self) -> dict[str, Any]:
        """Plain-type dict (JSON-able, safe in checkpoints)."""
        d = {k: v for k, v in asdict(self).items() if k != "augment"}
        d["augment"] = self.augment.to_dict()
        return d

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Recipe:
        """Inverse of :meth:`to_dict` (strict: see :func:`bratseg.configdict.config_from_dict`)."""
        return config_from_dict(
            cls, data, "recipe", augment=AugmentConfig.from_dict(data.get("augment", {}))
        )

    def with_overrides(self, **changes: Any) -> Recipe:
        """Copy with the non-``None`` ``changes`` applied."""
        return replace(self, **{k: v for k, v in changes.items() if v is not None})


def check_overrides(overrides: Mapping[str, Any]) -> None:
    """Refuse recipe overrides (``train --recipe``) that would be ignored or fail later.

    Every key must be a :class:`Recipe` field (``augment``: an object of
    :class:`~bratseg.training.augment.AugmentConfig` fields), every value of the field's kind
    (number, integer, string, true/false, list of numbers), and ``optimizer``, ``schedule``,
    ``loss`` and ``deep_supervision`` one of their known names.

    Raises:
        BratsInputError: Naming the first bad key and what it should be.
    """
    from bratseg.training.losses import LOSS_KINDS

    if not isinstance(overrides, Mapping):
        raise BratsInputError("the recipe overrides must be a JSON object")
    check_config_dict(Recipe, {k: v for k, v in overrides.items() if k != "augment"}, "recipe")
    if "augment" in overrides:
        if not isinstance(overrides["augment"], Mapping):
            raise BratsInputError("recipe key 'augment' must be an object of augmentation settings")
        check_config_dict(AugmentConfig, overrides["augment"], "augment")
    choices = {
        "optimizer": OPTIMIZERS,
        "schedule": SCHEDULES,
        "loss": tuple(LOSS_KINDS),
        "deep_supervision": DEEP_SUPERVISION,
    }
    for key, allowed in choices.items():
        if key in overrides and overrides[key] not in allowed:
            raise BratsInputError(
                f"recipe key {key!r} must be one of {', '.join(allowed)}, got {overrides[key]!r}"
            )
    weights = overrides.get("region_weights")
    if weights is not None and not _valid_region_weights(weights):
        raise BratsInputError(
            f"recipe key 'region_weights' must be three weights (WT, TC, ET) >= 0, not all 0, "
            f"got {weights!r}"
        )
    per_source = overrides.get("source_region_weights")
    if per_source is not None:
        _check_source_region_weights(per_source)


def _valid_region_weights(weights: Any) -> bool:
    """Three numbers >= 0, not all 0."""
    return (
        isinstance(weights, (list, tuple))
        and len(weights) == 3
        and all(
            isinstance(w, (int, float)) and not isinstance(w, bool) and math.isfinite(w)
            for w in weights
        )
        and min(weights) >= 0
        and max(weights) > 0
    )


def _check_source_region_weights(per_source: Any) -> None:
    """Refuse a ``source_region_weights`` that is not ``{source name: three weights}``."""
    from bratseg.training.splits import SOURCES

    if not isinstance(per_source, Mapping):
        raise BratsInputError(
            "recipe key 'source_region_weights' must be an object such as "
            '{"brats-africa": [0.3, 1, 2]}'
        )
    for source, weights in per_source.items():
        if source not in SOURCES:
            raise BratsInputError(
                f"recipe key 'source_region_weights' names an unknown source {source!r} "
                f"(known: {', '.join(SOURCES)})"
            )
        if not _valid_region_weights(weights):
            raise BratsInputError(
                f"recipe key 'source_region_weights' for {source!r} must be three weights "
                f"(WT, TC, ET) >= 0, not all 0, got {weights!r}"
            )


def case_region_weights(recipe: Recipe, case_id: str) -> tuple[float, float, float]:
    """The WT, TC, ET loss weights of one training case under ``recipe``.

    Its source's entry of ``recipe.source_region_weights`` when there is one (see
    :func:`bratseg.training.splits.source_of`), else ``recipe.region_weights``.
    """
    from bratseg.training.splits import source_of

    weights = recipe.source_region_weights.get(source_of(case_id), recipe.region_weights)
    w = [float(x) for x in weights]
    return (w[0], w[1], w[2])


# ------------------------------------------------------------------------- default recipes

DEFAULT_RECIPES: dict[str, Recipe] = {
    "lowrank-resunet": Recipe(
        name="lowrank-resunet",
        source=cite("ashtari2021"),
        optimizer="adam",
        lr=1e-4,
        weight_decay=1e-5,  # Ashtari et al. 2021: Adam 1e-4, L2 1e-5
        schedule="plateau",
        plateau_factor=0.2,
        plateau_patience=5,  # Ashtari et al. 2021: /5 after 5 epochs
        loss="softmax_dice",  # Ashtari et al. 2021: soft Dice on the softmax
        augment=AugmentConfig(
            flip_prob=0.5,
            flip_axes=(0,),  # Ashtari et al. 2021: left-right flips only
            affine_prob=0.5,
            rotate_deg=10.0,
            scale_range=0.1,  # Ashtari et al. 2021: scale U(.9,1.1), rot ±10°
            noise_prob=1.0,
            noise_std=0.25,  # Ashtari et al. 2021: sigma ~ U(0, 0.25) per channel
            blur_prob=0.0,
            brightness_prob=0.0,
            contrast_prob=0.0,
        ),
    ),
    "cascade-unet": Recipe(
        name="cascade-unet",
        source=cite("jiang2020"),
        optimizer="adam",
        lr=1e-4,
        weight_decay=1e-5,  # Jiang et al. 2020
        schedule="poly",
        poly_power=0.9,
        warmup=5 / 405,  # Jiang et al. 2020: 5 of 405 epochs warm-up
        loss="dice",  # Jiang et al. 2020: region Dice summed over regions and stages
        augment=AugmentConfig(
            flip_prob=0.5,  # Jiang et al. 2020: each axis with p 0.5
            affine_prob=0.0,
            intensity_shift_prob=1.0,
            intensity_shift=0.1,  # Jiang et al. 2020: shift U(-.1,.1) x std
            intensity_scale_prob=1.0,
            intensity_scale=0.1,  # Jiang et al. 2020: scale U(.9, 1.1)
            noise_prob=0.0,
            blur_prob=0.0,
            brightness_prob=0.0,
            contrast_prob=0.0,
        ),
    ),
    "ds-unet": Recipe(
        name="ds-unet",
        source=cite("henry2021"),
        optimizer="adam",
        lr=1e-4,
        weight_decay=0.0,  # Henry et al. 2021 pipeline B: Adam 1e-4, no decay
        schedule="cosine",  # Henry et al. 2021: cosine annealing
        swa_fraction=0.3,
        swa_cycles=5,
        swa_lr_factor=0.5,  # Henry et al. 2021 pipeline A: 5 SWA cycles at lr/2
        loss="dice",
        deep_supervision="equal",  # Henry et al. 2021: unweighted sum of the heads
        augment=AugmentConfig(
            flip_prob=0.8,  # Henry et al. 2021 A: 80% per axis
            affine_prob=0.0,
            intensity_scale_prob=0.8,
            intensity_scale=0.1,  # Henry et al. 2021 A: U(.9, 1.1) with p 0.8
            noise_prob=0.2,
            noise_std=0.1,  # Henry et al. 2021: std 0.1 (probability not given)
            channel_drop_prob=0.16,  # Henry et al. 2021 A: one channel zeroed with p 0.16
            blur_prob=0.0,
            brightness_prob=0.0,
            contrast_prob=0.0,
        ),
    ),
    "nnunet": Recipe(
        name="nnunet",
        source=cite("futrega2021"),
        optimizer="adam",
        lr=5e-4,
        weight_decay=1e-4,  # Futrega et al. 2021: Adam 5e-4 (of .5/.7/.9e-3), wd 1e-4
        schedule="cosine",
        warmup=0.05,  # Futrega et al. 2021: linear warm-up (1000 steps), cosine after
        warmup_start=0.0,
        loss="dice_bce",
        deep_supervision="halving",  # Futrega et al. 2021: Dice + BCE, heads 1, 1/2, 1/4
        augment=AugmentConfig(
            affine_prob=0.0, zoom_prob=0.15
        ),  # Futrega et al. 2021 list, zoom U(1, 1.4)
    ),
    "segresnet-vae": Recipe(
        name="segresnet-vae",
        source=cite("adeniji_liu") + ", after Myronenko",
        optimizer="adam",
        lr=1e-4,
        weight_decay=1e-5,  # Adeniji & Liu: Adam 1e-4, l2 1e-5
        schedule="poly",
        poly_power=0.9,
        warmup=10 / 300,  # Adeniji & Liu: poly 0.9, 10 warm-up epochs of 300
        loss="dice",
        vae_weight_l2=0.1,
        vae_weight_kl=0.1,  # Adeniji & Liu: Dice + 0.1 L2 + 0.1 KL
        augment=AugmentConfig(
            flip_prob=0.75,  # Adeniji & Liu: flips with p 0.75 on every axis
            affine_prob=0.0,
            noise_prob=0.0,
            blur_prob=0.0,
            brightness_prob=0.0,
            contrast_prob=0.0,
        ),
    ),
}


def default_recipe(arch: str) -> Recipe:
    """The paper recipe of architecture ``arch`` (a generic Adam + poly recipe when unknown)."""
    if arch in DEFAULT_RECIPES:
        return replace(DEFAULT_RECIPES[arch])
    logger.warning("no recipe for architecture %r; using a generic Adam + poly recipe", arch)
    return Recipe(name=arch)


# ------------------------------------------------------------------------------ optimiser


def build_optimizer(params: Iterable[torch.nn.Parameter], recipe: Recipe) -> torch.optim.Optimizer:
    """Adam or AdamW with the recipe's learning rate and weight decay."""
    if recipe.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=recipe.lr, weight_decay=recipe.weight_decay)
    if recipe.optimizer == "adam":
        return torch.optim.Adam(params, lr=recipe.lr, weight_decay=recipe.weight_decay)
    raise ValueError(f"unknown optimizer {recipe.optimizer!r}; use adam or adamw")


def lr_factor(recipe: Recipe, progress: float, plateau_scale: float = 1.0) -> float:
    """Learning-rate multiplier at training progress ``progress`` in [0, 1].

    Warm-up is linear from ``warmup_start`` to 1; then ``poly`` is ``(1 - q) ** power``
    (Jiang et al. 2020; Adeniji & Liu), ``cosine`` is ``0.5 (1 + cos(pi q))`` (Henry et al. 2021; Futrega et al. 2021), ``plateau`` and
    ``constant`` stay at 1 (times ``plateau_scale``, Ashtari et al. 2021); ``q`` is the progress after
    warm-up rescaled to [0, 1]. In the SWA phase (last ``swa_fraction``) the factor follows
    ``swa_cycles`` cosine cycles restarting at ``swa_lr_factor`` (Henry et al. 2021).
    """
    p = min(max(float(progress), 0.0), 1.0)
    swa_start = 1.0 - recipe.swa_fraction
    if recipe.swa_fraction > 0 and p >= swa_start:
        cycle_len = recipe.swa_fraction / max(1, recipe.swa_cycles)
        q = ((p - swa_start) % cycle_len) / cycle_len
        return recipe.swa_lr_factor * 0.5 * (1.0 + math.cos(math.pi * q))
    main_end = swa_start if recipe.swa_fraction > 0 else 1.0
    if recipe.warmup > 0 and p < recipe.warmup:
        return recipe.warmup_start + (1.0 - recipe.warmup_start) * p / recipe.warmup
    q = (p - recipe.warmup) / max(main_end - recipe.warmup, 1e-8)
    q = min(max(q, 0.0), 1.0)
    if recipe.schedule == "poly":
        return max(1.0 - q, 0.0) ** recipe.poly_power
    if recipe.schedule == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * q))
    if recipe.schedule in ("plateau", "constant"):
        return plateau_scale
    raise ValueError(f"unknown schedule {recipe.schedule!r}; use one of {', '.join(SCHEDULES)}")


def in_swa_phase(recipe: Recipe, progress: float) -> bool:
    """Whether ``progress`` lies in the stochastic-weight-averaging phase."""
    return recipe.swa_fraction > 0 and progress >= 1.0 - recipe.swa_fraction


class PlateauTracker:
    """Reduce-on-plateau bookkeeping (Ashtari et al. 2021): divide the LR when validation stalls.

    State is plain numbers (``state_dict``/``load_state_dict``) for exact resume.
    """

    def __init__(self, factor: float = 0.2, patience: int = 5, min_scale: float = 1e-3) -> None:
        self.factor = factor
        self.patience = patience
        self.min_scale = min_scale
        self.best = -math.inf
        self.bad_epochs = 0
        self.scale = 1.0

    def update(self, score: float) -> float:
        """Record an epoch's validation score (higher is better); returns the LR scale."""
        if score > self.best + 1e-4:
            self.best = score
            self.bad_epochs = 0
        else:
            self.bad_epochs += 1
            if self.bad_epochs > self.patience:
                self.scale = max(self.min_scale, self.scale * self.factor)
                self.bad_epochs = 0
                logger.info("validation plateau: learning-rate scale now %.3g", self.scale)
        return self.scale

    def state_dict(self) -> dict[str, float]:  # noqa: D102
        return {
            "best": float(self.best),
            "bad_epochs": int(self.bad_epochs),
            "scale": float(self.scale),
        }

    def load_state_dict(self, state: Mapping[str, float]) -> None:  # noqa: D102
        self.best = float(state["best"])
        self.bad_epochs = int(state["bad_epochs"])
        self.scale = float(state["scale"])
