"""What a training run writes to its folder: checkpoints (last.pt, best.pt) and the resume state.

:class:`RunState` is everything those files record: the run's plan (:class:`RunPlan`), its
training objects (network, optimiser, gradient scaler, SWA average, plateau schedule) and its
progress (counters, scores, clock). The trainer owns one; :func:`save_snapshots`,
:func:`write_checkpoint`, :func:`state_dict` and :func:`restore_state` are functions over it.
:func:`model_from_state` rebuilds the network of a resume state.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch.optim.swa_utils import AveragedModel

from bratseg.checkpoint import save_checkpoint
from bratseg.errors import BratsInputError
from bratseg.inference.device import precision_name
from bratseg.labels import REGIONS
from bratseg.training import ddp, rundir
from bratseg.training.data import TRAINING_AXCODES
from bratseg.training.recipes import PlateauTracker
from bratseg.training.setup import InitialModel, RunPlan, training_precision

logger = logging.getLogger(__name__)

#: ``format`` tag of ``state.pt``.
STATE_FORMAT = "bratseg-train-state"
#: ``version`` of ``state.pt``.
STATE_VERSION = 1


@dataclass
class RunState:
    """The state of one training process that its checkpoints and resume state record.

    Attributes:
        plan: What the run trains (config, initial model, preprocessing, recipe, split, patch).
        ctx: This process's place in the (data-parallel) group.
        out: The run folder.
        net: The network being trained (unwrapped from DDP).
        optimizer: Its optimiser.
        plateau: The plateau schedule's state.
        scaler: The float16 gradient scaler, or ``None``.
        swa: The stochastic weight average once the SWA phase began, else ``None``.
        epoch: Finished epochs.
        step_in_epoch: Steps done in the current epoch.
        global_step: Steps done in total.
        best_score: Best validation mean Dice so far (``-inf`` before any validation).
        best_val: Validation Dice of that best epoch (``wt``, ``tc``, ``et``, ``mean``).
        last_val: Validation Dice of the latest validated epoch.
        timer: Training wall-clock time, carried over a resume.
    """

    plan: RunPlan
    ctx: ddp.DistContext
    out: Path
    net: torch.nn.Module
    optimizer: torch.optim.Optimizer
    plateau: PlateauTracker
    scaler: torch.amp.GradScaler | None = None
    swa: AveragedModel | None = None
    epoch: int = 0
    step_in_epoch: int = 0
    global_step: int = 0
    best_score: float = -math.inf
    best_val: dict[str, float] | None = None
    last_val: dict[str, float] | None = None
    timer: rundir.Timer = field(default_factory=rundir.Timer)

    def eval_net(self) -> torch.nn.Module:
        """The weights to validate and ship: the SWA average once it exists, else the network."""
        if self.swa is not None and int(self.swa.n_averaged) > 0:
            return self.swa.module
        return self.net


def save_snapshots(run: RunState, validated: bool, improved: bool = False) -> None:
    """Write the run's files; every rank takes part (they sync at the end).

    Rank 0 writes best.pt (when ``improved``), last.pt and state.pt; each other rank writes its
    RNG state (its dropout and augmentation draws differ from rank 0's) with the digest of its
    parameters (``weights_sha256``, equal to rank 0's).

    Args:
        run: The run.
        validated: Whether this epoch was validated (last.pt then records ``run.last_val``).
        improved: Whether the validation improved on the best so far (best.pt is rewritten).
    """
    if not run.ctx.is_main:
        rank_state = rundir.capture_rng()
        rank_state["weights_sha256"] = rundir.weights_digest(dict(run.net.named_parameters()))
        rundir.save_atomic(rank_state, run.out / rundir.rank_rng_file(run.ctx.rank))
        ddp.barrier(run.ctx)
        return
    net = run.eval_net()
    if improved:
        write_checkpoint(run, net, run.out / rundir.BEST_CHECKPOINT, run.best_val)
    write_checkpoint(
        run, net, run.out / rundir.LAST_CHECKPOINT, run.last_val if validated else None
    )
    rundir.save_atomic(state_dict(run), run.out / rundir.STATE_FILE)
    ddp.barrier(run.ctx)


def write_checkpoint(
    run: RunState, net: torch.nn.Module, path: Path, val: dict[str, float] | None
) -> None:
    """Save ``net`` as a bratseg checkpoint with the run's provenance and validation Dice."""
    plan, init = run.plan, run.plan.init
    provenance = {
        "trained_by": "bratseg.training",
        "data": [str(Path(d).resolve()) for d in plan.config.data],
        "train_cases": list(plan.split["train"]),
        "val_cases": list(plan.split["val"]),
        "split_note": plan.split["note"],
        "epochs": run.epoch,
        "steps": run.global_step,
        "steps_per_epoch": plan.steps_per_epoch,
        "patch": list(plan.patch),
        "seed": plan.config.seed,
        "preset": plan.config.preset,
        "device": run.ctx.device_desc,
        "precision": precision_name(training_precision(run.ctx.device, plan.recipe)),
        "world_size": run.ctx.world_size,
        "wall_time_s": round(run.timer.elapsed, 1),
        "recipe": plan.recipe.to_dict(),
        "init_from": init.init_from,
        "pretrained_cases": list(init.pretrained_cases),
        "swa": run.swa is not None,
        "val_dice": region_dice(val),
        "metrics": {"val_dice": region_dice(val), "val_mean": float(val["mean"])} if val else {},
    }
    save_checkpoint(
        path,
        net,
        arch=init.arch,
        config=init.config,
        postprocess=init.postprocess,
        preprocess=plan.preprocess.to_dict(),
        provenance=provenance,
        orientation="".join(TRAINING_AXCODES),
    )


def state_dict(run: RunState) -> dict[str, Any]:
    """Everything needed to resume exactly (plain tensors/values: ``weights_only`` loads it)."""
    plan, init = run.plan, run.plan.init
    return {
        "format": STATE_FORMAT,
        "version": STATE_VERSION,
        "arch": init.arch,
        "model_config": init.config.to_dict(),
        "model": run.net.state_dict(),
        "optimizer": run.optimizer.state_dict(),
        "scaler": run.scaler.state_dict() if run.scaler is not None else None,
        "swa": run.swa.state_dict() if run.swa is not None else None,
        "plateau": run.plateau.state_dict(),
        "rng": rundir.capture_rng(),
        "epoch": run.epoch,
        "step_in_epoch": run.step_in_epoch,
        "global_step": run.global_step,
        "best_score": float(run.best_score),
        "best_val": run.best_val,
        "last_val": run.last_val,
        "elapsed_s": float(run.timer.elapsed),
        "preprocess": plan.preprocess.to_dict(),
        "postprocess": dict(init.postprocess),
        "recipe": plan.recipe.to_dict(),
        "split": dict(plan.split),
        "patch": list(plan.patch),
        "steps_per_epoch": plan.steps_per_epoch,
        "init_from": init.init_from,
        "pretrained_cases": list(init.pretrained_cases),
    }


def restore_state(run: RunState, st: dict[str, Any]) -> None:
    """Continue ``run`` from a resume state (the inverse of :func:`state_dict`).

    The plan and the weights come from ``st`` already (:mod:`bratseg.training.plans`); this
    restores the optimiser, scaler, plateau schedule, SWA average, counters, scores, clock and
    this rank's RNG state.
    """
    run.optimizer.load_state_dict(st["optimizer"])
    if run.scaler is not None and st.get("scaler"):
        run.scaler.load_state_dict(st["scaler"])
    run.plateau.load_state_dict(st["plateau"])
    if st.get("swa") is not None:
        run.swa = AveragedModel(run.net)
        run.swa.load_state_dict(st["swa"])
    run.epoch, run.step_in_epoch = int(st["epoch"]), int(st["step_in_epoch"])
    run.global_step = int(st["global_step"])
    run.best_score = float(st["best_score"])
    run.best_val = st.get("best_val") or None
    run.last_val = st.get("last_val") or None
    run.timer = rundir.Timer(float(st["elapsed_s"]))
    restore_rank_rng(run.out, run.ctx, st["rng"])
    logger.info("resumed at epoch %d, step %d", run.epoch, run.global_step)


def restore_rank_rng(out: Path, ctx: ddp.DistContext, main_rng: dict[str, Any]) -> None:
    """Restore this rank's RNG state (rank 0: from state.pt; others: their own file in ``out``)."""
    path = out / rundir.rank_rng_file(ctx.rank)
    if ctx.is_main:
        rundir.restore_rng(main_rng)
    elif path.is_file():
        rundir.restore_rng(rundir.load_state(path))
    else:  # e.g. resumed with more processes than the run was saved with
        logger.warning(
            "rank %d: no saved RNG state (%s); random draws will differ from an uninterrupted run",
            ctx.rank,
            path.name,
        )
        rundir.restore_rng(main_rng)


def region_dice(val: dict[str, float] | None) -> dict[str, float] | None:
    """The WT/TC/ET Dice of a validation result as plain floats (None without validation)."""
    return {k: float(val[k]) for k in REGIONS} if val else None


def model_from_state(st: dict[str, Any]) -> InitialModel:
    """Rebuild the network of a resume state (weights included).

    Args:
        st: A dict loaded from ``state.pt`` (see :func:`state_dict`).

    Returns:
        The network in train mode with its architecture, config and pre/postprocessing.

    Raises:
        BratsInputError: ``st`` is not a bratseg training state.
    """
    from bratseg.models import build_model, get_architecture

    if st.get("format") != STATE_FORMAT:
        raise BratsInputError("state.pt is not a bratseg training state")
    spec = get_architecture(st["arch"])
    cfg = spec.config_cls.from_dict(st["model_config"])
    model = build_model(st["arch"], cfg)
    model.load_state_dict(st["model"])
    model.train()
    if "pretrained_cases" in st:
        seen = list(st["pretrained_cases"])
    else:  # a state written before the trainer recorded them: look the initial weights up
        from bratseg.evaluation import pretrained_cases

        seen = sorted(pretrained_cases({"init_from": st.get("init_from")}))
    return InitialModel(
        model,
        st["arch"],
        spec,
        cfg,
        init_from=st.get("init_from"),
        preprocess=st["preprocess"],
        postprocess=dict(st.get("postprocess") or {}),
        pretrained_cases=seen,
    )
