"""Benchmark: a first Segment click (networks loaded) versus a second one (networks reused).

The Segment dock keeps one :class:`bratseg.predictor.ModelCache` per viewer; each click builds a
:class:`bratseg.predictor.Predictor` over it. This script does the same outside Qt on a real case
with the bundled default ensemble (or ``--model`` names): for each repeat a fresh cache is made,
then two predictors on it predict the case in turn. It reports the load time of the first click
(what the second one saves), both clicks' wall times, and checks that the two predictions are
identical. The machine is shared: expect noise, and compare the minimum and the median.

Run: ``.venv/bin/python bench/bench_predictor_reuse.py [--model NAME ...] [--repeats 3] [--json]``
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CASE = ROOT / ".." / "shared" / "data" / "brats2018" / "Brats18_2013_2_1"


def _click(predictor, case):  # noqa: ANN001, ANN202 (bench helper)
    """One Segment click: load what is not cached, then predict; (prediction, load s, total s)."""
    from bratseg.progress import run_to_end

    t0 = time.perf_counter()
    run_to_end(predictor.load())
    loaded = time.perf_counter() - t0
    prediction = predictor.predict(case)
    return prediction, loaded, time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--case", type=Path, default=DEFAULT_CASE)
    parser.add_argument("--model", action="append", help="zoo name or checkpoint (repeat)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)

    from bratseg.inference import InferenceOptions
    from bratseg.io import load_case
    from bratseg.predictor import ModelCache, Predictor, resolve_model_paths

    case = load_case(args.case, load_seg=False)
    paths = resolve_model_paths(args.model)
    options = InferenceOptions(device=args.device, threads=args.threads)
    rows = []
    for _ in range(args.repeats):
        cache = ModelCache()
        first, first_load, first_s = _click(Predictor(paths, options, cache=cache), case)
        second, second_load, second_s = _click(Predictor(paths, options, cache=cache), case)
        assert cache.loads == len(paths), "the second click read checkpoints again"
        assert np.array_equal(first.labels, second.labels)
        assert np.array_equal(first.region_probs, second.region_probs)
        rows.append(
            {
                "first_load_s": first_load,
                "first_click_s": first_s,
                "second_load_s": second_load,
                "second_click_s": second_s,
                "saved_s": first_s - second_s,
            }
        )
    summary = {
        key: {
            "min": round(min(r[key] for r in rows), 3),
            "median": round(statistics.median(r[key] for r in rows), 3),
        }
        for key in rows[0]
    }
    result = {
        "case": args.case.name,
        "models": [p.stem for p in paths],
        "device": args.device,
        "repeats": args.repeats,
        "seconds": summary,
    }
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(f"case {result['case']}, {len(paths)} model(s) on {args.device}, {args.repeats} repeats")
    for key, value in summary.items():
        print(f"  {key:15s} min {value['min']:7.3f} s   median {value['median']:7.3f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
