"""Compare two models' per-case rows (``tools/eval_protocol.py --rows-out``) on the cases both scored.

Prints one Markdown table: mean Dice WT / TC / ET of each side, and their difference, pooled,
per stratum, per source and per fold of the split, on exactly the cases present in both files (e.g. the
previous default on the cases it never saw, against the new default's cross-validation rows).
``--nested ROWS:VARIANT`` adds a third column; ``--bootstrap N`` a 95 % interval of each
difference (paired bootstrap over the group's cases, N draws, seeded); ``--cases`` lists every
case.

Run: ``.venv/bin/python tools/compare_rows.py --split-file docs/brats44-5fold.json
--old ../evals/default-v1-unseen28.json:old --new ../evals/cv44-protocol-v5.json:shipped``
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

REGIONS = ("wt", "tc", "et")


def _rows(spec: str) -> dict[str, dict]:
    path, _, variant = spec.rpartition(":")
    if not path:
        path, variant = spec, ""
    rows = json.loads(Path(path).read_text())["rows"]
    if variant not in rows:
        raise SystemExit(f"compare_rows: error: {path} has no variant {variant!r}: {list(rows)}")
    return {r["case"]: r for r in rows[variant]}


def _mean(rows: dict[str, dict], cases: list[str]) -> list[float]:
    return [sum(rows[c]["dice"][r] for c in cases) / len(cases) for r in REGIONS]


def _fmt(values: list[float], sign: bool = False) -> str:
    return " / ".join(f"{v:+.3f}" if sign else f"{v:.3f}" for v in values)


def main(argv: list[str] | None = None) -> int:
    """Parse the arguments and print the comparison table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--split-file", required=True, help="the protocol's split")
    parser.add_argument("--old", required=True, metavar="ROWS:VARIANT")
    parser.add_argument("--new", required=True, metavar="ROWS:VARIANT")
    parser.add_argument("--nested", metavar="ROWS:VARIANT", help="a third column")
    parser.add_argument("--cases", action="store_true", help="also list every case")
    parser.add_argument(
        "--bootstrap", type=int, default=0, metavar="N", help="95%% interval of each difference"
    )
    args = parser.parse_args(argv)
    from bratseg.evaluation.protocol import paired_bootstrap_interval
    from bratseg.training.splits import read_split_file, source_of

    split = read_split_file(args.split_file)
    fold_of = {c: k for k, fold in enumerate(split.folds) for c in fold}
    strata = split.strata()
    old, new = _rows(args.old), _rows(args.new)
    nested = _rows(args.nested) if args.nested else None
    cases = sorted(set(old) & set(new))
    groups = {"pooled": cases}
    for stratum in sorted({strata[c] for c in cases}):
        groups[stratum] = [c for c in cases if strata[c] == stratum]
    for source in sorted({source_of(c) for c in cases}):
        groups[source] = [c for c in cases if source_of(c) == source]
    for k in range(split.n_folds):
        groups[f"fold {k}"] = [c for c in cases if fold_of.get(c) == k]
    extra = " new (nested) |" if nested else ""
    interval = " 95 % interval WT / TC / ET |" if args.bootstrap else ""
    print(f"| | n | previous | new |{extra} difference |{interval}")
    print("|---|---|---|---|" + ("---|" if nested else "") + "---|" + ("---|" if interval else ""))
    for name, members in groups.items():
        if not members:
            continue
        a, b = _mean(old, members), _mean(new, members)
        third = f" {_fmt(_mean(nested, members))} |" if nested else ""
        diff = _fmt([y - x for x, y in zip(a, b, strict=True)], sign=True)
        ci = ""
        if args.bootstrap:
            bounds = [
                paired_bootstrap_interval(
                    [new[c]["dice"][r] - old[c]["dice"][r] for c in members], args.bootstrap
                )
                for r in REGIONS
            ]
            ci = " " + " / ".join(f"[{lo:+.3f}, {hi:+.3f}]" for lo, hi in bounds) + " |"
        print(f"| {name} | {len(members)} | {_fmt(a)} | {_fmt(b)} |{third} {diff} |{ci}")
    if args.cases:
        for c in cases:
            a = [old[c]["dice"][r] for r in REGIONS]
            b = [new[c]["dice"][r] for r in REGIONS]
            print(f"{c} ({strata[c]}, fold {fold_of.get(c)}): {_fmt(a)} -> {_fmt(b)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
