"""Building the pieces of a run: initial model, preprocessing, data, loaders, and the run's plan.

Split from :mod:`bratseg.training.trainer` to keep the loop readable. :class:`RunPlan` holds
what a run trains (built for a fresh or a resumed run by :mod:`bratseg.training.plans`).
"""

from __future__ import annotations

import logging
import math
import os
import signal
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypedDict

import torch
from torch.utils.data import DataLoader

from bratseg.errors import BratsInputError
from bratseg.preprocess import PreprocessConfig, effective_pad_multiple
from bratseg.training.config import DEFAULT_TARGET_SPACING, TrainConfig
from bratseg.training.data import CaseRef
from bratseg.training.recipes import Recipe

logger = logging.getLogger(__name__)


@dataclass
class InitialModel:
    """The network to train and where it came from.

    Attributes:
        model: The network (train mode, CPU).
        arch: Registry name.
        spec: Its ArchitectureSpec.
        config: Its model config dataclass.
        init_from: ``{"path", "sha256"}`` of the checkpoint fine-tuned, or ``None``.
        preprocess: The checkpoint's preprocess dict (fine-tuning) or ``None``.
        postprocess: PostprocessConfig kwargs to store in the trained checkpoint.
        card: The initial checkpoint's provenance (fine-tuning), else empty.
        pretrained_cases: Cases the initial weights were trained on, down their init chain
            (recorded in every checkpoint so that a cross-validation can report them apart).
    """

    model: torch.nn.Module
    arch: str
    spec: Any
    config: Any
    init_from: dict[str, str] | None = None
    preprocess: dict[str, Any] | None = None
    postprocess: dict[str, Any] = field(default_factory=dict)
    card: dict[str, Any] = field(default_factory=dict)
    pretrained_cases: list[str] = field(default_factory=list)


class RunSplit(TypedDict):
    """Training and validation case ids of a run, a human note on how they were chosen, and
    each case's stratum when a split file gave them (empty otherwise; absent in older runs)."""

    train: list[str]
    val: list[str]
    note: str
    strata: dict[str, str]


@dataclass
class RunPlan:
    """What a run trains, fixed for its whole life (a resumed run reads it from state.pt).

    Attributes:
        config: The effective run configuration.
        init: The network to train and where it came from.
        preprocess: Preprocessing of the training cases.
        recipe: Optimiser, schedule, loss and augmentation settings.
        patch: Training patch size (X, Y, Z) voxels.
        refs: The cases of the data folders by case id.
        split: Training and validation case ids.
        steps_per_epoch: Optimiser steps per epoch.
    """

    config: TrainConfig
    init: InitialModel
    preprocess: PreprocessConfig
    recipe: Recipe
    patch: tuple[int, int, int]
    refs: dict[str, CaseRef]
    split: RunSplit
    steps_per_epoch: int


def initial_model(name_or_path: str, preset: str = "small") -> InitialModel:
    """Fresh architecture (by registry name) or a checkpoint to fine-tune (path or zoo name).

    Raises:
        BratsInputError: Neither an architecture nor a usable checkpoint.
    """
    from bratseg.checkpoint import load_checkpoint
    from bratseg.models import ARCHITECTURES, build_model, get_architecture

    if name_or_path in ARCHITECTURES:
        spec = get_architecture(name_or_path)
        if preset not in spec.presets:
            raise BratsInputError(
                f"unknown preset {preset!r} for {name_or_path} (have {', '.join(spec.presets)})"
            )
        model = build_model(name_or_path, preset=preset)
        return InitialModel(
            model, name_or_path, spec, model.config, postprocess=dict(spec.default_postprocess)
        )
    path = Path(str(name_or_path)).expanduser()
    if not path.is_file():
        from bratseg.zoo import resolve_model

        try:
            path = resolve_model(name_or_path)
        except BratsInputError as exc:
            raise BratsInputError(
                f"{name_or_path!r} is neither an architecture ({', '.join(ARCHITECTURES)}) nor a known model: {exc.reason}"
            ) from None
    from bratseg.evaluation import pretrained_cases

    loaded = load_checkpoint(path)
    model = loaded.model
    seen = set(loaded.provenance.get("train_cases") or []) | pretrained_cases(loaded.provenance)
    model.train()
    logger.info("fine-tuning %s (%s)", path, loaded.meta["arch"])
    return InitialModel(
        model=model,
        arch=str(loaded.meta["arch"]),
        spec=loaded.spec,
        config=loaded.config,
        init_from={"path": str(Path(path).resolve()), "sha256": str(loaded.sha256)},
        preprocess=dict(loaded.meta.get("preprocess") or {}),
        postprocess=dict(loaded.meta.get("postprocess") or loaded.spec.default_postprocess),
        card=dict(loaded.meta.get("provenance") or {}),
        pretrained_cases=sorted(seen),
    )


