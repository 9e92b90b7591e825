"""Benchmark: ``napari-brats predict CASE -o OUT`` with no ``--model`` (the bundled default ensemble).

What a user waits for: one process per case, so Python start, imports, loading the default
models, reading the four images, the sliding-window passes of every member, postprocessing and
writing the label map are all included. Prints each case's wall time and the median; the target
is <= 10 s per case on a 2-core CPU.

``--model`` (repeatable) times other models the same way; ``--bias-correction on`` adds the N4
correction before the network (what a model trained with ``--bias-correction on`` gets anyway).

Run: ``.venv/bin/python bench/bench_default_predict.py [--cases DIR ...] [--threads 2]
[--model NAME_OR_CKPT ...] [--bias-correction model|on|off] [--json]``
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / ".." / "shared" / "data" / "brats2018"
DEFAULT_CASES = ["Brats18_2013_2_1", "Brats18_CBICA_ABM_1", "Brats18_TCIA10_637_1"]


def main(argv: list[str] | None = None) -> int:
    """Time the CLI on each case, print the table (or JSON)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", nargs="+", type=Path, default=[DATA / c for c in DEFAULT_CASES])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--model", action="append", help="instead of the default ensemble")
    from bratseg.bias_field import BIAS_CORRECTION_CHOICES

    parser.add_argument(
        "--bias-correction", choices=tuple(BIAS_CORRECTION_CHOICES), default="model"
    )
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    from bratseg.zoo import default_model_names

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for case in args.cases:
            out = Path(tmp) / f"{case.name}.nii.gz"
            cmd = [sys.executable, "-m", "bratseg.cli", "predict", str(case), "-o", str(out)]
            t0 = time.perf_counter()
            for model in args.model or []:
                cmd += ["--model", model]
            cmd += ["--bias-correction", args.bias_correction]
            subprocess.run([*cmd, "--threads", str(args.threads), "-q"], check=True)
            rows.append({"case": case.name, "seconds": round(time.perf_counter() - t0, 2)})
    result = {
        "models": args.model or default_model_names(),
        "bias_correction": args.bias_correction,
        "threads": args.threads,
        "cases": rows,
        "median_s": statistics.median(r["seconds"] for r in rows),
    }
    if args.json:
        print(json.dumps(result, indent=1))
    else:
        print(
            f"{' + '.join(result['models'])}, {args.threads} threads, "
            f"bias correction: {args.bias_correction}"
        )
        for r in rows:
            print(f"  {r['case']:<28} {r['seconds']:6.2f} s")
        print(f"  median {result['median_s']:.2f} s per case (target <= 10 s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
