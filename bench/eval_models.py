"""Score bundled (or any) models and their ensemble on the same held-out validation cases.

Every model is predicted at full resolution through the real pipeline (CPU, the model's default
postprocessing, no TTA) on the validation cases recorded in the *first* model's checkpoint; the
script refuses models that trained on any of those cases, so every number is held out. Then the
ensemble of all given models (mean of region probabilities, the first model's postprocessing) is
scored the same way. Prints a Markdown table: Dice and HD95 (voxels, as the official tool) per
region, mean and std over the cases, CPU seconds per case (load + predict).

Run: ``.venv/bin/python bench/eval_models.py [--models A B ...] [--threads 2] [--tta 8] [--json]``
(default: every bundled model). ``--tta 8`` averages 8 flips.
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
    from bratseg.modelcard import region_mean_std

    out = {"name": name, "cases": [r["case"] for r in rows],
           "seconds": round(statistics.median(r["seconds"] for r in rows), 2)}
    for key in ("dice", "hd95"):
        out[key], out[key + "_std"] = region_mean_std(rows, key)
    return out


def main(argv: list[str] | None = None) -> int:
    """Parse the arguments, score each model and the ensemble, print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", help="zoo names or checkpoint files (default: all bundled)")
    parser.add_argument("--data", nargs="+", default=[str(DEFAULT_DATA)], help="folders with the cases")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--tta", type=int, choices=(0, 8), default=0, help="8: average 8 flips")
    parser.add_argument("--no-ensemble", action="store_true", help="score the models one by one only")
    parser.add_argument("--ensemble-only", action="store_true", help="score only the ensemble")
    parser.add_argument("--json", action="store_true", help="print the summaries as JSON")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")

    from bratseg.checkpoint import load_checkpoint
    from bratseg.errors import BratsInputError
    from bratseg.labels import REGIONS
    from bratseg.modelcard import evaluate_cases, validation_case_dirs
    from bratseg.zoo import bundled_models, resolve_model

    names = args.models or [entry.name for entry in bundled_models()]
    try:
        loaded = [load_checkpoint(resolve_model(n)) for n in names]
        case_dirs, _ = validation_case_dirs(loaded[0], args.data)
    except BratsInputError as exc:
        print(f"eval_models: error: {exc}", file=sys.stderr)
        return 2
    val = {d.name for d in case_dirs}
    for name, model in zip(names, loaded):
        seen = val & set(model.provenance.get("train_cases") or [])
        if seen:
            print(f"eval_models: error: {name} trained on {', '.join(sorted(seen))}: not held out",
                  file=sys.stderr)
            return 2

    summaries = [] if args.ensemble_only and len(loaded) > 1 else [
        _summary(n, evaluate_cases(m, case_dirs, args.threads, args.tta)) for n, m in zip(names, loaded)
    ]
    if len(loaded) > 1 and not args.no_ensemble:
        summaries.append(_summary("ensemble of " + " + ".join(names),
                                  evaluate_cases(loaded, case_dirs, args.threads, args.tta)))
    if args.json:
        print(json.dumps(summaries, indent=1))
        return 0
    print(f"{len(case_dirs)} validation cases: {', '.join(sorted(val))}; "
          f"{'8-flip TTA' if args.tta else 'no TTA'}, {args.threads} CPU thread(s)\n")
    print("| model | Dice WT / TC / ET (std) | HD95 WT / TC / ET (vox) | CPU s/case |")
    print("|---|---|---|---|")
    for s in summaries:
        dice = " / ".join(f"{s['dice'][r]:.3f}" for r in REGIONS)
        std = "/".join(f"{s['dice_std'][r]:.2f}" for r in REGIONS)
        hd = " / ".join(f"{s['hd95'][r]:.1f}" for r in REGIONS)
        print(f"| {s['name']} | {dice} ({std}) | {hd} | {s['seconds']:.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