def preprocess_for(config: TrainConfig, init: InitialModel) -> PreprocessConfig:
    """Preprocessing of the run: the fine-tuned checkpoint's, else from the config.

    ``config.bias_correction``, when set, overrides the checkpoint's. The pad multiple is a
    multiple of the network's size divisor; the foreground channel follows the network's input
    channel count.
    """
    from bratseg.io import MODALITIES
    from bratseg.loaded_model import in_channels, size_divisor

    if init.preprocess:
        pp = PreprocessConfig.from_dict(init.preprocess)
        if (
            config.target_spacing is not None
            and (config.target_spacing or None) != pp.target_spacing
        ):
            logger.warning(
                "keeping the checkpoint's target spacing %s (asked %s)",
                pp.target_spacing,
                config.target_spacing,
            )
    else:
        ts = (
            DEFAULT_TARGET_SPACING
            if config.target_spacing is None
            else (float(config.target_spacing) or None)
        )
        pp = PreprocessConfig(target_spacing=ts)
    if config.bias_correction is not None:
        pp.bias_correction = bool(config.bias_correction)
    pp.foreground_channel = in_channels(init) == len(MODALITIES) + 1
    pp.pad_multiple = effective_pad_multiple(pp, size_divisor(init))
    return pp


def round_patch(patch: list[int] | tuple[int, ...], divisor: int) -> tuple[int, int, int]:
    """Patch rounded up to multiples of ``divisor`` (warns when changed)."""
    if len(patch) != 3 or any(int(p) <= 0 for p in patch):
        raise BratsInputError(f"patch must be three positive sizes, got {list(patch)}")
    out = tuple(int(math.ceil(int(p) / divisor) * divisor) for p in patch)
    if out != tuple(int(p) for p in patch):
        logger.warning(
            "patch %s rounded up to %s (multiples of %d)", list(patch), list(out), divisor
        )
    return out  # type: ignore[return-value]


def fit_fixed_input(init: InitialModel, patch: tuple[int, int, int]) -> tuple[int, int, int]:
    """Reconcile the patch with a network trained on one fixed input size (segresnet-vae).

    A fresh network is rebuilt for the patch (``init`` is updated in place); a fine-tuned one
    imposes its size.

    Args:
        init: The network to train.
        patch: Requested training patch (X, Y, Z).

    Returns:
        The patch to train on.
    """
    fixed = getattr(init.config, "input_image_size", None)
    if fixed is None or tuple(fixed) == tuple(patch):
        return patch
    if init.init_from is not None:
        logger.warning(
            "%s trains on %s patches only; using that patch size", init.arch, list(fixed)
        )
        return tuple(int(p) for p in fixed)  # type: ignore[return-value]
    from bratseg.models import build_model

    init.config = init.config.replace(input_image_size=tuple(int(p) for p in patch))
    init.model = build_model(init.arch, init.config)
    return patch


def default_num_workers(device: torch.device, world_size: int = 1) -> int:
    """DataLoader workers: none on a small CPU machine, a few otherwise.

    On 2-4 cores an augmented patch costs ~0.17 s against ~3-10 s of compute per step
    (bench/bench_train.py): a worker process only steals cores from the convolutions.
    """
    cpus = os.cpu_count() or 1
    if device.type == "cuda":
        return max(1, min(8, cpus // max(1, world_size) - 1))
    return 0 if cpus <= 4 else 2


def _worker_init(_: int) -> None:
    """Workers ignore Ctrl-C / SIGTERM: the main process stops the run cleanly."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


def make_loader(
    dataset: Any, sampler: Any, batch_size: int, num_workers: int, device: torch.device
) -> DataLoader:
    """DataLoader over :class:`PatchDataset` with persistent workers."""
    return DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=sampler,
        num_workers=num_workers,
        persistent_workers=num_workers > 0,
        pin_memory=device.type == "cuda",
        worker_init_fn=_worker_init if num_workers > 0 else None,
        prefetch_factor=2 if num_workers > 0 else None,
        drop_last=False,
        # own generator: creating a loader iterator must not consume the global torch RNG
        # (dropout, VAE sampling), or a resumed run would diverge from the uninterrupted one
        generator=torch.Generator().manual_seed(0),
    )


def enable_gradient_checkpointing(model: torch.nn.Module) -> bool:
    """Turn on activation checkpointing of the network's blocks; returns whether any block was found.

    See :func:`bratseg.models.checkpointing.enable_activation_checkpointing`.
    """
    from bratseg.models.checkpointing import enable_activation_checkpointing

    if enable_activation_checkpointing(model):
        return True
    logger.warning(
        "%s has no blocks to checkpoint; training without gradient checkpointing",
        type(model).__name__,
    )
    return False


def default_cache_dir() -> Path:
    """``crops`` in the user cache folder (:func:`bratseg.zoo.bratseg_cache`; shared by runs and folds)."""
    from bratseg.zoo import bratseg_cache

    return bratseg_cache() / "crops"


def training_precision(device: torch.device, recipe: Recipe) -> torch.dtype | None:
    """The autocast dtype of mixed-precision training on ``device``: bfloat16 on a GPU that has
    it (no loss scaling), else float16 with a gradient scaler; bfloat16 on a CPU that computes it
    natively (about 2.4x faster steps of the small nnunet, 64^3 patches, one thread); ``None``
    (float32) elsewhere, or when the recipe's ``amp`` is off."""
    from bratseg.inference.device import mixed_precision_dtype

    if not recipe.amp:
        return None
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return mixed_precision_dtype(device)
