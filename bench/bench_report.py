"""Benchmark: the time ``napari-brats report`` takes per case, with and without the PDF.

Runs the command as a user does (a fresh process per call, so start-up, imports and reading the
four images are included) on real BraTS 2018 cases with their expert labels, ``--json`` without
and with ``--pdf``, and prints the median and the largest wall time of each over the cases. Also
times the in-process steps on the first case: loading the case, :func:`bratseg.report.build_report`
and rendering the PDF.

Usage:
    python bench/bench_report.py [--data DIR] [--cases 4] [--repeat 1]
"""

from __future__ import annotations

import argparse
import logging
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / ".." / "shared" / "data" / "brats2018"


def _timed(command: list[str]) -> float:
    start = time.perf_counter()
    proc = subprocess.run(
        command, capture_output=True, encoding="utf-8", errors="replace", check=False
    )
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed: {proc.stderr.strip()}")
    return seconds


def _in_process(case_dir: Path, out: Path) -> dict[str, float]:
    from bratseg.io import MODALITIES, load_case
    from bratseg.report import ReportInfo, build_report
    from bratseg.report.pdf import write_report_pdf

    times = {}
    start = time.perf_counter()
    case = load_case(case_dir)
    times["load case"] = time.perf_counter() - start
    start = time.perf_counter()
    report = build_report(
        case.seg,
        case.seg_convention,
        case.affine,
        case.spacing,
        images=case.image,
        info=ReportInfo(case_id=case.case_id),
    )
    times["build_report"] = time.perf_counter() - start
    start = time.perf_counter()
    write_report_pdf(
        report,
        out,
        case.seg,
        case.affine,
        case.spacing,
        case.image[MODALITIES.index("t1ce")],
        overwrite=True,
    )
    times["write PDF (first, with imports)"] = time.perf_counter() - start
    start = time.perf_counter()
    write_report_pdf(
        report,
        out,
        case.seg,
        case.affine,
        case.spacing,
        case.image[MODALITIES.index("t1ce")],
        overwrite=True,
    )
    times["write PDF (again)"] = time.perf_counter() - start
    return times


def main(argv: list[str] | None = None) -> int:
    """Time the command on the cases and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(DATA))
    parser.add_argument("--cases", type=int, default=4)
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args(argv)
    logging.getLogger("bratseg").setLevel(logging.ERROR)
    cases = sorted(p for p in Path(args.data).iterdir() if p.is_dir())[: args.cases]
    if not cases:
        raise SystemExit(f"no cases in {args.data}")
    cli = [sys.executable, "-m", "bratseg.cli.main", "report"]
    results: dict[str, list[float]] = {"report --json": [], "report --json --pdf": []}
    with tempfile.TemporaryDirectory() as tmp:
        for case in cases:
            for _ in range(args.repeat):
                results["report --json"].append(_timed([*cli, str(case), "--json"]))
                pdf = Path(tmp) / f"{case.name}.pdf"
                results["report --json --pdf"].append(
                    _timed([*cli, str(case), "--json", "--pdf", str(pdf), "--overwrite"])
                )
        steps = _in_process(cases[0], Path(tmp) / "steps.pdf")
    print(f"{len(cases)} case(s) x {args.repeat}: wall time of one command (fresh process)")
    for name, values in results.items():
        print(f"  {name:<22} median {statistics.median(values):5.2f} s   max {max(values):5.2f} s")
    print(f"steps on {cases[0].name} (in process)")
    for name, seconds in steps.items():
        print(f"  {name:<32} {seconds:5.2f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
