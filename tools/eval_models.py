"""Score bundled (or any) models and their ensemble on the same held-out validation cases.

Every model is predicted at full resolution through the real pipeline (CPU, the model's default
postprocessing, no TTA) on the validation cases recorded in the *first* model's checkpoint; the
script refuses models that trained on any of those cases, so every number is held out. Then the
ensemble of all given models (mean of region probabilities, the first model's postprocessing) is
scored the same way. Prints a Markdown table: Dice and HD95 (voxels, as the official tool) per
region, mean and std over the cases, CPU seconds per case (load + predict).

Run: ``.venv/bin/python tools/eval_models.py [--models A B ...] [--threads 2] [--tta 8] [--json]``
(default: every bundled model). ``--tta 8`` averages 8 flips.

Cross-validation: ``--cv RUN[,RUN] RUN[,RUN] ...`` gives one entry per fold (run folders or
checkpoints; several per fold are ensembled); each fold is scored on its own held-out cases and
the rows are pooled (bratseg.evaluation.crossval). ``--island-fractions 0 0.05 0.1 ...`` also scores each
``min_island_fraction`` on the same predictions (to choose it by cross-validation).
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = (ROOT / ".." / "shared" / "data" / "brats2018").resolve()


def _summary(name: str, rows: list[dict]) -> dict:
    from bratseg.evaluation import region_mean_std

    out = {
        "name": name,
        "cases": [r["case"] for r in rows],
        "seconds": round(statistics.median(r["seconds"] for r in rows), 2),
    }
    for key in ("dice", "hd95"):
        out[key], out[key + "_std"] = region_mean_std(rows, key)
    return out


def main(argv: list[str] | None = None) -> int:
    """Parse the arguments, score each model and the ensemble, print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--models", nargs="+", help="zoo names or checkpoint files (default: all bundled)"
    )
    parser.add_argument(
        "--data", nargs="+", default=[str(DEFAULT_DATA)], help="folders with the cases"
    )
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--tta", type=int, choices=(0, 8), default=0, help="8: average 8 flips")
    parser.add_argument(
        "--no-ensemble", action="store_true", help="score the models one by one only"
    )
    parser.add_argument("--ensemble-only", action="store_true", help="score only the ensemble")
    parser.add_argument("--json", action="store_true", help="print the summaries as JSON")
    parser.add_argument(
        "--cv", nargs="+", metavar="RUN[,RUN]", help="cross-validation: one entry per fold"
    )
    parser.add_argument(
        "--checkpoint", choices=("best", "last"), default="best", help="for --cv run folders"
    )
    parser.add_argument(
        "--island-fractions",
        nargs="+",
        type=float,
        metavar="F",
        help="also score these min_island_fraction values",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("bratseg.evaluation").setLevel(logging.INFO)  # one line per case

    from bratseg.checkpoint import load_checkpoint
    from bratseg.errors import BratsInputError
    from bratseg.evaluation import check_held_out, score_cases, validation_case_dirs
    from bratseg.zoo import bundled_models, resolve_model

    variants = {f"islands<{f:g}": {"min_island_fraction": f} for f in args.island_fractions or []}
    if args.cv:
        return _cross_validate(args, variants)
    names = args.models or [entry.name for entry in bundled_models()]
    try:
        loaded = [load_checkpoint(resolve_model(n)) for n in names]
        case_dirs, _ = validation_case_dirs(loaded[0], args.data)
        check_held_out(loaded, [d.name for d in case_dirs])
    except BratsInputError as exc:
        print(f"eval_models: error: {exc}", file=sys.stderr)
        return 2

    groups = (
        [] if args.ensemble_only and len(loaded) > 1 else [(n, [m]) for n, m in zip(names, loaded)]
    )
    if len(loaded) > 1 and not args.no_ensemble:
        groups.append(("ensemble of " + " + ".join(names), loaded))
    summaries = []
    for label, models in groups:
        scored = score_cases(
            models, case_dirs, args.threads, args.tta, variants={"": {}, **variants}
        )
        summaries += [_summary(f"{label} {name}".strip(), rows) for name, rows in scored.items()]
    if not args.json:
        print(
            f"{len(case_dirs)} validation cases: {', '.join(sorted(d.name for d in case_dirs))}; "
            f"{'8-flip TTA' if args.tta else 'no TTA'}, {args.threads} CPU thread(s)\n"
        )
    _print_table(summaries, args.json)
    return 0


def _print_table(summaries: list[dict], as_json: bool) -> None:
    from bratseg.labels import REGIONS

    if as_json:
        print(json.dumps(summaries, indent=1))
        return
    print("| model | Dice WT / TC / ET (std) | mean | HD95 WT / TC / ET (vox) | CPU s/case |")
    print("|---|---|---|---|---|")
    for s in summaries:
        dice = " / ".join(f"{s['dice'][r]:.3f}" for r in REGIONS)
        std = "/".join(f"{s['dice_std'][r]:.2f}" for r in REGIONS)
        hd = " / ".join(f"{s['hd95'][r]:.1f}" for r in REGIONS)
        mean = statistics.fmean(s["dice"].values())
        print(f"| {s['name']} | {dice} ({std}) | {mean:.3f} | {hd} | {s['seconds']:.1f} |")


def _cross_validate(args: argparse.Namespace, variants: dict) -> int:
    """Score each fold on its held-out cases, pool the rows, print per fold and pooled."""
    from bratseg.errors import BratsInputError
    from bratseg.evaluation.crossval import cross_validate

    folds = [entry.split(",") for entry in args.cv]
    try:
        rows, info = cross_validate(
            folds,
            data=args.data,
            threads=args.threads,
            tta=args.tta,
            variants=variants,
            checkpoint=args.checkpoint,
        )
    except BratsInputError as exc:
        print(f"eval_models: error: {exc}", file=sys.stderr)
        return 2
    if not args.json:
        print(
            f"{len(folds)} fold(s), {len(rows[''])} held-out cases pooled; "
            f"{'8-flip TTA' if args.tta else 'no TTA'}, {args.threads} CPU thread(s)\n"
        )
    per_fold = [
        _summary(f"fold {k}: {', '.join(f['val_cases'])}", [r for r in rows[""] if r["fold"] == k])
        for k, f in enumerate(info)
    ]
    pooled = [
        _summary(f"pooled{' ' + name if name else ''}", variant_rows)
        for name, variant_rows in rows.items()
    ]
    _print_table(per_fold + pooled, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
