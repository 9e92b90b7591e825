"""Choose an ensemble's postprocessing on the cross-validation protocol, nested, from cached predictions.

1. **Predict once.** Each fold model (``--models``, one per fold of the split, in fold order)
   predicts the cases its fold holds out at full resolution through the real pipeline (CPU,
   weights rounded to fp16 as shipped, no TTA). Its region probabilities and the reference
   regions are cropped to the box holding every voxel with p_WT >= the grid's lowest WT
   threshold and every reference tumour voxel, and cached in ``--cache`` (``CASE.npz``). Dice
   computed on the crop equals Dice on the full volume for every variant of the grid: nothing
   any variant labels, and nothing of the reference, lies outside it.
2. **Grid.** Every combination of ``--grid`` (JSON: postprocessing field -> values) over the
   first model's postprocessing is applied to every cached case (:func:`bratseg.postprocess.postprocess`)
   and scored (Dice per region; the ET false positives: reference ET empty, prediction not).
3. **Nested choice.** For each fold, the variant with the best mean Dice (WT, TC, ET averaged)
   on the other folds' cases is scored on that fold's cases: the pooled result is the honest
   estimate of the choice procedure. The variant best on all cases is the one to ship; the gap
   between the two says how much the choice overfits.

Prints the per-fold choices, the nested estimate (pooled and per stratum) and the best variants
on all cases; ``--out FILE`` keeps everything as JSON. HD95 of the chosen variant comes from
``tools/eval_protocol.py --variants``.

Run: ``.venv/bin/python tools/tune_postprocess.py --split-file docs/brats44-5fold.json
--data ../shared/data/brats2018 --data ../extra-data --models nnunet-small-cv44-f0 ...
nnunet-small-cv44-f4 --cache ../evals/cv44-cache --out ../evals/cv44-tune.json``
"""

from __future__ import annotations

import argparse
import itertools
import json
import logging
import statistics
import sys
from pathlib import Path
from typing import Any

import numpy as np

#: The grid searched by default: thresholds around the fold models' validation optimum, the
#: small-island rule against distant FLAIR hyperintensities, and the case-level "no enhancement"
#: decision against ET invented on non-enhancing tumours.
DEFAULT_GRID: dict[str, list[Any]] = {
    "wt_threshold": [0.5, 0.6, 0.7, 0.8],
    "tc_threshold": [0.5, 0.6, 0.7],
    "et_threshold": [0.5, 0.6, 0.7],
    "min_island_fraction": [0.0, 0.1, 0.3],
    "et_case_min_prob": [0.0, 0.6, 0.7, 0.8],
}
MARGIN = 2  # voxels around the crop box
logger = logging.getLogger("tune_postprocess")


