"""The training loop: :func:`train_events` yields JSON-able progress events.

Events (also appended to ``RUN_DIR/progress.jsonl`` by rank 0):

* ``start``: arch, device, train/val case ids, split note, patch, steps per epoch, budget.
* ``step``: epoch (1-based), step (global, 1-based), loss, loss_parts, lr, eta_s, elapsed_s, device.
* ``epoch``: epoch, step, loss (epoch mean), lr, val_dice {wt, tc, et}, val_mean, best, eta_s, device.
* ``done``: reason (completed, time-budget, stop-file, signal SIGTERM/SIGINT, max-steps),
  epoch, step, val_dice, best_val_mean, checkpoint (best.pt, or last.pt without validation).
* ``error``: message (one line); the exception is then re-raised.

The generator returns the path of the best checkpoint (or last.pt when none was validated).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Generator
from pathlib import Path

import torch
from torch.optim.swa_utils import AveragedModel

from bratseg.errors import BratsInputError
from bratseg.inference.device import precision_name
from bratseg.labels import REGIONS
from bratseg.loaded_model import size_divisor
from bratseg.postprocess import PostprocessConfig
from bratseg.training import ddp, rundir
from bratseg.training.config import DEFAULT_EPOCHS, TrainConfig
from bratseg.training.events import (
    DoneEvent,
    EpochEvent,
    StartEvent,
    StepEvent,
    TrainerEvent,
    error_event,
)
from bratseg.training.losses import loss_for
from bratseg.training.plans import fresh_run_plan, resolve_config, resumed_run_plan
from bratseg.training.recipes import (
    PlateauTracker,
    build_optimizer,
    check_overrides,
    in_swa_phase,
    lr_factor,
)
from bratseg.training.run_data import build_run_data
from bratseg.training.setup import enable_gradient_checkpointing, training_precision
from bratseg.training.snapshots import RunState, region_dice, restore_state, save_snapshots
from bratseg.training.validate import validate

logger = logging.getLogger(__name__)


def train_events(config: TrainConfig) -> Generator[TrainerEvent, None, Path]:
    """Train (or fine-tune, or resume) as configured, yielding progress events.

    Args:
        config: The run configuration. With ``resume=True`` the run folder's config.json and
            state.pt are used; ``epochs``, ``time_budget_min``, ``device`` and ``num_workers``
            of ``config`` override the stored ones when given.

    Returns:
        Path of best.pt (last.pt when no validation happened).
    """
    out = Path(config.out)
    rundir.check_run_folder(out, config.resume)  # on every rank, before any of them writes
    if not config.resume:
        check_overrides(config.recipe or {})
    log = None
    ctx = ddp.init_distributed(config.device)
    try:
        if ctx.is_main:
            out.mkdir(parents=True, exist_ok=True)
            log = rundir.ProgressLog(out / rundir.PROGRESS_FILE)
        training_run = _TrainingRun(config, ctx, log)
        result = yield from training_run.run()
        return result
    except Exception as exc:
        if log is not None:
            msg = " ".join(str(exc).split()) or type(exc).__name__
            if not isinstance(exc, BratsInputError):
                msg = f"{type(exc).__name__}: {msg}"
            log.write(error_event(msg, time.time()))
        raise
    finally:
        ddp.cleanup(ctx)


class _TrainingRun:
    """One training process (see :func:`train_events`); its :class:`RunState` is ``self.state``."""

    state: RunState

    def __init__(
        self, config: TrainConfig, ctx: ddp.DistContext, log: rundir.ProgressLog | None
    ) -> None:
        self.ctx = ctx
        self.log = log
        self.config, self.resume_from = resolve_config(config)
        self.out = Path(self.config.out)
        self.device = ctx.device
        self.stop = rundir.StopRequest(self.out)

    # ------------------------------------------------------------------ setup

    def _setup(self) -> None:
        """Plan the run (fresh or resumed), load its cases and build loader, model and optimiser."""
        cfg, st, ctx = self.config, self.resume_from, self.ctx
        plan = fresh_run_plan(cfg, ctx) if st is None else resumed_run_plan(cfg, st)
        self.plan, self.spec, recipe = plan, plan.init.spec, plan.recipe
        data = build_run_data(plan, cfg, ctx)
        self.val_cases, self.sampler, self.loader = data.val_cases, data.sampler, data.loader
        # model, optimiser, schedule
        net = plan.init.model.to(self.device)
        if cfg.grad_checkpoint:
            enable_gradient_checkpointing(net)
        self.model = ddp.wrap_model(net, ctx)
        self.criterion = loss_for(self.spec, recipe)
        optimizer = build_optimizer(net.parameters(), recipe)
        amp_dtype = training_precision(self.device, recipe)
        self.use_amp = amp_dtype is not None
        self.amp_dtype = amp_dtype or torch.float32
        scaler = torch.amp.GradScaler("cuda") if amp_dtype == torch.float16 else None
        plateau = PlateauTracker(recipe.plateau_factor, recipe.plateau_patience)
        self.postprocess = PostprocessConfig.from_dict(plan.init.postprocess)
        self.epochs = (
            cfg.epochs if cfg.epochs else (None if cfg.time_budget_min else DEFAULT_EPOCHS)
        )
        self.budget_s = float(cfg.time_budget_min) * 60.0 if cfg.time_budget_min else None
        self.state = RunState(
            plan=plan,
            ctx=ctx,
            out=self.out,
            net=net,
            optimizer=optimizer,
            plateau=plateau,
            scaler=scaler,
        )
        if st is not None:
            restore_state(self.state, st)
        if ctx.is_main:
            rundir.write_json_atomic(self.config.to_dict(), self.out / rundir.CONFIG_FILE)

    # ------------------------------------------------------------------ progress

    @property
    def total_steps(self) -> int | None:
        return None if self.epochs is None else self.epochs * self.plan.steps_per_epoch

    def progress(self) -> float:
        """Training progress in [0, 1] (steps, or time for a time-budgeted run)."""
        if self.budget_s:
            return min(1.0, self.state.timer.elapsed / self.budget_s)
        return min(1.0, self.state.global_step / max(1, self.total_steps or 1))

    def eta(self) -> float | None:
        if self.budget_s:
            return max(0.0, self.budget_s - self.state.timer.elapsed)
        done = self.state.global_step - self._session_start_step
        if done <= 0 or self.total_steps is None:
            return None
        rate = (time.monotonic() - self._session_start) / done
        return max(0.0, rate * (self.total_steps - self.state.global_step))

    def _lr(self) -> float:
        recipe = self.plan.recipe
        return recipe.lr * lr_factor(recipe, self.progress(), self.state.plateau.scale)

    def _emit(self, event: TrainerEvent) -> TrainerEvent:
        if "device" not in event:
            event["device"] = self.ctx.device_desc
        if "time" not in event:
            event["time"] = time.time()
        if self.log is not None:
            self.log.write(event)
        return event

    # ------------------------------------------------------------------ loop

    def run(self) -> Generator[TrainerEvent, None, Path]:
        self._setup()
        state = self.state
        self._session_start, self._session_start_step = time.monotonic(), state.global_step
        if self.ctx.is_main:
            self.stop.clear_stale()  # a STOP left by the previous (stopped) session
            yield self._emit(self._start_event())
        reason = None
        with self.stop:
            while reason is None:
                self.sampler.set_epoch(
                    state.epoch, skip=state.step_in_epoch * int(self.plan.recipe.batch_size)
                )
                losses: list[float] = []
                for batch in self.loader:
                    loss, parts = self._train_step(batch)
                    losses.append(loss)
                    if self.ctx.is_main and self.config.step_events:
                        step_event: StepEvent = {
                            "event": "step",
                            "epoch": state.epoch + 1,
                            "step": state.global_step,
                            "epoch_step": state.step_in_epoch,
                            "steps_per_epoch": self.plan.steps_per_epoch,
                            "loss": loss,
                            "loss_parts": parts,
                            "lr": self._current_lr,
                            "eta_s": self.eta(),
                            "elapsed_s": round(state.timer.elapsed, 3),
                        }
                        yield self._emit(step_event)
                    reason = self._stop_reason()
                    if reason is not None:
                        break
                if reason in (None, "time-budget", "completed"):
                    if state.step_in_epoch >= self.plan.steps_per_epoch or reason is not None:
                        event = self._end_epoch(losses)
                        if event is not None:
                            yield event
                    if reason is None and self.epochs is not None and state.epoch >= self.epochs:
                        reason = "completed"
                else:  # stop file, signal, max-steps: save without validating
                    save_snapshots(state, validated=False)
        best = self.out / rundir.BEST_CHECKPOINT
        result = best if best.exists() else self.out / rundir.LAST_CHECKPOINT
        if self.ctx.is_main:
            done: DoneEvent = {
                "event": "done",
                "reason": reason,
                "epoch": state.epoch,
                "step": state.global_step,
                "val_dice": region_dice(state.last_val),
                "best_val_mean": _finite(state.best_score),
                "checkpoint": str(result),
                "last": str(self.out / rundir.LAST_CHECKPOINT),
                "elapsed_s": round(state.timer.elapsed, 3),
            }
            yield self._emit(done)
        ddp.barrier(self.ctx)
        return result

    def _train_step(self, batch: dict[str, torch.Tensor]) -> tuple[float, dict[str, float]]:
        state, recipe = self.state, self.plan.recipe
        optimizer, scaler = state.optimizer, state.scaler
        lr = self._lr()
        for group in optimizer.param_groups:
            group["lr"] = lr
        self._current_lr = lr
        x = batch["image"].to(self.device, non_blocking=True)
        y = batch["label"].to(self.device, non_blocking=True)
        self.model.train()
        with torch.autocast(self.device.type, dtype=self.amp_dtype, enabled=self.use_amp):
            output = self.model(x)
        sample_weights = batch.get("region_weights")
        loss, parts = self.criterion(output, y, sample_weights)
        optimizer.zero_grad(set_to_none=True)
        if torch.isfinite(loss):
            if scaler is not None:
                scaler.scale(loss).backward()
                scaler.unscale_(optimizer)
            else:
                loss.backward()
            if recipe.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(state.net.parameters(), recipe.grad_clip)
            if scaler is not None:
                scaler.step(optimizer)
                scaler.update()
            else:
                optimizer.step()
        else:
            logger.warning("non-finite loss at step %d: step skipped", state.global_step + 1)
        state.global_step += 1
        state.step_in_epoch += 1
        value = ddp.mean_over_ranks(self.ctx, float(loss.detach()))
        return value, parts

    def _stop_reason(self) -> str | None:
        local = None
        if self.stop.requested:
            local = self.stop.reason
        elif (
            self.config.stop_after_steps and self.state.global_step >= self.config.stop_after_steps
        ):
            local = "max-steps"
        elif self.budget_s and self.state.timer.elapsed >= self.budget_s:
            local = "time-budget"
        elif self.total_steps is not None and self.state.global_step >= self.total_steps:
            local = "completed"
        if ddp.any_rank(self.ctx, local is not None):
            return local or "stopped by another process"
        return None

    def _end_epoch(self, losses: list[float]) -> TrainerEvent | None:
        """Finish an epoch: SWA update, validation, checkpoints; the epoch event (rank 0)."""
        state, recipe = self.state, self.plan.recipe
        state.epoch += 1
        state.step_in_epoch = 0
        if in_swa_phase(recipe, self.progress()):
            if state.swa is None:
                state.swa = AveragedModel(state.net)
            state.swa.update_parameters(
                state.net
            )  # Henry et al. 2021: average the weights of each cycle
        val = None
        if self.ctx.is_main and self.val_cases:
            val = validate(
                state.eval_net(),
                self.val_cases,
                output_kind=self.spec.output_kind,
                device=self.device,
                postprocess=self.postprocess,
                divisor=size_divisor(self.plan.init),
                amp=self.use_amp,
            )
            state.last_val = {k: val[k] for k in (*REGIONS, "mean")}
        score = ddp.mean_over_ranks(self.ctx, val["mean"] if val else 0.0) * (
            self.ctx.world_size if self.ctx.distributed else 1
        )
        if recipe.schedule == "plateau":
            state.plateau.update(score)
        improved = bool(val) and score > state.best_score
        if improved and state.last_val is not None:  # improved: rank 0 validated
            state.best_score, state.best_val = score, dict(state.last_val)
        save_snapshots(state, validated=True, improved=improved)
        if not self.ctx.is_main:
            return None
        last_val = state.last_val
        epoch: EpochEvent = {
            "event": "epoch",
            "epoch": state.epoch,
            "step": state.global_step,
            "loss": float(sum(losses) / len(losses)) if losses else None,
            "lr": self._lr(),
            "val_dice": region_dice(last_val),
            "val_mean": _finite(last_val["mean"]) if last_val else None,
            "best": improved,
            "best_val_mean": _finite(state.best_score),
            "swa": state.swa is not None,
            "eta_s": self.eta(),
            "elapsed_s": round(state.timer.elapsed, 3),
        }
        return self._emit(epoch)

    def _start_event(self) -> StartEvent:
        plan, state = self.plan, self.state
        n_params = sum(p.numel() for p in state.net.parameters() if p.requires_grad)
        return {
            "event": "start",
            "arch": plan.init.arch,
            "resumed": bool(self.config.resume),
            "init_from": plan.init.init_from,
            "train_cases": plan.split["train"],
            "val_cases": plan.split["val"],
            "split_note": plan.split["note"],
            "patch": list(plan.patch),
            "batch_size": plan.recipe.batch_size,
            "steps_per_epoch": plan.steps_per_epoch,
            "epochs": self.epochs,
            "time_budget_s": self.budget_s,
            "recipe": plan.recipe.name,
            "lr": plan.recipe.lr,
            "parameters": n_params,
            "preprocess": plan.preprocess.to_dict(),
            "world_size": self.ctx.world_size,
            "precision": precision_name(self.amp_dtype if self.use_amp else None),
            "epoch": state.epoch,
            "step": state.global_step,
            "run_dir": str(self.out),
        }


def _finite(x: float | None) -> float | None:
    return float(x) if x is not None and math.isfinite(x) else None
