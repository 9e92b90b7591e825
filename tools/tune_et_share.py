"""Choose the core-fraction rule of the no-enhancement decision (``et_core_fraction_min``) from
per-case rows, nested on the protocol.

The rule turns all ET into NCR when the predicted ET is less than F of the predicted tumour core.
Applied last, it changes nothing but ET, so its effect follows exactly from the rows of
``tools/eval_protocol.py --rows-out`` (predicted volumes, reference ET volume, ET Dice): a case
where it fires scores ET Dice 1 when the reference has no ET, else 0. Two sets of rows go in:
the real cases, and their contrast-removed copies (reference ET relabelled NCR, T1Gd in ET
replaced by T1-like signal), where every predicted ET is invented.

The choice: the largest F whose cost in mean ET Dice on the real cases is at most ``--max-cost``
(a decision that removes real ET must almost never fire on enhancing tumour). Nested: for each
fold, F is chosen on the other folds' cases and scored on the fold's own.

Run: ``.venv/bin/python tools/tune_et_share.py --split-file docs/brats77-5fold.json
--real REAL.json:shipped --copies COPIES.json:shipped``
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

VALUES = (0.0, 0.02, 0.04, 0.06, 0.08, 0.1, 0.15, 0.2)


def _rows(spec: str) -> dict[str, dict]:
    path, _, variant = spec.rpartition(":")
    return {r["case"]: r for r in json.loads(Path(path).read_text())["rows"][variant]}


def et_outcome(row: dict, share: float) -> tuple[float, bool, bool]:
    """(ET Dice, ET invented, rule fired) of one case under the rule at ``share``."""
    volume = row["volume_ml"]
    empty_ref = row["ref_volume_ml"]["et"] == 0
    fired = volume["et"] > 0 and volume["tc"] > 0 and volume["et"] / volume["tc"] < share
    if fired:
        return (1.0 if empty_ref else 0.0), False, True
    return row["dice"]["et"], empty_ref and volume["et"] > 0, False


def summary(rows: dict[str, dict], cases: list[str], share: float) -> dict[str, float]:
    """Mean ET Dice, cases with invented ET and cases fired on, over ``cases``."""
    out = [et_outcome(rows[c], share) for c in cases]
    return {
        "et_dice": sum(o[0] for o in out) / max(len(out), 1),
        "invented": sum(o[1] for o in out),
        "fired": sum(o[2] for o in out),
    }


def choose(real: dict[str, dict], cases: list[str], max_cost: float, values=VALUES) -> float:
    """The largest value costing at most ``max_cost`` mean ET Dice on the real ``cases``."""
    base = summary(real, cases, 0.0)["et_dice"]
    ok = [v for v in values if base - summary(real, cases, v)["et_dice"] <= max_cost]
    return max(ok)


def main(argv: list[str] | None = None) -> int:
    """Parse the arguments and print the table and the nested choice."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--split-file", required=True)
    parser.add_argument("--real", required=True, metavar="ROWS:VARIANT")
    parser.add_argument("--copies", required=True, metavar="ROWS:VARIANT")
    parser.add_argument("--max-cost", type=float, default=0.005)
    args = parser.parse_args(argv)
    from bratseg.training.splits import read_split_file

    split = read_split_file(args.split_file)
    real, copies = _rows(args.real), _rows(args.copies)
    every = [c for fold in split.folds for c in fold if c in real]
    print("| F | real: ET Dice / fired | copies: ET Dice / invented / fired |")
    print("|---|---|---|")
    for v in VALUES:
        r, c = summary(real, every, v), summary(copies, [x for x in every if x in copies], v)
        print(
            f"| {v:g} | {r['et_dice']:.3f} / {r['fired']} | "
            f"{c['et_dice']:.3f} / {c['invented']} / {c['fired']} |"
        )
    print(f"\nchosen on all {len(every)} cases: F = {choose(real, every, args.max_cost):g}")
    nested_real, nested_copies, picks = [], [], []
    for k, fold in enumerate(split.folds):
        inner = [c for j, f in enumerate(split.folds) if j != k for c in f if c in real]
        pick = choose(real, inner, args.max_cost)
        picks.append(pick)
        nested_real += [et_outcome(real[c], pick) for c in fold if c in real]
        nested_copies += [et_outcome(copies[c], pick) for c in fold if c in copies]
    print(f"nested (per fold, chosen on the other folds): F = {picks}")
    print(
        f"nested: real ET Dice {sum(o[0] for o in nested_real) / len(nested_real):.3f} "
        f"(fired {sum(o[2] for o in nested_real)}); copies ET Dice "
        f"{sum(o[0] for o in nested_copies) / len(nested_copies):.3f}, invented "
        f"{sum(o[1] for o in nested_copies)} of {len(nested_copies)}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
