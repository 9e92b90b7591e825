"""Held-out five-model ensembles of a fine-tuning round, to compare it with the earlier ensemble.

A round that fine-tunes each earlier fold model K on more cases yields five fold models that
each saw four folds of the new cases; an ensemble of them has no held-out score on those cases.
This writes, for each fold K, five members ``earlier model j + s x (fold K's fine-tuned model -
earlier model K)`` (:func:`bratseg.training.weight_average.held_out_member`, task arithmetic,
Ilharco et al. 2023) and a split file of the cases none of the earlier models trained on. Scored
with ``tools/eval_protocol.py``, every such case of fold K is predicted by five members that
never saw it: the new round's ensemble against the earlier one, five members against five.

Writes ``OUT/fK-mJ.pt`` and ``OUT/split.json`` and prints the scoring command.

Run: ``.venv/bin/python tools/heldout_ensembles.py --split-file docs/brats77-5fold.json
--earlier nnunet-small-cv44-f0 ... nnunet-small-cv44-f4 --fold-runs ../runs/r-f0 ... ../runs/r-f4
--scale 0.5 --out ../heldout/r50``
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    """Parse the arguments, write the members and the split, print the scoring command."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--split-file", required=True, help="the protocol's split")
    parser.add_argument(
        "--earlier", nargs="+", required=True, help="the earlier fold models, in fold order"
    )
    parser.add_argument(
        "--fold-runs", nargs="+", required=True, help="fold K's fine-tuned run, in fold order"
    )
    parser.add_argument("--checkpoint", choices=("best", "last"), default="last")
    parser.add_argument("--scale", type=float, default=1.0, help="share of each fold's step")
    parser.add_argument("--out", required=True, type=Path, help="new folder for the members")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    from bratseg.atomic_folders import staging_folder
    from bratseg.checkpoint import read_provenance
    from bratseg.errors import BratsInputError
    from bratseg.evaluation import pretrained_cases
    from bratseg.training.splits import read_split_file, split_without, write_split_file
    from bratseg.training.weight_average import held_out_member
    from bratseg.zoo import resolve_model

    out = args.out.resolve()
    try:
        split = read_split_file(args.split_file)
        if not len(args.earlier) == len(args.fold_runs) == split.n_folds:
            raise BratsInputError(
                f"give one earlier model and one fold run per fold ({split.n_folds}), got "
                f"{len(args.earlier)} and {len(args.fold_runs)}"
            )
        if out.exists():
            raise BratsInputError("already exists (kept); name a new folder", out)
        earlier = [resolve_model(m) for m in args.earlier]
        seen: set[str] = set()
        for path in earlier:
            prov = read_provenance(path)
            seen |= set(prov.get("train_cases") or []) | pretrained_cases(prov)
        held = split_without(split, seen, f"{split.name}-unseen-by-earlier")
        if not any(held.folds):
            raise BratsInputError(
                "every case of the split was seen by an earlier model: nothing to score held out",
                args.split_file,
            )
        out.parent.mkdir(parents=True, exist_ok=True)
        entries = []
        with staging_folder(out.parent, f".{out.name}.partial-") as stage:
            write_split_file(held, stage / "split.json")
            for k, run in enumerate(args.fold_runs):
                tuned = Path(run) / f"{args.checkpoint}.pt" if Path(run).is_dir() else Path(run)
                if not held.folds[k]:
                    entries.append("-")
                    continue
                for j, member in enumerate(earlier):
                    name = f"f{k}-m{j}.pt"
                    held_out_member(
                        member, earlier[k], tuned, args.scale, stage / name, held.folds[k]
                    )
                entries.append(",".join(str(out / f"f{k}-m{j}.pt") for j in range(len(earlier))))
            stage.rename(out)
    except BratsInputError as exc:
        print(f"heldout_ensembles: error: {exc}", file=sys.stderr)
        return 2
    print(
        "score with: .venv/bin/python tools/eval_protocol.py --split-file "
        f"{out / 'split.json'} --data DATA [--data DATA2] --fold-runs {' '.join(entries)}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
