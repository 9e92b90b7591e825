"""Benchmark: what a missing series costs (FLAIR, T2, T1 or T1Gd) with its stand-in.

``predict`` segments a case that lacks one series by copying its pair's series in its place
(FLAIR <-> T2, T1 <-> T1Gd; :data:`bratseg.io.channels.SUBSTITUTES`), with a warning, and claims
no enhancing tumour without T1Gd. This script measures the penalty: for each case it predicts
with all four series, then once with each series left out, and scores every prediction
against the reference (Dice per region, official-equivalent empty-empty = 1).

The cases default to those of ``docs/brats77-5fold.json`` that ``docs/brats44-5fold.json`` does
not hold (the 33 the shipped default ensemble never saw), every ``--every``-th of them, so the
numbers are held out for the default models.

``--fold-models M0 ... M4`` instead scores fold models of ``docs/brats77-5fold.json``: each case is
predicted by the model of the fold that holds it out (refused if that model trained on it), with
the default ensemble's postprocessing settings, so models trained with and without the stand-in
augmentation (``series_standin_prob``, modality dropout) can be compared case for case.

Run: ``.venv/bin/python bench/bench_missing_sequences.py --data ../shared/data/brats2018
--data ../extra-data [--every 3] [--model NAME ... | --fold-models M0 ... M4] [--threads 2]
[--json OUT]``
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bratseg.predictor import Predictor

ROOT = Path(__file__).resolve().parents[1]
VARIANTS = ("all four", "t1", "t1ce", "t2", "flair")


def never_seen_cases() -> list[str]:
    """Cases of the 77-case protocol that the 44-case one (the default's training) lacks."""
    new = json.loads((ROOT / "docs" / "brats77-5fold.json").read_text())["cases"]
    old = json.loads((ROOT / "docs" / "brats44-5fold.json").read_text())["cases"]
    return sorted(set(new) - set(old))


def find_folder(case_id: str, roots: list[Path]) -> Path:
    """The case's folder under one of ``roots``."""
    for root in roots:
        if (root / case_id).is_dir():
            return root / case_id
    raise SystemExit(f"{case_id}: not found under {', '.join(map(str, roots))}")


def without(folder: Path, channel: str, into: Path) -> Path:
    """A folder of links to ``folder``'s series, all but ``channel``'s (and no label map)."""
    from bratseg.io import find_case_files

    into.mkdir(parents=True)
    for key, path in find_case_files(folder, seg=False).items():
        if key != channel:
            (into / path.name).symlink_to(path.resolve())
    return into


def _predictors(
    models: list[str] | None, fold_models: list[str] | None, threads: int
) -> Callable[[str], Predictor]:
    """Case id -> the predictor scoring it: one ensemble for all, or its fold's held-out model."""
    from bratseg.evaluation import check_held_out
    from bratseg.inference import InferenceOptions
    from bratseg.predictor import Predictor
    from bratseg.training.splits import read_split_file
    from bratseg.zoo import default_postprocess_overrides

    options = InferenceOptions(threads=threads)
    if not fold_models:
        one = Predictor.from_names(models, options)
        return lambda case_id: one
    split = read_split_file(ROOT / "docs" / "brats77-5fold.json")
    fold_of = {c: k for k, fold in enumerate(split.folds) for c in fold}
    settings = default_postprocess_overrides()
    per_fold: dict[int, Predictor] = {}

    def predictor_of(case_id: str) -> Predictor:
        k = fold_of[case_id]
        if k not in per_fold:
            per_fold[k] = Predictor.from_names(
                [fold_models[k]], options, postprocess_overrides=settings
            )
            check_held_out(per_fold[k].models, split.folds[k])
        return per_fold[k]

    return predictor_of


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, action="append", required=True)
    parser.add_argument("--every", type=int, default=3, help="every n-th never-seen case")
    chosen = parser.add_mutually_exclusive_group()
    chosen.add_argument("--model", nargs="+", help="models (default: the bundled default)")
    chosen.add_argument(
        "--fold-models",
        nargs=5,
        metavar="M",
        help="one model per fold of docs/brats77-5fold.json; each case by its fold's model",
    )
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", type=Path, help="write per-case rows and the summary here")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)

    from bratseg.io import load_case
    from bratseg.metrics.regions import evaluate_labels

    cases = never_seen_cases()[:: args.every]
    predictor_of = _predictors(args.model, args.fold_models, args.threads)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for case_id in cases:
            folder = find_folder(case_id, args.data)
            reference = load_case(folder)
            for variant in VARIANTS:
                source = (
                    folder
                    if variant == "all four"
                    else without(folder, variant, Path(tmp) / f"{case_id}-{variant}")
                )
                case = load_case(source, load_seg=False, allow_missing=True)
                t0 = time.perf_counter()
                prediction = predictor_of(case_id).predict(case)
                seconds = time.perf_counter() - t0
                scores = evaluate_labels(
                    prediction.labels,
                    reference.seg,
                    spacing=case.spacing,
                    pred_convention=prediction.convention,
                    ref_convention=reference.seg_convention,
                )
                dice = {r: float(scores[r]["dice"]) for r in ("wt", "tc", "et")}
                rows.append({"case": case_id, "missing": variant, "dice": dice, "s": seconds})
                print(
                    f"{case_id:24s} {variant:9s} "
                    + " ".join(f"{r.upper()} {d:.3f}" for r, d in dice.items())
                    + f"  {seconds:.1f} s",
                    flush=True,
                )
    summary = {}
    for variant in VARIANTS:
        mine = [r["dice"] for r in rows if r["missing"] == variant]
        summary[variant] = {r: round(statistics.fmean(d[r] for d in mine), 4) for r in mine[0]}
    print(
        f"\nmean Dice over {len(cases)} cases (WT / TC / ET), and the cost of each missing series"
    )
    full = summary["all four"]
    for variant, dice in summary.items():
        cost = " / ".join(f"{dice[r] - full[r]:+.3f}" for r in dice)
        shown = " / ".join(f"{dice[r]:.3f}" for r in dice)
        print(f"  {variant:9s} {shown}   ({cost})")
    if args.json:
        args.json.write_text(
            json.dumps({"cases": cases, "rows": rows, "summary": summary}, indent=1)
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
