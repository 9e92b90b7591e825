"""The data side of a training run: cached cases, oversampling, patches, sampler and loader.

:func:`build_run_data` turns a run's :class:`~bratseg.training.setup.RunPlan` into what the loop
of :mod:`bratseg.training.trainer` iterates: the training cases (loaded from the preprocessing
cache, rank 0 first so the other ranks read what it cached), each repeated as the
``--oversample`` strata ask, cut into augmented patches (:class:`PatchDataset`), shuffled and
sharded over the ranks per epoch (:class:`EpochSampler`); and rank 0's validation cases.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from torch.utils.data import DataLoader

from bratseg.training import ddp
from bratseg.training.config import TrainConfig
from bratseg.training.data import CachedCase, load_cases
from bratseg.training.patches import (
    EpochSampler,
    PatchDataset,
    case_repeats,
    repeated,
    training_sample,
)
from bratseg.training.recipes import case_region_weights
from bratseg.training.setup import RunPlan, default_cache_dir, default_num_workers, make_loader

logger = logging.getLogger(__name__)


@dataclass
class RunData:
    """What a training process reads.

    Attributes:
        loader: Batches of augmented patches (``"image"`` (B, C, X, Y, Z), ``"label"``) of this
            rank's share of each epoch.
        sampler: The loader's sampler; set its epoch (and the items already done) before each.
        val_cases: Validation cases (rank 0 only; empty on the other ranks).
    """

    loader: DataLoader
    sampler: EpochSampler
    val_cases: list[CachedCase]


def build_run_data(plan: RunPlan, cfg: TrainConfig, ctx: ddp.DistContext) -> RunData:
    """Load the run's cases and build its patch loader (every rank; rank 0 loads first).

    Args:
        plan: What the run trains (cases, split, preprocessing, patch, recipe, steps per epoch).
        cfg: The effective run configuration (cache folder, validation cap, oversampling, seed,
            loader workers).
        ctx: This process's place in the run (rank, world size, device).
    """
    recipe, device = plan.recipe, ctx.device
    refs, split = plan.refs, plan.split
    cache_dir = Path(cfg.cache_dir) if cfg.cache_dir else default_cache_dir()
    val_ids = split["val"][: cfg.max_val_cases] if cfg.max_val_cases else split["val"]
    if ctx.is_main:
        train_cases = load_cases([refs[c] for c in split["train"]], plan.preprocess, cache_dir)
        val_cases = load_cases([refs[c] for c in val_ids], plan.preprocess, cache_dir)
    ddp.barrier(ctx)
    if not ctx.is_main:
        train_cases = load_cases([refs[c] for c in split["train"]], plan.preprocess, cache_dir)
        val_cases = []
    from bratseg.training.augment import build_augmentation

    world, bs = ctx.world_size, int(recipe.batch_size)
    samples = plan.steps_per_epoch * bs * world
    augment = build_augmentation(
        recipe.augment, plan.patch, has_extra=plan.preprocess.foreground_channel
    )
    strata = split.get("strata") or None  # from the split file, read once by the plan
    repeats = case_repeats(split["train"], cfg.oversample, strata)
    if any(k > 1 for k in repeats.values()):
        logger.info(
            "oversampled: %s",
            ", ".join(f"{c} x{k}" for c, k in repeats.items() if k > 1),
        )
    per_source = recipe.source_region_weights or {}
    if per_source:
        logger.info(
            "region loss weights per source: %s (other cases %s)",
            per_source,
            list(recipe.region_weights),
        )

    def weights(case_id: str) -> tuple[float, float, float] | None:
        return case_region_weights(recipe, case_id) if per_source else None

    dataset = PatchDataset(
        repeated(
            [training_sample(c, plan.patch, weights(c.case_id)) for c in train_cases],
            [c.case_id for c in train_cases],
            repeats,
        ),
        augment,
        samples,
        cfg.seed,
    )
    sampler = EpochSampler(samples, world_size=world, rank=ctx.rank, seed=cfg.seed)
    workers = (
        default_num_workers(device, world) if cfg.num_workers is None else int(cfg.num_workers)
    )
    loader = make_loader(dataset, sampler, bs, workers, device)
    return RunData(loader=loader, sampler=sampler, val_cases=val_cases)


__all__ = ["RunData", "build_run_data"]
