"""Benchmark: a slider move in the Postprocessing dock with the no-enhancement ET rule on.

Times :meth:`bratseg.review.ReviewSession.apply_config` on a full 240×240×155 real case with
realistic probabilities (``bench_postprocess.realistic_probabilities``) while the ET threshold
alternates between two values and ``et_enhancement_min`` is on: the whole tumour stays the same,
so the rule's T1 -> T1Gd reference fit (every brain voxel) need not run again. Prints median /
p90 ms and how many fits ran. Run it on two checkouts (``PYTHONPATH=OTHER/src``) to compare.

Usage:
    python bench/bench_et_rule_update.py [--case DIR] [--repeats 20]
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_postprocess import DATA, DEFAULT_CASE, review_session, time_moves  # noqa: E402

from bratseg.postprocess import PostprocessConfig  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--case", default=str(DATA / DEFAULT_CASE))
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()

    config = PostprocessConfig(et_enhancement_min=1.1)
    session = review_session(args.case, config)
    settings = [
        dataclasses.replace(config, et_threshold=0.45),
        dataclasses.replace(config, et_threshold=0.55),
    ]
    session.apply_config(settings[1])  # warm-up (and the first fit)
    times = time_moves(session, settings, args.repeats)
    fits = getattr(getattr(session, "reference_fits", None), "fits", "every move")
    evidence = session.et_evidence
    print(
        f"case {session.case.case_id}: ET-threshold move with the ET rule on, median "
        f"{statistics.median(times):.1f} ms, p90 {float(np.percentile(times, 90)):.1f} ms over "
        f"{args.repeats} moves; reference fits: {fits}; ratio "
        f"{evidence.ratio if evidence else None}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
