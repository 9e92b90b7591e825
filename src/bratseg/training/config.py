"""The training run configuration (what ``napari-brats train`` passes to the engine)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

#: Isotropic training resolution (mm) when neither the user nor an initial checkpoint says.
DEFAULT_TARGET_SPACING = 2.0
#: Epochs when neither ``epochs`` nor ``time_budget_min`` is given (Ashtari et al. 2021: 50 epochs).
DEFAULT_EPOCHS = 50
#: Fewest steps in an epoch (an epoch ends with validation and checkpoints).
MIN_STEPS_PER_EPOCH = 16


@dataclass
class TrainConfig:
    """One training run.

    Attributes:
        data: Folders of case folders (or case folders) with label maps.
        out: Run folder (progress.jsonl, last.pt, best.pt, state.pt, config.json).
        model: Architecture name (fresh weights), or a checkpoint path / zoo name (fine-tuning).
        preset: Model size preset for a fresh architecture ("paper", "small", "tiny").
        epochs: Number of epochs (default :data:`DEFAULT_EPOCHS` when no time budget).
        time_budget_min: Train until this many minutes have passed (schedule follows time).
        steps_per_epoch: Optimiser steps per epoch (default: one pass over the training
            cases, at least :data:`MIN_STEPS_PER_EPOCH`).
        batch_size: Patches per step and process (default: the recipe's).
        lr: Peak learning rate (default: the recipe's).
        patch: Patch size (x, y, z) voxels (default: :func:`bratseg.training.patches.default_patch`).
        target_spacing: Training resolution in mm; ``None`` -> the initial checkpoint's or
            :data:`DEFAULT_TARGET_SPACING`; 0 -> the source grid.
        bias_correction: N4-correct the inputs (``PreprocessConfig.bias_correction``);
            ``None`` -> the initial checkpoint's, else off. Stored in the model's preprocessing,
            so every prediction with it corrects the same way.
        val_fraction: Fraction of cases held out for validation.
        val_cases: Explicit validation case ids.
        fold, folds: K-fold split (fold index, number of folds).
        split_file: A fixed cross-validation split (:mod:`bratseg.training.splits`); with
            ``fold``, hold out that fold's cases and train on all the split's others.
        oversample: ``"NAME=K"`` entries: training case ``NAME``, or every training case of the
            split file's stratum ``NAME`` (e.g. ``"low-et=3"``), is drawn ``K`` times as often
            (:func:`bratseg.training.patches.case_repeats`).
        seg_on_image_grid: Case ids whose label map is taken on the images' grid when only its
            origin differs from theirs (explicit, with a warning; see :func:`bratseg.io.load_case`).
        align: Series on other grids: ``"none"`` (refused), ``"resample"`` or ``"register"``.
        seed: Seed of the split, weights, sampling and augmentation.
        device: "auto", "cpu", "cuda", "cuda:N", "mps".
        num_workers: DataLoader workers (default: 0 on a CPU with up to 4 cores, more with a GPU).
        cache_dir: Preprocessed-crop cache (default ``$BRATSEG_HOME/cache/crops``).
        resume: Continue the run in ``out`` from its state.pt.
        grad_checkpoint: Gradient checkpointing (when the network supports it).
        recipe: Overrides of :class:`bratseg.training.recipes.Recipe` fields (``"augment"``: a
            dict of :class:`AugmentConfig` overrides).
        max_val_cases: Validate on at most this many of the validation cases.
        stop_after_steps: Stop (like a STOP file) once this many steps are done in total.
        step_events: Emit one event per step (else only epoch/done events).
    """

    data: list[str]
    out: str
    model: str = "segresnet-vae"
    preset: str = "small"
    epochs: int | None = None
    time_budget_min: float | None = None
    steps_per_epoch: int | None = None
    batch_size: int | None = None
    lr: float | None = None
    patch: list[int] | None = None
    target_spacing: float | None = None
    bias_correction: bool | None = None
    val_fraction: float = 0.2
    val_cases: list[str] | None = None
    fold: int | None = None
    folds: int = 5
    split_file: str | None = None
    seg_on_image_grid: list[str] | None = None
    oversample: list[str] | None = None
    align: str = "none"
    seed: int = 0
    device: str = "auto"
    num_workers: int | None = None
    cache_dir: str | None = None
    resume: bool = False
    grad_checkpoint: bool = False
    recipe: dict[str, Any] | None = None
    max_val_cases: int | None = None
    stop_after_steps: int | None = None
    step_events: bool = True

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict."""
        d = asdict(self)
        d["data"] = [str(p) for p in self.data]
        d["out"] = str(self.out)
        return d

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TrainConfig:
        """Inverse of :meth:`to_dict` (strict: see :func:`bratseg.configdict.config_from_dict`)."""
        from bratseg.configdict import config_from_dict

        return config_from_dict(cls, data, "training config")
