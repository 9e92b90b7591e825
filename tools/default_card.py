"""Write the default ensemble's cross-validation estimate into its card from the protocol's rows.

Reads the per-case rows of ``tools/eval_protocol.py --rows-out`` (one variant: the shipped
settings) and the nested choice of ``tools/tune_postprocess.py --out``, and writes into
``weights/default-postprocess.json`` (``cv_estimate``): the pooled Dice and HD95, every group of
the protocol table (per fold, per stratum, never seen / seen by the initial weights, with ET false
positives), and the nested estimate (all cases and the never-seen ones). The card's prose
(``card``, ``remark``, ``chosen_on``) is left to the person shipping; ``--check`` only prints the
table and exits 1 when the card's numbers differ.

Run: ``.venv/bin/python tools/default_card.py --split-file docs/brats44-5fold.json --rows ROWS.json
--variant shipped --tune TUNE.json [--check]``
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
CARD = ROOT / "src" / "bratseg" / "weights" / "default-postprocess.json"


def estimate(split_file: str, rows_file: Path, variant: str, tune_file: Path) -> dict[str, Any]:
    """The ``cv_estimate`` numbers (pooled, groups, nested) from the two result files."""
    from bratseg.evaluation.protocol import NEVER_SEEN, protocol_summary
    from bratseg.labels import REGIONS
    from bratseg.training.splits import read_split_file

    split = read_split_file(split_file)
    rows = json.loads(rows_file.read_text())["rows"][variant]
    groups = {
        name: {
            "n": g["n"],
            "dice": g["dice"],
            "hd95": {r: round(v, 1) for r, v in g["hd95"].items()},
            "et_fp": g["et_fp"],
        }
        for name, g in protocol_summary(rows, split).items()
        if g["n"]
    }
    tune = json.loads(tune_file.read_text())
    nested: dict[str, list[float]] = {}
    for choice in tune["choices"]:
        key = json.dumps(choice["variant"], sort_keys=True)
        for case, row in tune["rows"][key].items():
            if split.fold_of(case) == choice["fold"]:
                nested[case] = row["dice"]

    def mean(cases: list[str]) -> dict[str, float]:
        return {
            r: round(statistics.fmean(nested[c][i] for c in cases), 4)
            for i, r in enumerate(REGIONS)
        }

    seen = {r["case"] for r in rows if r.get("seen_in_pretraining")}
    return {
        "dice": groups["pooled"]["dice"],
        "hd95": groups["pooled"]["hd95"],
        "groups": groups,
        "nested_dice": mean(sorted(nested)),
        **(
            {"nested_dice_never_seen": mean([c for c in nested if c not in seen])}
            if NEVER_SEEN in groups
            else {}
        ),
    }


def main(argv: list[str] | None = None) -> int:
    """Compute, print, and write (or check) the card's numbers."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--split-file", required=True)
    parser.add_argument("--rows", type=Path, required=True, help="eval_protocol.py --rows-out file")
    parser.add_argument(
        "--variant", default="shipped", help="the rows' variant of the shipped settings"
    )
    parser.add_argument("--tune", type=Path, required=True, help="tune_postprocess.py --out file")
    parser.add_argument("--card", type=Path, default=CARD)
    parser.add_argument("--check", action="store_true", help="only compare with the card")
    args = parser.parse_args(argv)
    from bratseg.errors import BratsInputError
    from bratseg.labels import REGIONS

    try:
        numbers = estimate(args.split_file, args.rows, args.variant, args.tune)
    except (BratsInputError, KeyError, OSError, ValueError) as exc:
        print(f"default_card: error: {exc}", file=sys.stderr)
        return 2
    for name, g in numbers["groups"].items():
        dice = " / ".join(f"{g['dice'][r]:.3f}" for r in REGIONS)
        hd95 = " / ".join(f"{g['hd95'][r]:.1f}" for r in REGIONS)
        print(f"| {name} | {g['n']} | {dice} | {hd95} | {g['et_fp']} |")
    print(f"nested: {numbers['nested_dice']}")
    card = json.loads(args.card.read_text())
    current = {k: card.get("cv_estimate", {}).get(k) for k in numbers}
    if args.check:
        return 0 if current == numbers else 1
    card.setdefault("cv_estimate", {}).update(numbers)
    args.card.write_text(json.dumps(card, indent=1) + "\n")
    print(f"wrote {args.card}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
