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
from typing import Any

import torch
from torch.optim.swa_utils import AveragedModel

from bratseg.errors import BratsInputError
from bratseg.labels import REGIONS
from bratseg.training import ddp, rundir
from bratseg.training.config import DEFAULT_EPOCHS, MIN_STEPS_PER_EPOCH, TrainConfig
from bratseg.training.data import (
    EpochSampler, PatchDataset, default_patch, discover_cases, load_cases, split_cases, training_sample,
)
from bratseg.training.losses import loss_for
from bratseg.training.recipes import (
    PlateauTracker, Recipe, build_optimizer, check_overrides, default_recipe, in_swa_phase, lr_factor,
)
from bratseg.training.setup import (
    default_cache_dir, default_num_workers, enable_gradient_checkpointing, fit_fixed_input, initial_model,
    make_loader, model_size_divisor, preprocess_for, round_patch,
)
from bratseg.training.splits import split_from_file
from bratseg.training.snapshots import RunSnapshots, model_from_state, region_dice
from bratseg.training.validate import thresholds_from_postprocess, validate

logger = logging.getLogger(__name__)


def train_events(config: TrainConfig) -> Generator[dict[str, Any], None, Path]:
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
        session = _Session(config, ctx, log)
        result = yield from session.run()
        return result
    except Exception as exc:
        if log is not None:
            msg = " ".join(str(exc).split()) or type(exc).__name__
            if not isinstance(exc, BratsInputError):
                msg = f"{type(exc).__name__}: {msg}"
            log.write({"event": "error", "message": msg, "time": time.time()})
        raise
    finally:
        ddp.cleanup(ctx)


def _resolve_config(config: TrainConfig) -> tuple[TrainConfig, dict[str, Any] | None]:
    """The effective config and the resume state (``None`` for a fresh run)."""
    out = Path(config.out)
    state_path = out / rundir.STATE_FILE
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
    return stored, rundir.load_state(state_path)


def _read_json(path: Path) -> dict[str, Any]:
    import json

    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise BratsInputError(f"cannot read run config ({exc})", path) from None


