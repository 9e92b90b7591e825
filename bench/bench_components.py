"""Benchmark: connected components of tumour masks, the sparse labelling against cc3d.

``bratseg.components.mask_components`` labels a mask either from its sorted flat indices
(sparse) or with ``cc3d.connected_components`` (connected-components-3d) on the mask's bounding
box, depending on ``CC3D_MAX_BOX_PER_VOXEL``. Both paths are forced in turn and timed (median of
7) on real expert labels of the BraTS 2018 cases (ET, WT) and on ET with scattered
false-positive voxels (0.1 % of the volume, the case that decides the dense-or-sparse choice),
6- and 26-connectivity, and the partitions are checked to be the same.

Usage:
    python bench/bench_components.py [--cases N]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import nibabel as nib
import numpy as np

import bratseg.components as components
from bratseg.components import mask_components

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "brats2018"


def _forced(box_limit: int):
    """``mask_components`` with ``CC3D_MAX_BOX_PER_VOXEL`` set to ``box_limit`` (0: sparse)."""

    def run(mask: np.ndarray, connectivity: int) -> tuple[np.ndarray, np.ndarray, int]:
        previous = components.CC3D_MAX_BOX_PER_VOXEL
        components.CC3D_MAX_BOX_PER_VOXEL = box_limit
        try:
            return mask_components(mask, connectivity)
        finally:
            components.CC3D_MAX_BOX_PER_VOXEL = previous

    return run


sparse_components = _forced(0)
cc3d_components = _forced(10**9)


def _median_ms(fn, *args) -> float:
    times = []
    for _ in range(7):
        t0 = time.perf_counter()
        fn(*args)
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


def main(argv: list[str] | None = None) -> int:
    """Print one row per case, mask and connectivity."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=4)
    args = parser.parse_args(argv)
    rng = np.random.default_rng(0)
    print("| case | mask | voxels | conn. | components | sparse ms | cc3d ms |")
    print("|---|---|---|---|---|---|---|")
    ratios = []
    for seg_file in sorted(DATA.glob("*/*_seg.nii.gz"))[: args.cases]:
        seg = np.asarray(nib.load(seg_file).dataobj)
        masks = {
            "ET": seg == 4,
            "WT": seg > 0,
            "ET + 0.1% specks": (seg == 4) | (rng.random(seg.shape) < 0.001),
        }
        for name, mask in masks.items():
            for conn in (1, 3):
                f1, c1, n1 = sparse_components(mask, conn)
                f2, c2, n2 = cc3d_components(mask, conn)
                pairs = set(zip(c1.tolist(), c2.tolist()))
                assert n1 == n2 and np.array_equal(f1, f2) and len(pairs) == n1, (
                    "different components"
                )
                a, b = (
                    _median_ms(sparse_components, mask, conn),
                    _median_ms(cc3d_components, mask, conn),
                )
                ratios.append(a / b)
                print(
                    f"| {seg_file.parent.name} | {name} | {int(mask.sum())} | {conn} | {n1} | {a:.1f} | {b:.1f} |"
                )
    print(
        f"\nsparse / cc3d time: median {statistics.median(ratios):.2f}x, range "
        f"{min(ratios):.2f}-{max(ratios):.2f}x (> 1: cc3d faster)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
