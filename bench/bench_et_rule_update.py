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
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_postprocess import DATA, DEFAULT_CASE, realistic_probabilities  # noqa: E402

from bratseg.io import load_case  # noqa: E402
from bratseg.postprocess import PostprocessConfig, postprocess  # noqa: E402
from bratseg.review import ModelInfo, ReviewSession  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--case", default=str(DATA / DEFAULT_CASE))
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()

    case = load_case(args.case)
    convention = case.seg_convention or "2021"
    probs = realistic_probabilities(case.seg, convention)
    config = PostprocessConfig(et_enhancement_min=1.1)
    labels = postprocess(probs, config, convention=convention)
    session = ReviewSession(
        case=case,
        convention=convention,
        region_probs=probs,
        config=config,
        proposal=labels.copy(),
        labels=labels,
        overrides=np.zeros(labels.shape, bool),
        model=ModelInfo(names=["bench"], paths=[], sha256=[]),
    )
    settings = [
        dataclasses.replace(config, et_threshold=0.45),
        dataclasses.replace(config, et_threshold=0.55),
    ]
    session.apply_config(settings[1])  # warm-up (and the first fit)
    times = []
    for i in range(args.repeats):
        start = time.perf_counter()
        session.apply_config(settings[i % 2])
        times.append((time.perf_counter() - start) * 1000.0)
    fits = getattr(getattr(session, "reference_fits", None), "fits", "every move")
    evidence = session.et_evidence
    print(
        f"case {case.case_id}: ET-threshold move with the ET rule on, median "
        f"{statistics.median(times):.1f} ms, p90 {float(np.percentile(times, 90)):.1f} ms over "
        f"{args.repeats} moves; reference fits: {fits}; ratio "
        f"{evidence.ratio if evidence else None}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
