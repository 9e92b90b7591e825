"""Bundle a finished training run as a package model with an honest model card.

Loads RUN_DIR/best.pt (or last.pt) and RUN_DIR/progress.jsonl, predicts every validation case of
the checkpoint's split at full resolution with the real pipeline (CPU, default postprocessing, no
TTA, weights rounded to fp16 as shipped), scores Dice and HD95 per region, times each case (load
+ predict), and writes WEIGHTS_DIR/NAME.pt (fp16, card in ``provenance.card``), WEIGHTS_DIR/NAME.json
(the card) and, with --default, WEIGHTS_DIR/default.txt. Prints the per-case table, the means and a
row of the bundled-models table in docs/models.md.

For a run trained on every case (``train --val-fraction 0``), give its fold runs of the same recipe
with ``--cv-fold`` (once per fold; ``A,B`` for an ensemble fold): the card then reports their pooled
held-out scores (cross-validation estimate), each case predicted by the fold that held it out.
``--postprocess KEY=VALUE`` changes the bundled model's postprocessing (and its scores).

Run: ``.venv/bin/python tools/bundle_model.py RUN_DIR --name NAME [--checkpoint best|last] [--default]
[--data DIR ...] [--threads 2] [--weights-dir DIR] [--remark TEXT] [--cv-fold RUN ...]
[--postprocess KEY=VALUE ...]``
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WEIGHTS_DIR = ROOT / "src" / "bratseg" / "weights"
DEFAULT_DATA = ROOT / ".." / "shared" / "data" / "brats2018"


def main(argv: list[str] | None = None) -> int:
    """Parse the arguments, bundle, print the report."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path, help="training run folder")
    parser.add_argument("--name", required=True, help="name of the bundled model (file stem)")
    parser.add_argument("--checkpoint", choices=("best", "last"), default="best")
    parser.add_argument(
        "--default", action="store_true", help="write default.txt naming this model"
    )
    parser.add_argument(
        "--data",
        nargs="+",
        default=[str(DEFAULT_DATA.resolve())],
        help="folder(s) holding the validation cases (default ../shared/data/brats2018)",
    )
    parser.add_argument(
        "--threads", type=int, default=2, help="CPU threads for prediction and timing"
    )
    parser.add_argument("--weights-dir", type=Path, default=WEIGHTS_DIR, help="destination folder")
    parser.add_argument("--remark", default="", help="extra remark for the card")
    parser.add_argument(
        "--cv-fold",
        action="append",
        metavar="RUN[,RUN]",
        help="fold run(s) of the same recipe for a cross-validation card; repeat per fold",
    )
    parser.add_argument(
        "--postprocess",
        action="append",
        metavar="KEY=VALUE",
        default=[],
        help="postprocessing override stored in the bundled model, e.g. min_island_fraction=0.1",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")

    from bratseg.errors import BratsInputError
    from bratseg.evaluation.bundling import bundle_run
    from bratseg.labels import REGIONS
    from bratseg.zoo.card import markdown_row

    try:
        overrides = {}
        for item in args.postprocess:
            key, sep, value = item.partition("=")
            if not sep:
                raise BratsInputError(f"--postprocess needs KEY=VALUE, got {item!r}")
            try:
                overrides[key] = json.loads(value)
            except ValueError:
                overrides[key] = value  # a plain string, e.g. mode=argmax
        folds = [item.split(",") for item in args.cv_fold] if args.cv_fold else None
        card, path = bundle_run(
            args.run_dir,
            args.name,
            args.weights_dir,
            checkpoint=args.checkpoint,
            data=args.data,
            threads=args.threads,
            default=args.default,
            remark=args.remark,
            cv_folds=folds,
            postprocess=overrides or None,
        )
    except BratsInputError as exc:
        print(f"bundle_model: error: {exc}", file=sys.stderr)
        return 2
    print(
        f"wrote {path} ({(card.file_size or 0) / 1e6:.1f} MB, sha256 {(card.sha256 or '?')[:12]}) and "
        f"{path.with_suffix('.json')}" + (" and default.txt" if args.default else "")
    )
    print(
        f"\n{card.architecture} ({card.preset}), {card.parameters:,} parameters, {card.split}, "
        f"{card.epochs} epochs / {card.steps} steps, trained {card.training_wall_time_s} s on "
        f"{card.training_device} (run: {card.run.get('done_reason')})\n"
    )
    head = " | ".join(
        [f"Dice {r.upper()}" for r in REGIONS] + [f"HD95 {r.upper()}" for r in REGIONS]
    )
    print(f"| case | {head} | s |")
    print("|---" * 8 + "|")
    for row in card.val_per_case:
        fold = f" (fold {row['fold']})" if "fold" in row else ""
        cells = [f"{row['dice'][r]:.3f}" for r in REGIONS] + [
            f"{row['hd95'][r]:.1f}" for r in REGIONS
        ]
        print(f"| {row['case']}{fold} | " + " | ".join(cells) + f" | {row['seconds']:.1f} |")
    cells = [f"{card.val_dice[r]:.3f} ± {card.val_dice_std[r]:.3f}" for r in REGIONS]
    cells += [f"{card.val_hd95[r]:.1f}" for r in REGIONS]
    print("| **mean** | " + " | ".join(cells) + f" | {card.cpu_seconds_per_case:.1f} |")
    tr = card.val_dice_training_resolution or {}
    if tr:
        print(
            "\ntrainer's validation Dice (training resolution): "
            + ", ".join(f"{r.upper()} {float(tr[r]):.3f}" for r in REGIONS if r in tr)
        )
    print(
        f"\nremark: {card.remark}\n\ndocs/models.md row:\n"
        "| model | architecture | params | val Dice WT / TC / ET | HD95 WT / TC / ET | CPU s/case "
        "| training |\n"
        "|---|---|---|---|---|---|---|"
    )
    print(markdown_row(card))
    return 0


if __name__ == "__main__":
    sys.exit(main())
