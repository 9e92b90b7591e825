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
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_postprocess import DATA, DEFAULT_CASE, review_session, time_moves  # noqa: E402

from bratseg.labels import LABEL_VALUES  # noqa: E402
from bratseg.postprocess import PostprocessConfig  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--case", default=str(DATA / DEFAULT_CASE))
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--target-ms", type=float, default=100.0)
    args = parser.parse_args()

    config = PostprocessConfig()
    session = review_session(args.case, config)
    case, convention = session.case, session.convention
    cx, cy, cz = (s // 2 for s in session.labels.shape)
    session.labels[cx - 5 : cx + 5, cy - 5 : cy + 5, cz - 2 : cz + 3] = LABEL_VALUES[convention][
        "et"
    ]
    settings = [
        config,
        dataclasses.replace(config, wt_threshold=0.6, tc_threshold=0.55, et_threshold=0.5),
    ]
    painted = session.labels[cx - 5 : cx + 5, cy - 5 : cy + 5, cz - 2 : cz + 3].copy()
    times = time_moves(session, settings, args.repeats)
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
