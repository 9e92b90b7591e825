"""``napari-brats train``: train or fine-tune a segmentation network on labelled case folders.

Also runs data-parallel: ``torchrun --nproc_per_node N -m bratseg.cli.main train ...``.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from bratseg.errors import BratsInputError
from bratseg.io.align import ALIGN_MODES

EPILOG = """examples:
  napari-brats train --data ../shared/data/brats2018 --model segresnet-vae --preset small \\
      --time-budget 90 --out runs/x
  napari-brats train --out runs/x --resume            # continue exactly where it stopped
  napari-brats train --data corrected/ --model my-model --epochs 5 --out runs/ft   # fine-tune
  touch runs/x/STOP                                    # stop cleanly, keep a checkpoint
  torchrun --nproc_per_node 2 -m bratseg.cli.main train --data DIR --model nnunet --out runs/ddp
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``train`` command."""
    p = subparsers.add_parser(
        "train",
        help="train or fine-tune a network on labelled case folders",
        description="Train an architecture from scratch (its paper's recipe) or fine-tune a "
        "checkpoint on folders of labelled BraTS cases. Writes progress.jsonl, last.pt, best.pt "
        "(best validation mean Dice) and a resume state to the run folder; stops cleanly on "
        "Ctrl-C, SIGTERM or a file named STOP in the run folder.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--data",
        action="append",
        metavar="DIR",
        default=[],
        help="folder of case folders (or a case folder) with *_seg label maps; repeatable",
    )
    p.add_argument(
        "--model",
        default="segresnet-vae",
        help="architecture name (fresh weights) or checkpoint path / model name (fine-tune); "
        "default segresnet-vae",
    )
    p.add_argument(
        "--preset", default="small", help="size preset of a fresh architecture (paper, small, tiny)"
    )
    budget = p.add_mutually_exclusive_group()
    budget.add_argument("--epochs", type=int, help="number of epochs (default 50)")
    budget.add_argument(
        "--time-budget", type=float, metavar="MINUTES", help="train for this many minutes"
    )
    p.add_argument("--out", required=True, metavar="RUN_DIR", help="run folder")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N, mps")
    p.add_argument("--resume", action="store_true", help="continue the run in RUN_DIR exactly")
    p.add_argument(
        "--val-fraction", type=float, default=0.2, help="fraction of cases for validation"
    )
    p.add_argument("--val-cases", nargs="+", metavar="CASE", help="explicit validation case ids")
    p.add_argument("--fold", type=int, help="k-fold index (with --folds)")
    p.add_argument("--folds", type=int, default=5, help="number of folds (default 5)")
    p.add_argument(
        "--split-file",
        metavar="JSON",
        help="fixed cross-validation split (napari-brats cv-split); with --fold K, hold out "
        "fold K and train on every other case of the split",
    )
    p.add_argument(
        "--align",
        choices=ALIGN_MODES,
        default="none",
        help="series on other grids: resample into the T1Gd grid, or register to T1Gd first",
    )
    p.add_argument(
        "--seg-on-image-grid",
        nargs="+",
        metavar="CASE",
        help="take these cases' label maps on their images' grid when only the origin differs "
        "(same voxel grid; logged as a warning)",
    )
    p.add_argument(
        "--patch", type=int, nargs=3, metavar=("X", "Y", "Z"), help="patch size in voxels"
    )
    p.add_argument(
        "--target-spacing",
        type=float,
        metavar="MM",
        help="training resolution in mm (default 2.0, or the fine-tuned checkpoint's; 0 = source grid)",
    )
    p.add_argument(
        "--bias-correction",
        choices=("on", "off"),
        help="N4 bias-field correction of each series before normalising, in training and in "
        "every later prediction with the model (default: the fine-tuned checkpoint's, else off)",
    )
    p.add_argument("--batch-size", type=int, help="patches per step (default: the recipe's, 1)")
    p.add_argument("--lr", type=float, help="peak learning rate (default: the recipe's)")
    p.add_argument("--steps-per-epoch", type=int, help="optimiser steps between validations")
    p.add_argument("--num-workers", type=int, help="data-loading worker processes")
    p.add_argument(
        "--cache-dir", help="preprocessed crop cache (default $BRATSEG_HOME/cache/crops)"
    )
    p.add_argument("--seed", type=int, default=0, help="seed of split, weights and augmentation")
    p.add_argument(
        "--recipe",
        metavar="JSON",
        help='recipe overrides, e.g. \'{"schedule": "cosine", "augment": {"affine_prob": 0.3}}\'',
    )
    p.add_argument("--max-val-cases", type=int, help="validate on at most this many cases")
    p.add_argument(
        "--oversample",
        action="append",
        metavar="NAME=K",
        help="draw training case NAME, or every training case of the split file's stratum NAME "
        "(e.g. low-et=3), K times as often; repeatable",
    )
    p.add_argument("--max-steps", type=int, help="stop (resumable) after this many steps in total")
    p.add_argument(
        "--grad-checkpoint",
        action="store_true",
        help="recompute block activations in the backward pass (less memory, ~30%% more compute)",
    )
    p.add_argument("--json", action="store_true", help="print one JSON event per line on stdout")
    p.set_defaults(func=run)


def config_from_args(args: argparse.Namespace) -> Any:
    """The :class:`TrainConfig` described by the command line."""
    from bratseg.training import TrainConfig
    from bratseg.training.recipes import check_overrides

    if not args.data and not args.resume:
        raise BratsInputError("give at least one --data folder (or --resume a run)")
    recipe = None
    if args.recipe:
        try:
            recipe = json.loads(args.recipe)
        except ValueError as exc:
            raise BratsInputError(f"--recipe is not valid JSON ({exc})") from None
        if not isinstance(recipe, dict):
            raise BratsInputError("--recipe must be a JSON object")
        check_overrides(recipe)
    missing = [d for d in args.data if not Path(d).exists()]
    if missing:
        raise BratsInputError("--data folder not found", missing[0])
    return TrainConfig(
        data=list(args.data),
        out=args.out,
        model=args.model,
        preset=args.preset,
        epochs=args.epochs,
        time_budget_min=args.time_budget,
        steps_per_epoch=args.steps_per_epoch,
        batch_size=args.batch_size,
        lr=args.lr,
        patch=list(args.patch) if args.patch else None,
        target_spacing=args.target_spacing,
        bias_correction=None if args.bias_correction is None else args.bias_correction == "on",
        val_fraction=args.val_fraction,
        val_cases=args.val_cases,
        fold=args.fold,
        folds=args.folds,
        split_file=args.split_file,
        seg_on_image_grid=args.seg_on_image_grid,
        oversample=args.oversample,
        align=args.align,
        seed=args.seed,
        device=args.device,
        num_workers=args.num_workers,
        cache_dir=args.cache_dir,
        resume=args.resume,
        grad_checkpoint=args.grad_checkpoint,
        recipe=recipe,
        max_val_cases=args.max_val_cases,
        stop_after_steps=args.max_steps,
    )


def run(args: argparse.Namespace) -> int:
    """Run the training, reporting events as JSON lines or a progress bar."""
    from bratseg.training import train_events
    from bratseg.training.events import error_event

    config = config_from_args(args)
    reporter = _JsonReporter() if args.json else _BarReporter()
    try:
        events = train_events(config)
        for event in events:
            reporter.show(event)
    except Exception as exc:
        if args.json:
            reporter.show(error_event(str(exc).strip() or type(exc).__name__))
        raise
    finally:
        reporter.close()
    return 0


class _JsonReporter:
    def show(self, event: Mapping[str, Any]) -> None:
        from bratseg.cli._common import jsonable

        sys.stdout.write(json.dumps(jsonable(event), allow_nan=False) + "\n")
        sys.stdout.flush()

    def close(self) -> None:
        pass


class _BarReporter:
    """tqdm bar over steps (or seconds of a time budget) plus one line per epoch."""

    def __init__(self) -> None:
        self.bar = None
        self.budget = None

    def show(self, event: Mapping[str, Any]) -> None:
        from tqdm import tqdm

        kind = event.get("event")
        if kind == "start":
            self.budget = event.get("time_budget_s")
            total = event["epochs"] * event["steps_per_epoch"] if event.get("epochs") else None
            tqdm.write(
                f"training {event['arch']} on {len(event['train_cases'])} case(s), validating on "
                f"{len(event['val_cases'])} ({event['split_note']}); {event['device']}, "
                f"{event.get('precision', 'float32')}; "
                f"patch {event['patch']}, {event['steps_per_epoch']} steps/epoch -> {event['run_dir']}",
                file=sys.stderr,
            )
            self.bar = tqdm(
                total=total if total else (round(self.budget) if self.budget else None),
                initial=event.get("step", 0) if total else 0,
                unit="step" if total else "s",
                dynamic_ncols=True,
                file=sys.stderr,
            )
        elif kind == "step" and self.bar is not None:
            if self.budget:
                self.bar.n = min(round(event.get("elapsed_s", 0)), self.bar.total or 0)
                self.bar.refresh()
            else:
                self.bar.update(1)
            self.bar.set_postfix(
                epoch=event["epoch"], loss=f"{event['loss']:.4f}", lr=f"{event['lr']:.2e}"
            )
        elif kind == "epoch":
            d = event.get("val_dice") or {}
            dice = " ".join(f"{k.upper()} {v:.3f}" for k, v in d.items())
            mark = " (best)" if event.get("best") else ""
            # no loss: the run was resumed right at this epoch's end, its steps ran before
            loss = "n/a" if event.get("loss") is None else f"{event['loss']:.4f}"
            tqdm.write(
                f"epoch {event['epoch']}: loss {loss}  val Dice {dice}{mark}", file=sys.stderr
            )
        elif kind == "done":
            self.close()
            print(
                f"{event['reason']}: {event['step']} steps, {event['epoch']} epochs; checkpoint {event['checkpoint']}"
            )

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
