"""Benchmark: cohort prediction throughput (cases/hour) with 1 and with 2 processes (torchrun).

Runs ``python -m torch.distributed.run --standalone --nproc_per_node N -m bratseg.cli.main predict
DATASET -o OUT --device cpu`` on a folder of real BraTS cases (symlinked from
``../shared/data/brats2018``) for each N, into a fresh output folder each time, and reports the wall
time (process start and model loading included), cases/hour, and the load average before and after
(the machine is shared: the numbers are only comparable at similar load). With N processes each
takes ``cpu_count / N`` threads, so on a 2-core machine two processes can at best match one.

Run: ``.venv/bin/python bench/bench_cohort.py [--cases 8] [--nproc 1 2] [--model NAME] [--json]``
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / ".." / "shared" / "data" / "brats2018"


def run_once(dataset: Path, out: Path, nproc: int, models: list[str]) -> dict:
    """One cohort run; its wall time, cases/hour and the load average around it."""
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
    cmd += ["--nproc_per_node", str(nproc), "-m", "bratseg.cli.main", "predict", str(dataset)]
    cmd += ["-o", str(out), "--device", "cpu", "-q"]
    for m in models:
        cmd += ["--model", m]
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    env.pop("OMP_NUM_THREADS", None)  # torchrun would otherwise force 1 thread per process
    load_before = os.getloadavg()[0]
    t0 = time.perf_counter()
    proc = subprocess.run(
        cmd, capture_output=True, encoding="utf-8", errors="replace", env=env, cwd=ROOT
    )
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"predict failed (exit {proc.returncode}): {proc.stderr[-2000:]}")
    cases = len((out / "cases.jsonl").read_text().splitlines())
    return {
        "nproc": nproc,
        "cases": cases,
        "wall_s": round(wall, 1),
        "cases_per_hour": round(cases * 3600.0 / wall, 1),
        "load_before": round(load_before, 2),
        "load_after": round(os.getloadavg()[0], 2),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=8, help="cases from brats2018 (at most 16)")
    parser.add_argument("--nproc", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--model", action="append", default=[], help="default: bundled ensemble")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    if not DATA.is_dir():
        raise SystemExit(f"shared data not found at {DATA}")
    cases = sorted(p for p in DATA.iterdir() if p.is_dir())[: args.cases]
    results = []
    with tempfile.TemporaryDirectory(prefix="bench-cohort-") as tmp:
        dataset = Path(tmp) / "dataset"
        dataset.mkdir()
        for case in cases:
            (dataset / case.name).symlink_to(case.resolve(), target_is_directory=True)
        for n in args.nproc:
            results.append(run_once(dataset, Path(tmp) / f"out-{n}", n, args.model))
    report = {"cpus": os.cpu_count(), "models": args.model or ["default"], "runs": results}
    if args.json:
        print(json.dumps(report, indent=1))
    else:
        print(f"{len(cases)} cases, {os.cpu_count()} CPUs, models: {', '.join(report['models'])}")
        for r in results:
            print(
                f"  {r['nproc']} process(es): {r['wall_s']:.1f} s, {r['cases_per_hour']:.0f} "
                f"cases/hour (load average {r['load_before']:.1f} -> {r['load_after']:.1f})"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
