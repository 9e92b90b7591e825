"""Benchmark and acceptance check: raw TCGA-FG-6692 -> ``prepare`` -> default segmentation.

Times ``napari-brats prepare`` and ``napari-brats predict`` on the prepared folder (one process
each, as a user runs them; target: prepare + predict <= 90 s median on a 2-core CPU), then measures
against BrainLes' preprocessing of the same patient (``raw-clinical/TCGA-FG-6692/reference``):

- the prepared T1Gd is registered rigidly (mutual information) onto
  ``brainles_t1c_brain_atlas.nii.gz``; the brain mask and the labels are carried over with that
  transform (nearest neighbour);
- brain-mask Dice against BrainLes' HD-BET mask (target >= 0.95);
- label Dice (WT, TC, ET) against the default's own segmentation of BrainLes' copy used as a case
  folder (targets WT >= 0.85, TC >= 0.75).

Run: ``python bench/bench_prepare.py [--repeats 1] [--threads 2] [--json]``
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nibabel as nib
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
RAW = ROOT / ".." / "shared" / "data" / "raw-clinical" / "TCGA-FG-6692"


def _cli(*args: str) -> tuple[float, float]:
    """Wall and CPU (user + system) seconds of one CLI process: on a shared machine the CPU
    seconds, over the cores used, say what an idle one would take."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "bratseg.cli", *args], check=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return time.perf_counter() - t0, cpu


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    total = int(a.sum()) + int(b.sum())
    return 1.0 if total == 0 else 2.0 * int(np.logical_and(a, b).sum()) / total


def to_atlas(prepared: Path, labels: Path) -> tuple[np.ndarray, np.ndarray, str]:
    """Brain mask and labels of the prepared folder carried into BrainLes' atlas grid."""
    import SimpleITK as sitk

    from bratseg.io.align import rigid_transform, to_sitk

    atlas = nib.load(RAW / "reference" / "brainles_t1c_brain_atlas.nii.gz")
    t1ce = nib.load(next(prepared.glob("*_t1ce.nii.gz")))
    fixed, moving = to_sitk(atlas), to_sitk(t1ce)
    transform, report = rigid_transform(fixed, moving, "prepared T1Gd -> BrainLes atlas")
    out = []
    for path in (next(prepared.glob("*_brainmask.nii.gz")), labels):
        img = to_sitk(nib.load(path))
        moved = sitk.Resample(img, fixed, transform, sitk.sitkNearestNeighbor, 0.0)
        out.append(np.rint(sitk.GetArrayFromImage(moved).transpose(2, 1, 0)).astype(np.uint8))
    return out[0], out[1], report.line()


def reference_segmentation(tmp: Path) -> Path:
    """The default's segmentation of BrainLes' preprocessed copy (as a BraTS case folder)."""
    case = tmp / "brainles"
    case.mkdir()
    for src, dst in (("t1", "t1"), ("t1c", "t1ce"), ("t2", "t2"), ("flair", "flair")):
        shutil.copy(
            RAW / "reference" / f"brainles_{src}_brain_atlas.nii.gz", case / f"x_{dst}.nii.gz"
        )
    out = tmp / "brainles_seg.nii.gz"
    _cli("predict", str(case), "-o", str(out), "-q")
    return out


def main(argv: list[str] | None = None) -> int:
    """Time prepare + predict, then print the Dice values (or JSON)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    if not RAW.exists():
        sys.exit(f"raw clinical case not found at {RAW}")
    rows = []
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        for i in range(args.repeats):
            prepared, seg = tmp / f"prepared{i}", tmp / f"seg{i}.nii.gz"
            t_prep = _cli("prepare", str(RAW / "native"), "-o", str(prepared), "-q")
            t_pred = _cli(
                "predict", str(prepared), "-o", str(seg), "-q", "--threads", str(args.threads)
            )
            rows.append(
                {
                    "prepare_s": round(t_prep[0], 1),
                    "prepare_cpu_s": round(t_prep[1], 1),
                    "predict_s": round(t_pred[0], 1),
                    "predict_cpu_s": round(t_pred[1], 1),
                }
            )
        steps = json.loads((prepared / "prepare.json").read_text())["steps"]
        mask, labels, line = to_atlas(prepared, seg)
        hdbet = (
            np.asarray(
                nib.load(RAW / "reference" / "brainles_hdbet_brain_mask_atlas.nii.gz").dataobj
            )
            > 0
        )
        ref = np.asarray(nib.load(reference_segmentation(tmp)).dataobj)
    regions = {"wt": (1, 2, 4), "tc": (1, 4), "et": (4,)}
    result = {
        "runs": rows,
        "median_total_s": statistics.median(r["prepare_s"] + r["predict_s"] for r in rows),
        "median_total_cpu_s": statistics.median(
            r["prepare_cpu_s"] + r["predict_cpu_s"] for r in rows
        ),
        "load_average": list(os.getloadavg()),
        "steps_s": {s["step"]: s["seconds"] for s in steps},
        "registration_to_atlas": line,
        "brain_mask_dice": round(_dice(mask > 0, hdbet), 4),
        "label_dice": {
            r: round(_dice(np.isin(labels, v), np.isin(ref, v)), 4) for r, v in regions.items()
        },
        "volumes_ml": {
            "prepared": {r: float(np.isin(labels, v).sum()) / 1000 for r, v in regions.items()},
            "brainles": {r: float(np.isin(ref, v).sum()) / 1000 for r, v in regions.items()},
        },
    }
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
