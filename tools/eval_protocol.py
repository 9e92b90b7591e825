"""Score models under the fixed cross-validation protocol (a split file), per fold, pooled and per stratum.

Two ways to fill the protocol's table:

- ``--fold-runs R0 R1 ...``: one entry per fold of the split, in fold order (run folders or
  checkpoints; ``A,B`` ensembles two; ``-`` skips a fold not trained yet). Each fold model is
  scored on the cases its fold holds out, refused if it trained on one of them
  (:func:`bratseg.evaluation.crossval.cross_validate`).
- ``--models A B``: one fixed model or ensemble (e.g. today's bundled default), scored on every
  case of the split that none of the models trained on (``unseen``), so the number is held out.

Every case is predicted at full resolution through the real pipeline (CPU, the first model's
postprocessing, no TTA unless ``--tta 8``). ``--variants '{"NAME": {postprocess overrides}}'`` scores postprocessing
variants on the same predictions. ``--rows-out FILE`` keeps the per-case rows (Dice, HD95,
volumes, mean ET probability) to tune case-level rules without predicting again.

Run: ``.venv/bin/python tools/eval_protocol.py --split-file docs/brats44-5fold.json
--data ../shared/data/brats2018 --data ../extra-data --models ds-unet-small``
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    """Parse the arguments, score, print one protocol table per postprocessing variant."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--split-file", required=True, help="the protocol's split (napari-brats cv-split)"
    )
    parser.add_argument(
        "--data", action="append", required=True, help="folders holding the cases; repeatable"
    )
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument(
        "--fold-runs", nargs="+", metavar="RUN[,RUN]|-", help="one entry per fold, in fold order"
    )
    which.add_argument(
        "--models",
        nargs="+",
        help="zoo names or checkpoints (one ensemble), scored on unseen cases",
    )
    parser.add_argument(
        "--checkpoint", choices=("best", "last"), default="last", help="for --fold-runs folders"
    )
    parser.add_argument(
        "--variants", default="{}", help="JSON: variant name -> postprocessing overrides"
    )
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--tta", type=int, choices=(0, 8), default=0, help="test-time augmentation: 0 or 8 flips"
    )
    from bratseg.bias_field import BIAS_CORRECTION_CHOICES

    parser.add_argument(
        "--bias-correction",
        choices=tuple(BIAS_CORRECTION_CHOICES),
        default="model",
        help="N4 before every model (on), before none (off), or as each was trained (model)",
    )
    parser.add_argument(
        "--rows-out", help="write the per-case rows (all variants) to this JSON file"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("bratseg.evaluation").setLevel(logging.INFO)  # one line per case

    from bratseg.errors import BratsInputError
    from bratseg.evaluation.protocol import format_protocol_table, protocol_summary
    from bratseg.training.splits import read_split_file

    try:
        split = read_split_file(args.split_file)
        variants = json.loads(args.variants)
        if not isinstance(variants, dict):
            raise BratsInputError("--variants must be a JSON object")
        rows, what = (
            _fold_rows(args, split, variants)
            if args.fold_runs
            else _model_rows(args, split, variants)
        )
    except (BratsInputError, ValueError) as exc:
        print(f"eval_protocol: error: {' '.join(str(exc).split())}", file=sys.stderr)
        return 2
    for name, variant_rows in rows.items():
        title = f"{what}{' — ' + name if name else ''} ({split.name})"
        print(format_protocol_table(protocol_summary(variant_rows, split), title) + "\n")
    if args.rows_out:
        Path(args.rows_out).write_text(
            json.dumps({"what": what, "split": split.name, "rows": rows}, indent=1)
        )
    return 0


def _bias_correction(args: argparse.Namespace) -> bool | None:
    from bratseg.bias_field import bias_correction_choice

    return bias_correction_choice(args.bias_correction)


def _fold_rows(args: argparse.Namespace, split, variants: dict) -> tuple[dict, str]:
    from bratseg.errors import BratsInputError
    from bratseg.evaluation.crossval import cross_validate

    if len(args.fold_runs) != split.n_folds:
        raise BratsInputError(
            f"--fold-runs needs {split.n_folds} entries (one per fold, '-' to skip), "
            f"got {len(args.fold_runs)}"
        )
    given = [(k, entry.split(",")) for k, entry in enumerate(args.fold_runs) if entry != "-"]
    rows, info = cross_validate(
        [g for _, g in given],
        data=args.data,
        threads=args.threads,
        tta=args.tta,
        variants=variants,
        checkpoint=args.checkpoint,
        bias_correction=_bias_correction(args),
    )
    for (k, _), fold in zip(given, info):
        if sorted(fold["val_cases"]) != sorted(split.folds[k]):
            raise BratsInputError(
                f"fold run {args.fold_runs[k]} does not hold out fold {k} of {split.name}"
            )
    return rows, f"{len(given)} of {split.n_folds} fold models, {args.checkpoint} checkpoints"


def _model_rows(args: argparse.Namespace, split, variants: dict) -> tuple[dict, str]:
    from bratseg.checkpoint import load_checkpoint
    from bratseg.evaluation import round_weights_to_half, score_cases
    from bratseg.training.data import discover_cases
    from bratseg.zoo import resolve_model

    models = [load_checkpoint(resolve_model(n)) for n in args.models]
    seen = {c for m in models for c in (m.provenance.get("train_cases") or [])}
    refs = {r.case_id: r.folder for r in discover_cases(args.data)}
    cases = sorted(c for f in split.folds for c in f if c not in seen and c in refs)
    for model in models:
        round_weights_to_half(model.model)
    rows = score_cases(
        models,
        [Path(refs[c]) for c in cases],
        threads=args.threads,
        tta=args.tta,
        variants={"": {}, **variants},
        bias_correction=_bias_correction(args),
    )
    return (
        rows,
        f"{' + '.join(args.models)} on the {len(cases)} split cases none of them trained on",
    )


if __name__ == "__main__":
    sys.exit(main())
