"""Average per-case rows of several models (``tools/eval_protocol.py --rows-out``) case by case.

For a fair member-to-member comparison: each of an ensemble's members is scored on its own on the
cases it never saw (``eval_protocol.py --models MEMBER``), and this averages, for every case, the
Dice and HD95 of the members that scored it. The result describes the expected single member,
not the ensemble, and can be put beside a cross-validation's fold models with
``tools/compare_rows.py``.

Run: ``.venv/bin/python tools/mean_rows.py --variant shipped --out MEAN.json R0.json R1.json ...``
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

REGIONS = ("wt", "tc", "et")


def mean_rows(files: list[Path], variant: str) -> list[dict]:
    """Per case, the mean Dice and HD95 over the files that hold it (``n_models`` says how many)."""
    by_case: dict[str, list[dict]] = {}
    for path in files:
        for row in json.loads(path.read_text())["rows"][variant]:
            by_case.setdefault(row["case"], []).append(row)
    out = []
    for _case, rows in sorted(by_case.items()):
        mean = dict(rows[0])
        for key in ("dice", "hd95"):
            mean[key] = {r: sum(x[key][r] for x in rows) / len(rows) for r in REGIONS}
        mean["n_models"] = len(rows)
        out.append(mean)
    return out


def main(argv: list[str] | None = None) -> int:
    """Parse the arguments and write the averaged rows."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("rows", nargs="+", type=Path, help="rows files of eval_protocol.py")
    parser.add_argument("--variant", default="shipped", help="the variant to average")
    parser.add_argument("--out", required=True, type=Path, help="the averaged rows file")
    args = parser.parse_args(argv)
    rows = mean_rows(args.rows, args.variant)
    what = f"mean of {len(args.rows)} models' rows, case by case"
    args.out.write_text(json.dumps({"what": what, "rows": {args.variant: rows}}, indent=1))
    print(f"{len(rows)} cases -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
