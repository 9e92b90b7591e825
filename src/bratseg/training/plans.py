"""The plan of a run (:class:`~bratseg.training.setup.RunPlan`): built fresh, or read back to resume.

:func:`resolve_config` gives the effective config and the resume state of a run folder;
:func:`fresh_run_plan` chooses the model, preprocessing, recipe, patch and split from the
config; :func:`resumed_run_plan` takes them from the resume state (``state.pt``).
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import Any

import torch

from bratseg.errors import BratsInputError
from bratseg.loaded_model import size_divisor
from bratseg.preprocess import PreprocessConfig
from bratseg.training import ddp, rundir
from bratseg.training.config import MIN_STEPS_PER_EPOCH, TrainConfig
from bratseg.training.data import CaseRef, discover_cases, split_cases
from bratseg.training.patches import default_patch
from bratseg.training.recipes import Recipe, default_recipe
from bratseg.training.setup import (
    RunPlan,
    RunSplit,
    fit_fixed_input,
    initial_model,
    preprocess_for,
    round_patch,
)
from bratseg.training.snapshots import model_from_state
from bratseg.training.splits import read_split_file, split_from_file

logger = logging.getLogger(__name__)


def resolve_config(config: TrainConfig) -> tuple[TrainConfig, dict[str, Any] | None]:
    """The effective config of a run and its resume state (``None`` for a fresh run).

    Args:
        config: The requested configuration. With ``resume=True`` the run folder's config.json
            is used, with ``epochs``, ``time_budget_min``, ``num_workers`` and ``device`` of
            ``config`` overriding the stored ones when given (``stop_after_steps`` is never
            inherited).

    Returns:
        The config to run and the loaded ``state.pt`` (``None`` unless resuming).

    Raises:
        BratsInputError: config.json cannot be read.
    """
    out = Path(config.out)
    if not config.resume:
        return config, None
    stored = TrainConfig.from_dict(_read_json(out / rundir.CONFIG_FILE))
    for key in ("epochs", "time_budget_min", "num_workers"):
        value = getattr(config, key)
        if value is not None:
            setattr(stored, key, value)
    stored.stop_after_steps = config.stop_after_steps  # a per-invocation limit, never inherited
    if config.device != "auto":
        stored.device = config.device
    stored.resume = True
    stored.out = str(out)
    return stored, rundir.load_state(out / rundir.STATE_FILE)


def fresh_run_plan(cfg: TrainConfig, ctx: ddp.DistContext) -> RunPlan:
    """Plan a new run from its config (seeds torch: same initial weights on every rank).

    Args:
        cfg: The run configuration.
        ctx: This process's place in the group (world size and rank).

    Returns:
        The plan; a fine-tuned checkpoint imposes its preprocessing (and a fixed input size).

    Raises:
        BratsInputError: Unknown model or preset, a bad patch, data folders or split file.
    """
    torch.manual_seed(cfg.seed)
    init = initial_model(cfg.model, cfg.preset)
    if ctx.rank:  # same initial weights on every rank, own dropout draws per rank
        torch.manual_seed(cfg.seed + ctx.rank)
    preprocess = preprocess_for(cfg, init)
    overrides = dict(cfg.recipe or {})
    aug = overrides.pop("augment", None)
    recipe = default_recipe(init.arch).with_overrides(
        lr=cfg.lr, batch_size=cfg.batch_size, **overrides
    )
    if aug:
        recipe.augment = type(recipe.augment).from_dict({**recipe.augment.to_dict(), **aug})
    divisor = size_divisor(init)
    patch = round_patch(cfg.patch, divisor) if cfg.patch else default_patch(preprocess, divisor)
    patch = fit_fixed_input(init, patch)
    refs = _case_refs(cfg)
    if cfg.split_file:
        chosen = split_from_file(cfg.split_file, cfg.fold, list(refs))
        split = RunSplit(
            train=chosen["train"], val=chosen["val"], note=chosen["note"], strata=chosen["strata"]
        )
    else:
        drawn = split_cases(
            list(refs),
            val_fraction=cfg.val_fraction,
            val_cases=cfg.val_cases,
            fold=cfg.fold,
            folds=cfg.folds,
            seed=cfg.seed,
        )
        split = RunSplit(train=drawn.train, val=drawn.val, note=drawn.note, strata={})
    per_step = int(recipe.batch_size) * ctx.world_size
    steps = int(
        cfg.steps_per_epoch or max(MIN_STEPS_PER_EPOCH, math.ceil(len(split["train"]) / per_step))
    )
    return RunPlan(
        config=cfg,
        init=init,
        preprocess=preprocess,
        recipe=recipe,
        patch=patch,
        refs=refs,
        split=split,
        steps_per_epoch=steps,
    )


def resumed_run_plan(cfg: TrainConfig, st: dict[str, Any]) -> RunPlan:
    """The plan of the run saved in ``st`` (weights included), over the data folders of ``cfg``.

    Args:
        cfg: The effective config (see :func:`resolve_config`).
        st: The run's loaded ``state.pt``.

    Returns:
        The saved plan: model and weights, preprocessing, recipe, patch, split, steps per epoch.

    Raises:
        BratsInputError: ``st`` is not a training state; a case of the split is no longer in
            the data folders.
    """
    init = model_from_state(st)
    preprocess = PreprocessConfig.from_dict(st["preprocess"])
    recipe = Recipe.from_dict(st["recipe"])
    px, py, pz = (int(p) for p in st["patch"])
    refs = _case_refs(cfg)
    saved = st["split"]
    strata = saved.get("strata")
    if strata is None and cfg.split_file:  # a run started before strata were kept
        strata = read_split_file(cfg.split_file).strata()
    split = RunSplit(
        train=saved["train"], val=saved["val"], note=saved["note"], strata=strata or {}
    )
    missing = [c for c in split["train"] + split["val"] if c not in refs]
    if missing:
        raise BratsInputError(
            f"cannot resume: case(s) {', '.join(missing)} no longer in the data folders"
        )
    return RunPlan(
        config=cfg,
        init=init,
        preprocess=preprocess,
        recipe=recipe,
        patch=(px, py, pz),
        refs=refs,
        split=split,
        steps_per_epoch=int(st["steps_per_epoch"]),
    )


def _case_refs(cfg: TrainConfig) -> dict[str, CaseRef]:
    """The cases of the run's data folders by case id."""
    return {r.case_id: r for r in discover_cases(cfg.data, cfg.seg_on_image_grid or (), cfg.align)}


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise BratsInputError(f"cannot read run config ({exc})", path) from None
