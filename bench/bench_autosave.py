"""Benchmark: what an autosave adds to a brush stroke on a full 240x240x155 case.

A review session of a real BraTS 2018 case (realistic probabilities from its expert labels, as in
bench_postprocess.py) receives 40 brush strokes (5x5x5 blocks of a tissue). After each, it times

- the edit tracking the viewer does on every stroke (compare with the snapshot, mark the changed
  voxels as hand edits: ``napari_brats._tracking.EditTracker``'s work), and
- the atomic autosave (:meth:`bratseg.review.SessionStore.save`: the hand edits, plus the
  proposal when it changed, then session.json), which the viewer runs once a burst of strokes
  has been quiet for 400 ms;

and prints median / p90 milliseconds of each and of their sum. Exits 1 when the median sum
exceeds the target (50 ms).

Usage:
    python bench/bench_autosave.py [--case DIR] [--strokes 40] [--target-ms 50]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time

import numpy as np
from bench_postprocess import DATA, DEFAULT_CASE, realistic_probabilities

from bratseg.io import load_case
from bratseg.postprocess import PostprocessConfig, postprocess
from bratseg.review import ModelInfo, ReviewSession, SessionStore, case_key


class _Prediction:
    def __init__(self, probs: np.ndarray) -> None:
        self.region_probs = probs
        self.postprocess = PostprocessConfig()
        self.convention = "2021"
        self.labels = postprocess(probs, self.postprocess, convention="2021")
        self.class_probs = None


def main(argv: list[str] | None = None) -> int:
    """Run the strokes, print the table, return 1 above the target."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--case", default=str(DATA / DEFAULT_CASE))
    parser.add_argument("--strokes", type=int, default=40)
    parser.add_argument("--target-ms", type=float, default=50.0)
    args = parser.parse_args(argv)

    case = load_case(args.case)
    session = ReviewSession.from_prediction(
        case,
        _Prediction(realistic_probabilities(case.seg, case.seg_convention)),
        ModelInfo(["bench"], [], []),
    )
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        store = SessionStore(tmp)
        key = case_key(case.files)
        store.save(session, key)  # the first save writes the proposal (once per run / setting)
        snapshot = session.labels.copy()
        track, save = [], []
        for _ in range(args.strokes):
            x, y, z = (int(rng.integers(20, s - 25)) for s in session.labels.shape)
            session.labels[x : x + 5, y : y + 5, z : z + 5] = int(rng.choice([1, 2, 4]))
            t0 = time.perf_counter()
            changed = session.labels != snapshot
            session.overrides |= changed
            np.copyto(snapshot, session.labels, where=changed)
            t1 = time.perf_counter()
            store.save(session, key)
            t2 = time.perf_counter()
            track.append((t1 - t0) * 1000)
            save.append((t2 - t1) * 1000)
    total = [a + b for a, b in zip(track, save)]
    print(
        f"{case.case_id} {session.labels.shape}, {args.strokes} strokes, "
        f"{int(session.overrides.sum())} hand-edited voxels at the end"
    )
    print("| step | median ms | p90 ms |")
    print("|---|---|---|")
    for name, values in (
        ("edit tracking (every stroke)", track),
        ("autosave (debounced)", save),
        ("stroke + autosave", total),
    ):
        p90 = float(np.percentile(values, 90))
        print(f"| {name} | {statistics.median(values):.1f} | {p90:.1f} |")
    return 0 if statistics.median(total) <= args.target_ms else 1


if __name__ == "__main__":
    sys.exit(main())