class _Session(RunSnapshots):
    """State of one training process (see :func:`train_events`)."""

    def __init__(self, config: TrainConfig, ctx: ddp.DistContext, log: rundir.ProgressLog | None) -> None:
        self.ctx = ctx
        self.log = log
        self.config, self.state = _resolve_config(config)
        self.out = Path(self.config.out)
        self.device = ctx.device
        self.stop = rundir.StopRequest(self.out)

    # ------------------------------------------------------------------ setup

    def _setup(self) -> None:
        cfg, st = self.config, self.state
        if st is None:
            torch.manual_seed(cfg.seed)
            self.init = initial_model(cfg.model, cfg.preset)
            if self.ctx.rank:  # same initial weights on every rank, own dropout draws per rank
                torch.manual_seed(cfg.seed + self.ctx.rank)
        else:
            self.init = model_from_state(st)
        self.arch, self.spec = self.init.arch, self.init.spec
        self.preprocess = preprocess_for(cfg, self.init) if st is None else _pp(st["preprocess"])
        recipe = default_recipe(self.arch) if st is None else Recipe.from_dict(st["recipe"])
        if st is None:
            overrides = dict(cfg.recipe or {})
            aug = overrides.pop("augment", None)
            recipe = recipe.with_overrides(lr=cfg.lr, batch_size=cfg.batch_size, **overrides)
            if aug:
                recipe.augment = type(recipe.augment).from_dict({**recipe.augment.to_dict(), **aug})
        self.recipe = recipe
        self.use_amp = bool(recipe.amp and self.device.type == "cuda")
        divisor = model_size_divisor(self.init)
        if st is not None:
            self.patch = tuple(int(p) for p in st["patch"])
        else:
            self.patch = round_patch(cfg.patch, divisor) if cfg.patch else default_patch(self.preprocess, divisor)
            self.patch = fit_fixed_input(self.init, self.patch)
        # data
        refs = {r.case_id: r for r in discover_cases(cfg.data, cfg.seg_on_image_grid or (), cfg.align)}
        if st is None and cfg.split_file:
            self.split = split_from_file(cfg.split_file, cfg.fold, list(refs))
        elif st is None:
            split = split_cases(list(refs), val_fraction=cfg.val_fraction, val_cases=cfg.val_cases,
                                fold=cfg.fold, folds=cfg.folds, seed=cfg.seed)
            self.split = {"train": split.train, "val": split.val, "note": split.note}
        else:
            self.split = {k: st["split"][k] for k in ("train", "val", "note")}
            missing = [c for c in self.split["train"] + self.split["val"] if c not in refs]
            if missing:
                raise BratsInputError(f"cannot resume: case(s) {', '.join(missing)} no longer in the data folders")
        cache_dir = Path(cfg.cache_dir) if cfg.cache_dir else default_cache_dir()
        val_ids = self.split["val"][: cfg.max_val_cases] if cfg.max_val_cases else self.split["val"]
        if self.ctx.is_main:
            train_cases = load_cases([refs[c] for c in self.split["train"]], self.preprocess, cache_dir)
            self.val_cases = load_cases([refs[c] for c in val_ids], self.preprocess, cache_dir)
        ddp.barrier(self.ctx)
        if not self.ctx.is_main:
            train_cases = load_cases([refs[c] for c in self.split["train"]], self.preprocess, cache_dir)
            self.val_cases = []
        from bratseg.training.augment import build_augmentation

        world, bs = self.ctx.world_size, int(recipe.batch_size)
        if st is not None:
            self.steps_per_epoch = int(st["steps_per_epoch"])
        else:
            self.steps_per_epoch = int(cfg.steps_per_epoch or max(MIN_STEPS_PER_EPOCH, math.ceil(len(train_cases) / (bs * world))))
        samples = self.steps_per_epoch * bs * world
        has_extra = self.preprocess.foreground_channel
        augment = build_augmentation(recipe.augment, self.patch, has_extra=has_extra)
        dataset = PatchDataset([training_sample(c, self.patch) for c in train_cases], augment, samples, cfg.seed)
        self.sampler = EpochSampler(samples, world_size=world, rank=self.ctx.rank, seed=cfg.seed)
        workers = default_num_workers(self.device, world) if cfg.num_workers is None else int(cfg.num_workers)
        self.loader = make_loader(dataset, self.sampler, bs, workers, self.device)
        # model, optimiser, schedule
        self.net = self.init.model.to(self.device)
        if cfg.grad_checkpoint:
            enable_gradient_checkpointing(self.net)
        self.model = ddp.wrap_model(self.net, self.ctx)
        self.criterion = loss_for(self.spec, recipe)
        self.optimizer = build_optimizer(self.net.parameters(), recipe)
        amp_dtype = torch.bfloat16 if self.use_amp and torch.cuda.is_bf16_supported() else torch.float16
        self.amp_dtype = amp_dtype
        self.scaler = torch.amp.GradScaler("cuda") if self.use_amp and amp_dtype == torch.float16 else None
        self.plateau = PlateauTracker(recipe.plateau_factor, recipe.plateau_patience)
        self.swa: AveragedModel | None = None
        self.thresholds = thresholds_from_postprocess(self.init.postprocess)
        self.epochs = cfg.epochs if cfg.epochs else (None if cfg.time_budget_min else DEFAULT_EPOCHS)
        self.budget_s = float(cfg.time_budget_min) * 60.0 if cfg.time_budget_min else None
        # counters
        self.epoch, self.step_in_epoch, self.global_step = 0, 0, 0
        self.best_score, self.best_val, self.last_val = -math.inf, None, None
        self.timer = rundir.Timer()
        if st is not None:
            self._restore(st)
        if self.ctx.is_main:
            rundir.write_json_atomic(self.config.to_dict(), self.out / rundir.CONFIG_FILE)

    def _restore(self, st: dict[str, Any]) -> None:
        self.optimizer.load_state_dict(st["optimizer"])
        if self.scaler is not None and st.get("scaler"):
            self.scaler.load_state_dict(st["scaler"])
        self.plateau.load_state_dict(st["plateau"])
        if st.get("swa") is not None:
            self.swa = AveragedModel(self.net)
            self.swa.load_state_dict(st["swa"])
        self.epoch, self.step_in_epoch = int(st["epoch"]), int(st["step_in_epoch"])
        self.global_step = int(st["global_step"])
        self.best_score = float(st["best_score"])
        self.best_val = st.get("best_val") or None
        self.last_val = st.get("last_val") or None
        self.timer = rundir.Timer(float(st["elapsed_s"]))
        self._restore_rank_rng(st["rng"])
        logger.info("resumed at epoch %d, step %d", self.epoch, self.global_step)

    # ------------------------------------------------------------------ progress

    @property
    def total_steps(self) -> int | None:
        return None if self.epochs is None else self.epochs * self.steps_per_epoch

    def progress(self) -> float:
        """Training progress in [0, 1] (steps, or time for a time-budgeted run)."""
        if self.budget_s:
            return min(1.0, self.timer.elapsed / self.budget_s)
        return min(1.0, self.global_step / max(1, self.total_steps or 1))

    def eta(self) -> float | None:
        if self.budget_s:
            return max(0.0, self.budget_s - self.timer.elapsed)
        done = self.global_step - self._session_start_step
        if done <= 0 or self.total_steps is None:
            return None
        rate = (time.monotonic() - self._session_start) / done
        return max(0.0, rate * (self.total_steps - self.global_step))

    def _lr(self) -> float:
        return self.recipe.lr * lr_factor(self.recipe, self.progress(), self.plateau.scale)

    def _emit(self, event: dict[str, Any]) -> dict[str, Any]:
        event.setdefault("device", self.ctx.device_desc)
        event.setdefault("time", time.time())
        if self.log is not None:
            self.log.write(event)
        return event

    # ------------------------------------------------------------------ loop

    def run(self) -> Generator[dict[str, Any], None, Path]:
        self._setup()
        self._session_start, self._session_start_step = time.monotonic(), self.global_step
        if self.ctx.is_main:
            self.stop.clear_stale()  # a STOP left by the previous (stopped) session
            yield self._emit(self._start_event())
        reason = None
        with self.stop:
            while reason is None:
                self.sampler.set_epoch(self.epoch, skip=self.step_in_epoch * int(self.recipe.batch_size))
                losses: list[float] = []
                for batch in self.loader:
                    loss, parts = self._train_step(batch)
                    losses.append(loss)
                    if self.ctx.is_main and self.config.step_events:
                        yield self._emit({
                            "event": "step", "epoch": self.epoch + 1, "step": self.global_step,
                            "epoch_step": self.step_in_epoch, "steps_per_epoch": self.steps_per_epoch,
                            "loss": loss, "loss_parts": parts, "lr": self._current_lr,
                            "eta_s": self.eta(), "elapsed_s": round(self.timer.elapsed, 3),
                        })
                    reason = self._stop_reason()
                    if reason is not None:
                        break
                if reason in (None, "time-budget", "completed"):
                    if self.step_in_epoch >= self.steps_per_epoch or reason is not None:
                        event = self._end_epoch(losses)
                        if event is not None:
                            yield event
                    if reason is None and self.epochs is not None and self.epoch >= self.epochs:
                        reason = "completed"
                else:  # stop file, signal, max-steps: save without validating
                    self._save(validated=False)
        best = self.out / rundir.BEST_CHECKPOINT
        result = best if best.exists() else self.out / rundir.LAST_CHECKPOINT
        if self.ctx.is_main:
            yield self._emit({
                "event": "done", "reason": reason, "epoch": self.epoch, "step": self.global_step,
                "val_dice": region_dice(self.last_val), "best_val_mean": _finite(self.best_score),
                "checkpoint": str(result), "last": str(self.out / rundir.LAST_CHECKPOINT),
                "elapsed_s": round(self.timer.elapsed, 3),
            })
        ddp.barrier(self.ctx)
        return result

    def _train_step(self, batch: dict[str, torch.Tensor]) -> tuple[float, dict[str, float]]:
        lr = self._lr()
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        self._current_lr = lr
        x = batch["image"].to(self.device, non_blocking=True)
        y = batch["label"].to(self.device, non_blocking=True)
        self.model.train()
        with torch.autocast(self.device.type, dtype=self.amp_dtype, enabled=self.use_amp):
            output = self.model(x)
        loss, parts = self.criterion(output, y)
        self.optimizer.zero_grad(set_to_none=True)
        if torch.isfinite(loss):
            if self.scaler is not None:
                self.scaler.scale(loss).backward()
                self.scaler.unscale_(self.optimizer)
            else:
                loss.backward()
            if self.recipe.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(self.net.parameters(), self.recipe.grad_clip)
            if self.scaler is not None:
                self.scaler.step(self.optimizer)
                self.scaler.update()
            else:
                self.optimizer.step()
        else:
            logger.warning("non-finite loss at step %d: step skipped", self.global_step + 1)
        self.global_step += 1
        self.step_in_epoch += 1
        value = ddp.mean_over_ranks(self.ctx, float(loss.detach()))
        return value, parts

    def _stop_reason(self) -> str | None:
        local = None
        if self.stop.requested:
            local = self.stop.reason
        elif self.config.stop_after_steps and self.global_step >= self.config.stop_after_steps:
            local = "max-steps"
        elif self.budget_s and self.timer.elapsed >= self.budget_s:
            local = "time-budget"
        elif self.total_steps is not None and self.global_step >= self.total_steps:
            local = "completed"
        if ddp.any_rank(self.ctx, local is not None):
            return local or "stopped by another process"
        return None

    def _end_epoch(self, losses: list[float]) -> dict[str, Any] | None:
        """Finish an epoch: SWA update, validation, checkpoints; the epoch event (rank 0)."""
        self.epoch += 1
        self.step_in_epoch = 0
        if in_swa_phase(self.recipe, self.progress()):
            if self.swa is None:
                self.swa = AveragedModel(self.net)
            self.swa.update_parameters(self.net)  # seed 002: average the weights of each cycle
        val = None
        if self.ctx.is_main and self.val_cases:
            val = validate(self._eval_net(), self.val_cases, output_kind=self.spec.output_kind,
                           device=self.device, patch=self.patch, thresholds=self.thresholds, amp=self.use_amp)
            self.last_val = {k: val[k] for k in (*REGIONS, "mean")}
        score = ddp.mean_over_ranks(self.ctx, val["mean"] if val else 0.0) * (self.ctx.world_size if self.ctx.distributed else 1)
        if self.recipe.schedule == "plateau":
            self.plateau.update(score)
        improved = bool(val) and score > self.best_score
        if improved:
            self.best_score, self.best_val = score, dict(self.last_val)
        self._save(validated=True, improved=improved)
        if not self.ctx.is_main:
            return None
        return self._emit({
            "event": "epoch", "epoch": self.epoch, "step": self.global_step,
            "loss": float(sum(losses) / len(losses)) if losses else None, "lr": self._lr(),
            "val_dice": region_dice(self.last_val), "val_mean": _finite(self.last_val["mean"]) if self.last_val else None,
            "best": improved, "best_val_mean": _finite(self.best_score), "swa": self.swa is not None,
            "eta_s": self.eta(), "elapsed_s": round(self.timer.elapsed, 3),
        })

    def _eval_net(self) -> torch.nn.Module:
        """The weights to validate and ship: the SWA average once it exists, else the network."""
        if self.swa is not None and int(self.swa.n_averaged) > 0:
            return self.swa.module
        return self.net

    def _start_event(self) -> dict[str, Any]:
        n_params = sum(p.numel() for p in self.net.parameters() if p.requires_grad)
        return {
            "event": "start", "arch": self.arch, "resumed": bool(self.config.resume),
            "init_from": self.init.init_from, "train_cases": self.split["train"], "val_cases": self.split["val"],
            "split_note": self.split["note"], "patch": list(self.patch), "batch_size": self.recipe.batch_size,
            "steps_per_epoch": self.steps_per_epoch, "epochs": self.epochs, "time_budget_s": self.budget_s,
            "recipe": self.recipe.name, "lr": self.recipe.lr, "parameters": n_params,
            "preprocess": self.preprocess.to_dict(), "world_size": self.ctx.world_size,
            "epoch": self.epoch, "step": self.global_step, "run_dir": str(self.out),
        }


def _finite(x: float | None) -> float | None:
    return float(x) if x is not None and math.isfinite(x) else None


def _pp(d: dict[str, Any]) -> Any:
    from bratseg.preprocess import PreprocessConfig

    return PreprocessConfig.from_dict(d)
