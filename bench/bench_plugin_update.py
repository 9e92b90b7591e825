"""Benchmark: one live postprocessing update in the plugin (slider move → new labels).

Times :meth:`bratseg.review.ReviewSession.apply_config` — find hand edits (diff against the AI
proposal), rerun :func:`bratseg.postprocess.postprocess` from cached float16 probabilities, merge
the result into the working labels keeping the edits — on a full 240×240×155 volume with
realistic probabilities (from ``bench_postprocess.realistic_probabilities``) and a painted blob of
hand edits. Thresholds alternate between two settings so every update changes labels. Prints
median / p90 ms; exits 1 when the median exceeds the target.

Usage:
    python bench/bench_plugin_update.py [--case DIR] [--repeats 20] [--target-ms 100]
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
from bratseg.labels import LABEL_VALUES  # noqa: E402
from bratseg.postprocess import PostprocessConfig, postprocess  # noqa: E402
from bratseg.review import ModelInfo, ReviewSession  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--case", default=str(DATA / DEFAULT_CASE))
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--target-ms", type=float, default=100.0)
    args = parser.parse_args()

    case = load_case(args.case)
    convention = case.seg_convention or "2021"
    probs = realistic_probabilities(case.seg, convention)
    config = PostprocessConfig()
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
    cx, cy, cz = (s // 2 for s in labels.shape)
    session.labels[cx - 5 : cx + 5, cy - 5 : cy + 5, cz - 2 : cz + 3] = LABEL_VALUES[convention][
        "et"
    ]
    settings = [
        config,
        dataclasses.replace(config, wt_threshold=0.6, tc_threshold=0.55, et_threshold=0.5),
    ]
    painted = session.labels[cx - 5 : cx + 5, cy - 5 : cy + 5, cz - 2 : cz + 3].copy()
    times = []
    for i in range(args.repeats):
        start = time.perf_counter()
        session.apply_config(settings[i % 2])
        times.append((time.perf_counter() - start) * 1000.0)
    assert (session.labels[cx - 5 : cx + 5, cy - 5 : cy + 5, cz - 2 : cz + 3] == painted).all()
    median = statistics.median(times)
    p90 = float(np.percentile(times, 90))
    print(
        f"case {case.case_id} shape {case.shape}: plugin update median {median:.1f} ms, "
        f"p90 {p90:.1f} ms over {args.repeats} (edits kept: {int(session.overrides.sum())} voxels)"
    )
    return 0 if median <= args.target_ms else 1


if __name__ == "__main__":
    sys.exit(main())
