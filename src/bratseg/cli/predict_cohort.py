"""``predict DATASET_DIR -o OUT_DIR``: the dataset path of ``predict``, sharded and resumable.

Under ``torchrun`` (or with ``RANK``/``WORLD_SIZE`` set) every process segments its share of the
case folders; the rules (sharding, records, resume, ``cases.jsonl``, ``summary.csv``) live in
:mod:`bratseg.review.cohort`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bratseg.cli._common import warn
from bratseg.cli.predict import (
    _input_check,
    _predict_one,
    _summary,
    _write_outputs,
    allows_missing,
)
from bratseg.review.cohort_shard import Shard

if TYPE_CHECKING:
    from bratseg.predictor import Predictor


def predict_dataset(
    folders: list[Path],
    out: Path,
    outputs: dict[Path, list[Path]],
    predictor: Predictor,
    args: argparse.Namespace,
    shard: Shard,
) -> int:
    """Segment this process's share of the dataset (:mod:`bratseg.review.cohort`): verified
    cases are skipped, a line per case goes to OUT/cases.jsonl, OUT/summary.csv at the end."""
    from tqdm import tqdm

    from bratseg.io import load_case
    from bratseg.review.cohort import run_cohort

    mine = len(shard.cases(folders))
    bar = tqdm(desc="predict", file=sys.stderr, unit="case", disable=bool(args.quiet))

    def predict_case(folder: Path) -> tuple[Any, Any, list[Path]]:
        case = load_case(
            folder, load_seg=False, align=args.align, allow_missing=allows_missing(args)
        )
        _input_check(case, args)
        pred = _predict_one(case, predictor, None if args.quiet else bar, step_bar=False)
        paths = outputs[folder]
        # existing files here are this command's own (a record exists): redo replaces them
        _write_outputs(case, pred, paths[0], paths[1] if len(paths) > 1 else None, True)
        bar.write(_summary(case, paths[0], pred), file=sys.stdout)
        return case, pred, paths

    def report(line: Any) -> None:
        bar.update(1)
        if line["status"] != "done":
            bar.write(f"napari-brats: error: {line['error']}", file=sys.stderr)

    options = predictor.inference_options()
    settings = {
        "models": [f"{m.arch}:{m.sha256}" for m in predictor.models],
        "postprocess": predictor.postprocess_config().to_dict(),
        "tta": options.tta,
        "bias_correction": options.bias_correction,
        "overlap": options.overlap,
        "window": list(options.window) if options.window else None,
        "labels": options.convention,
        "align": args.align,
        "probabilities": len(next(iter(outputs.values()))) > 1,
        "input_check": not getattr(args, "no_input_check", False),
    }
    try:
        done, failed, missing = run_cohort(
            folders, out, predict_case, settings, shard, overwrite=args.overwrite, report=report
        )
    finally:
        bar.close()
    where = f"rank {shard.rank}/{shard.world_size}: " if shard.world_size > 1 else ""
    print(
        f"{where}{done} case(s) predicted, {mine - done - failed} already done, {failed} failed; "
        f"{len(folders) - len(missing)} of {len(folders)} done in all ({out / 'summary.csv'})",
        file=sys.stderr,
    )
    if failed:
        warn(f"{failed} of {mine} case(s) failed; the others were written")
        return 2
    return 0
