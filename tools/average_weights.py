"""Interpolate a fine-tuned run's weights with those it started from, as a run folder to bundle.

Writes ``OUT/last.pt`` = ``(1 - w) x BASE + w x RUN/last.pt``
(:func:`bratseg.training.weight_average.average_checkpoints`, Wortsman et al. 2022) and copies
the fine-tuned run's ``progress.jsonl`` and ``config.json`` beside it, so
``tools/eval_protocol.py --fold-runs`` and ``tools/bundle_model.py --checkpoint last`` take it like
a run; its provenance says it is an average and of what.

Run: ``.venv/bin/python tools/average_weights.py --base nnunet-small-cv44-f0
--run ../runs/nnunet-small-cv77c-f0 --weight 0.5 --out ../runs/soup50-f0``
"""

from __future__ import annotations

import argparse
import logging
import shutil
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    """Parse the arguments and write the averaged run folder."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--base",
        required=True,
        help="checkpoint or zoo name fine-tuning began at, or a sibling fine-tune of its start",
    )
    parser.add_argument("--run", required=True, type=Path, help="the fine-tuned run folder")
    parser.add_argument("--weight", required=True, type=float, help="share of the fine-tuned run")
    parser.add_argument("--checkpoint", choices=("best", "last"), default="last")
    parser.add_argument("--out", required=True, type=Path, help="new run-like folder")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    from bratseg.errors import BratsInputError
    from bratseg.training.weight_average import average_checkpoints
    from bratseg.zoo import resolve_model

    try:
        average_checkpoints(
            resolve_model(args.base),
            args.run / f"{args.checkpoint}.pt",
            args.weight,
            args.out / "last.pt",
        )
    except BratsInputError as exc:
        print(f"average_weights: error: {exc}", file=sys.stderr)
        return 2
    for name in ("progress.jsonl", "config.json"):
        if (args.run / name).is_file():
            shutil.copyfile(args.run / name, args.out / name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