def main(argv: list[str] | None = None) -> int:
    """Parse the arguments, predict (or reuse the cache), search, print the choice."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--split-file", required=True, help="the protocol's split")
    parser.add_argument("--data", action="append", required=True, help="case folders; repeatable")
    parser.add_argument(
        "--models",
        nargs="+",
        required=True,
        help="one fold model per fold, in fold order ('A,B' ensembles the fold model A with B, "
        "e.g. a model trained on other cases only; '-' skips a fold not trained yet)",
    )
    parser.add_argument("--cache", required=True, type=Path, help="folder for the cached crops")
    parser.add_argument("--grid", default=None, help="JSON: postprocessing field -> values")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, help="write choices, estimates and rows as JSON")
    parser.add_argument("--top", type=int, default=8, help="best variants to print")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")

    from bratseg.errors import BratsInputError
    from bratseg.training.splits import read_split_file

    try:
        split = read_split_file(args.split_file)
        grid = json.loads(args.grid) if args.grid else DEFAULT_GRID
        if len(args.models) != split.n_folds:
            raise BratsInputError(f"--models needs {split.n_folds} fold models, one per fold")
        base = _cache_predictions(args, split, min(grid.get("wt_threshold", [0.3])))
    except (BratsInputError, ValueError) as exc:
        print(f"tune_postprocess: error: {' '.join(str(exc).split())}", file=sys.stderr)
        return 2
    variants = [dict(zip(grid, values)) for values in itertools.product(*grid.values())]
    cases = sorted(c for k, m in enumerate(args.models) if m != "-" for c in split.folds[k])
    scores = _score_grid(args.cache, cases, base, variants)
    report = _nested(split, cases, variants, scores)
    _print(report, variants, scores, cases, args.top)
    if args.out:
        rows = {
            json.dumps(v, sort_keys=True): {c: scores[i][c] for c in cases}
            for i, v in enumerate(variants)
        }
        args.out.write_text(json.dumps({**report, "base": base, "rows": rows}, indent=1))
    return 0


def _cache_predictions(args: argparse.Namespace, split: Any, min_wt: float) -> dict[str, Any]:
    """Predict every held-out case with its fold model unless cached; the base postprocessing."""
    from bratseg.checkpoint import load_checkpoint
    from bratseg.components import bounding_box
    from bratseg.evaluation import check_held_out, round_weights_to_half
    from bratseg.evaluation.scoring import predict_labelled_cases
    from bratseg.inference import InferenceOptions
    from bratseg.labels import detect_convention, regions_to_stack
    from bratseg.training.data import discover_cases
    from bratseg.zoo import ensemble_postprocess, resolve_model

    args.cache.mkdir(parents=True, exist_ok=True)
    refs = {r.case_id: r.folder for r in discover_cases(args.data)}
    base = None
    for k, name in enumerate(args.models):
        if name == "-":
            continue
        members = [load_checkpoint(resolve_model(n)) for n in name.split(",")]
        held_out = sorted(split.folds[k])
        check_held_out(members, held_out)
        if base is None:
            base = ensemble_postprocess(members).to_dict()
        todo = [c for c in held_out if not (args.cache / f"{c}.npz").is_file()]
        if not todo:
            continue
        for member in members:
            round_weights_to_half(member.model)
        seen = set(members[0].provenance.get("pretrained_cases") or [])
        for member in members[1:]:
            seen |= set(member.provenance.get("train_cases") or [])
        options = InferenceOptions(device="cpu", threads=args.threads)
        folders = [Path(refs[case_id]) for case_id in todo]
        for case_id, done in zip(todo, predict_labelled_cases(members, folders, options)):
            pred, ref = done.prediction, done.reference.data
            ref_stack = regions_to_stack(ref, detect_convention(ref, source=str(done.folder)))
            keep = (pred.region_probs[0] >= min_wt) | ref_stack[0]
            box = bounding_box(keep, pad=MARGIN) or tuple(slice(0, n) for n in keep.shape)
            np.savez_compressed(
                args.cache / f"{case_id}.npz",
                probs=pred.region_probs[(slice(None), *box)].astype(np.float16),
                ref=ref_stack[(slice(None), *box)],
                box=np.array([[b.start, b.stop] for b in box]),
                fold=k,
                model=name,
                seen_in_pretraining=case_id in seen,
            )
            logger.info("fold %d: %s cached", k, case_id)
    return base or {}


def _score_grid(
    cache: Path, cases: list[str], base: dict[str, Any], variants: list[dict[str, Any]]
) -> list[dict[str, dict[str, Any]]]:
    """Per variant, per case: Dice (WT, TC, ET), ET false positive, fold, seen_in_pretraining."""
    from bratseg.labels import regions_to_stack
    from bratseg.metrics import dice_regions
    from bratseg.postprocess import PostprocessConfig, postprocess

    configs = [PostprocessConfig.from_dict({**base, **v}) for v in variants]
    out: list[dict[str, dict[str, Any]]] = [{} for _ in variants]
    for n, case_id in enumerate(cases):
        with np.load(cache / f"{case_id}.npz") as z:
            probs, ref = z["probs"].astype(np.float32), z["ref"]
            fold, seen = int(z["fold"]), bool(z["seen_in_pretraining"])
        for i, config in enumerate(configs):
            pred = regions_to_stack(postprocess(probs, config), "2021")
            d = dice_regions(pred, ref)
            out[i][case_id] = {
                "dice": [round(float(x), 4) for x in d],
                "et_fp": bool(not ref[2].any() and pred[2].any()),
                "fold": fold,
                "seen_in_pretraining": seen,
            }
        logger.info("grid: %d/%d cases", n + 1, len(cases))
    return out


def _mean_dice(rows: list[dict[str, Any]]) -> list[float]:
    return [round(statistics.fmean(r["dice"][j] for r in rows), 4) for j in range(3)]


def _objective(rows: list[dict[str, Any]]) -> float:
    return statistics.fmean(_mean_dice(rows))


def _nested(
    split: Any, cases: list[str], variants: list[dict[str, Any]], scores: list[dict[str, Any]]
) -> dict[str, Any]:
    """The per-fold choices and the nested estimate, pooled and per group."""
    from bratseg.training.splits import NON_ENHANCING_ET_ML

    chosen_rows: list[dict[str, Any]] = []
    choices = []
    for k, fold in enumerate(split.folds):
        if not set(fold) & set(cases):
            continue
        inner = [c for c in cases if c not in fold]
        best = max(range(len(variants)), key=lambda i: _objective([scores[i][c] for c in inner]))
        rows = [scores[best][c] for c in sorted(fold)]
        chosen_rows += [{**r, "case": c} for r, c in zip(rows, sorted(fold))]
        choices.append({"fold": k, "variant": variants[best], "dice": _mean_dice(rows)})
    groups = {
        "pooled": chosen_rows,
        "never seen (initial weights included)": [
            r for r in chosen_rows if not r["seen_in_pretraining"]
        ],
        f"ET < {NON_ENHANCING_ET_ML:g} mL": [
            r for r in chosen_rows if split.cases[r["case"]]["et_ml"] < NON_ENHANCING_ET_ML
        ],
        f"ET >= {NON_ENHANCING_ET_ML:g} mL": [
            r for r in chosen_rows if split.cases[r["case"]]["et_ml"] >= NON_ENHANCING_ET_ML
        ],
        **{
            stratum: [r for r in chosen_rows if split.cases[r["case"]]["stratum"] == stratum]
            for stratum in ("low-et", "enhancing")
        },
    }
    estimate = {
        name: {
            "n": len(rows),
            "dice": _mean_dice(rows) if rows else None,
            "et_fp": sum(r["et_fp"] for r in rows),
        }
        for name, rows in groups.items()
    }
    return {"choices": choices, "nested_estimate": estimate}


def _print(
    report: dict[str, Any],
    variants: list[dict[str, Any]],
    scores: list[dict[str, Any]],
    cases: list[str],
    top: int,
) -> None:
    print("Nested choice (each fold's variant chosen on the other folds):")
    for c in report["choices"]:
        print(f"  fold {c['fold']}: {c['variant']} -> Dice WT/TC/ET {c['dice']}")
    print("Nested estimate:")
    for name, g in report["nested_estimate"].items():
        print(f"  {name} (n={g['n']}): Dice WT/TC/ET {g['dice']}, ET false positives {g['et_fp']}")
    ranked = sorted(range(len(variants)), key=lambda i: -_objective([scores[i][c] for c in cases]))
    print(f"Best {top} of {len(variants)} variants on all {len(cases)} cases (in-sample):")
    for i in ranked[:top]:
        rows = [scores[i][c] for c in cases]
        print(
            f"  {variants[i]}: Dice WT/TC/ET {_mean_dice(rows)}, "
            f"ET false positives {sum(r['et_fp'] for r in rows)}"
        )


if __name__ == "__main__":
    sys.exit(main())
