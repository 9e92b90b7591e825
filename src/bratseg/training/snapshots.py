"""What a training run writes to its folder: checkpoints (last.pt, best.pt) and the resume state.

Split from :mod:`bratseg.training.trainer`: :class:`RunSnapshots` is mixed into the trainer's
session and reads its attributes (``ctx``, ``out``, ``net``, ``optimizer``, ``scaler``, ``swa``,
``plateau``, ``init``, ``preprocess``, ``recipe``, ``split``, ``patch``, counters, scores, timer);
:func:`model_from_state` rebuilds the network of a resume state.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch

from bratseg.checkpoint import save_checkpoint
from bratseg.errors import BratsInputError
from bratseg.labels import REGIONS
from bratseg.training import ddp, rundir
from bratseg.training.data import TRAINING_AXCODES
from bratseg.training.setup import InitialModel

logger = logging.getLogger(__name__)

#: ``format`` tag of ``state.pt``.
STATE_FORMAT = "bratseg-train-state"


class RunSnapshots:
    """Checkpoint and resume-state writing of a training session (mixin; see module docstring)."""

    def _save(self, validated: bool, improved: bool = False) -> None:
        """Write best.pt (when ``improved``), last.pt and state.pt on rank 0, each other rank's RNG
        state beside them (its dropout and augmentation draws differ from rank 0's) with the
        digest of its parameters (``weights_sha256``, equal to rank 0's); all ranks sync."""
        if not self.ctx.is_main:
            rank_state = rundir.capture_rng()
            rank_state["weights_sha256"] = rundir.weights_digest(dict(self.net.named_parameters()))
            rundir.save_atomic(rank_state, self.out / rundir.rank_rng_file(self.ctx.rank))
            ddp.barrier(self.ctx)
            return
        net = self._eval_net()
        if improved:
            self._checkpoint(net, self.out / rundir.BEST_CHECKPOINT, self.best_val)
        self._checkpoint(net, self.out / rundir.LAST_CHECKPOINT, self.last_val if validated else None)
        rundir.save_atomic(self._state_dict(), self.out / rundir.STATE_FILE)
        ddp.barrier(self.ctx)

    def _restore_rank_rng(self, main_rng: dict[str, Any]) -> None:
        """Restore this rank's RNG state (rank 0: from state.pt; others: their own file)."""
        path = self.out / rundir.rank_rng_file(self.ctx.rank)
        if self.ctx.is_main:
            rundir.restore_rng(main_rng)
        elif path.is_file():
            rundir.restore_rng(rundir.load_state(path))
        else:  # e.g. resumed with more processes than the run was saved with
            logger.warning("rank %d: no saved RNG state (%s); random draws will differ from an "
                           "uninterrupted run", self.ctx.rank, path.name)
            rundir.restore_rng(main_rng)

    def _checkpoint(self, net: torch.nn.Module, path: Path, val: dict[str, float] | None) -> None:
        """Save ``net`` as a bratseg checkpoint with the run's provenance and validation Dice."""
        provenance = {
            "trained_by": "bratseg.training", "data": [str(Path(d).resolve()) for d in self.config.data],
            "train_cases": list(self.split["train"]), "val_cases": list(self.split["val"]),
            "split_note": self.split["note"], "epochs": self.epoch, "steps": self.global_step,
            "steps_per_epoch": self.steps_per_epoch, "patch": list(self.patch), "seed": self.config.seed,
            "preset": self.config.preset, "device": self.ctx.device_desc, "world_size": self.ctx.world_size,
            "wall_time_s": round(self.timer.elapsed, 1), "recipe": self.recipe.to_dict(),
            "init_from": self.init.init_from, "pretrained_cases": list(self.init.pretrained_cases),
            "swa": self.swa is not None, "val_dice": region_dice(val),
            "metrics": {"val_dice": region_dice(val), "val_mean": float(val["mean"])} if val else {},
        }
        save_checkpoint(path, net, arch=self.arch, config=self.init.config, postprocess=self.init.postprocess,
                        preprocess=self.preprocess.to_dict(), provenance=provenance,
                        orientation="".join(TRAINING_AXCODES))

    def _state_dict(self) -> dict[str, Any]:
        """Everything needed to resume exactly (plain tensors/values: ``weights_only`` loads it)."""
        return {
            "format": STATE_FORMAT, "version": 1, "arch": self.arch, "model_config": self.init.config.to_dict(),
            "model": self.net.state_dict(), "optimizer": self.optimizer.state_dict(),
            "scaler": self.scaler.state_dict() if self.scaler is not None else None,
            "swa": self.swa.state_dict() if self.swa is not None else None,
            "plateau": self.plateau.state_dict(), "rng": rundir.capture_rng(),
            "epoch": self.epoch, "step_in_epoch": self.step_in_epoch, "global_step": self.global_step,
            "best_score": float(self.best_score), "best_val": self.best_val, "last_val": self.last_val,
            "elapsed_s": float(self.timer.elapsed), "preprocess": self.preprocess.to_dict(),
            "postprocess": dict(self.init.postprocess), "recipe": self.recipe.to_dict(),
            "split": dict(self.split), "patch": list(self.patch), "steps_per_epoch": self.steps_per_epoch,
            "init_from": self.init.init_from, "pretrained_cases": list(self.init.pretrained_cases),
        }


def region_dice(val: dict[str, float] | None) -> dict[str, float] | None:
    """The WT/TC/ET Dice of a validation result as plain floats (None without validation)."""
    return {k: float(val[k]) for k in REGIONS} if val else None


def model_from_state(st: dict[str, Any]) -> InitialModel:
    """Rebuild the network of a resume state (weights included).

    Args:
        st: A dict loaded from ``state.pt`` (see :meth:`RunSnapshots._state_dict`).

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
    return InitialModel(model, st["arch"], spec, cfg, init_from=st.get("init_from"),
                        preprocess=st["preprocess"], postprocess=dict(st.get("postprocess") or {}),
                        pretrained_cases=seen)
