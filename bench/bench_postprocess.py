"""Benchmark: postprocessing a full 240x240x155 volume from cached float16 probabilities.

Builds realistic region probabilities from a real BraTS 2018 case's expert labels (each region
mask smoothed with a Gaussian, plus noise and a few spurious ET specks, stored float16), then
times :func:`bratseg.postprocess.postprocess` per mode over 20 repetitions and prints median / p90
milliseconds and the peak extra memory. Exits 1 when the median of the hierarchical thresholds
plus Futrega et al. 2021's ET component rule (the live-postprocessing path) exceeds the target.

Usage:
    python bench/bench_postprocess.py [--case DIR] [--repeats 20] [--target-ms 100]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import tracemalloc
from pathlib import Path

import nibabel as nib
import numpy as np
from scipy import ndimage

from bratseg.labels import REGIONS, detect_convention, regions_to_stack
from bratseg.postprocess import PostprocessConfig, postprocess

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "brats2018"
DEFAULT_CASE = "Brats18_CBICA_ABM_1"


def realistic_probabilities(seg: np.ndarray, convention: str, seed: int = 0) -> np.ndarray:
    """Region probabilities (3, X, Y, Z) float16 resembling a network's output for ``seg``."""
    rng = np.random.default_rng(seed)
    regions = regions_to_stack(seg, convention)
    probs = np.empty(regions.shape, dtype=np.float16)
    for i in range(len(REGIONS)):
        smooth = ndimage.gaussian_filter(regions[i].astype(np.float32), sigma=1.5)
        smooth += rng.normal(0.0, 0.05, size=smooth.shape).astype(np.float32)
        probs[i] = np.clip(smooth, 0.0, 1.0)
    # Spurious small ET specks of low confidence, the case Futrega et al. 2021's component rule targets.
    et = REGIONS.index("et")
    brain = np.argwhere(seg == 0)
    for x, y, z in brain[rng.choice(len(brain), size=30, replace=False)]:
        probs[:, x : x + 2, y : y + 2, z : z + 2] = np.float16(0.6)
    probs[et] = np.minimum(probs[et], probs[REGIONS.index("tc")])
    return probs


def review_session(case_dir: str | Path, config: PostprocessConfig):
    """A :class:`bratseg.review.ReviewSession` on a real case with :func:`realistic_probabilities`,
    labels postprocessed with ``config``: what the plugin's sliders update (shared by
    ``bench_plugin_update`` and ``bench_et_rule_update``)."""
    from bratseg.io import load_case
    from bratseg.review import ModelInfo, ReviewSession

    case = load_case(case_dir)
    convention = case.seg_convention or "2021"
    probs = realistic_probabilities(case.seg, convention)
    labels = postprocess(probs, config, convention=convention)
    return ReviewSession(
        case=case,
        convention=convention,
        region_probs=probs,
        config=config,
        proposal=labels.copy(),
        labels=labels,
        overrides=np.zeros(labels.shape, bool),
        model=ModelInfo(names=["bench"], paths=[], sha256=[]),
    )


def time_moves(session, settings: list[PostprocessConfig], repeats: int) -> list[float]:
    """Milliseconds of each :meth:`ReviewSession.apply_config`, the settings taken in turn."""
    times = []
    for i in range(repeats):
        start = time.perf_counter()
        session.apply_config(settings[i % len(settings)])
        times.append((time.perf_counter() - start) * 1000.0)
    return times


def time_mode(probs: np.ndarray, config: PostprocessConfig, repeats: int, class_probs=None):
    """Run postprocess ``repeats`` times; return (times in ms, peak extra MiB, labels)."""
    labels = postprocess(probs, config, class_probs=class_probs)  # warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        labels = postprocess(probs, config, class_probs=class_probs)
        times.append((time.perf_counter() - t0) * 1000.0)
    tracemalloc.start()
    postprocess(probs, config, class_probs=class_probs)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return times, peak / 2**20, labels


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--case", type=Path, default=DATA / DEFAULT_CASE)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--target-ms", type=float, default=100.0)
    args = parser.parse_args(argv)

    seg_files = sorted(args.case.glob("*seg.nii.gz"))
    if not seg_files:
        print(f"no *seg.nii.gz in {args.case} (shared data missing?)", file=sys.stderr)
        return 2
    seg = np.asarray(nib.load(seg_files[0]).dataobj).astype(np.uint8)
    conv = detect_convention(seg)
    probs = realistic_probabilities(seg, conv)
    # A 4-class softmax-like array for the argmax mode (bg, NCR, ED, ET from the regions).
    wt, tc, et = (probs[i].astype(np.float32) for i in range(3))
    class_probs = np.stack([1 - wt, np.clip(tc - et, 0, 1), np.clip(wt - tc, 0, 1), et])
    class_probs = class_probs.astype(np.float16)
    del wt, tc, et
    print(
        f"case {args.case.name}: probabilities {probs.shape} {probs.dtype}, "
        f"{args.repeats} repetitions"
    )

    modes = {
        "hierarchical+component-rule (a)+(d)": (PostprocessConfig(), None),
        "hierarchical only (a)": (PostprocessConfig(et_component_rule=False), None),
        "hierarchical+rules+ET volume (a)+(c)+(d)": (PostprocessConfig(et_min_volume=500), None),
        "hierarchical+rules+islands<0.1 (a)+(d)": (
            PostprocessConfig(min_island_fraction=0.1),
            None,
        ),
        "argmax (b)+(d)": (PostprocessConfig(mode="argmax"), class_probs),
    }
    status = 0
    for name, (config, cp) in modes.items():
        times, peak_mib, labels = time_mode(probs, config, args.repeats, class_probs=cp)
        med = statistics.median(times)
        p90 = float(np.percentile(times, 90))
        print(
            f"{name:45s} median {med:7.1f} ms  p90 {p90:7.1f} ms  "
            f"peak extra {peak_mib:6.1f} MiB  labels {np.unique(labels).tolist()}"
        )
        if name.startswith("hierarchical+component-rule") and med > args.target_ms:
            print(
                f"FAIL: median {med:.1f} ms exceeds the {args.target_ms:.0f} ms target",
                file=sys.stderr,
            )
            status = 1
    return status


if __name__ == "__main__":
    sys.exit(main())
