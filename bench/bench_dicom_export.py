"""Benchmark: the time DICOM export takes per case, and each of its parts.

Exports real BraTS 2018 cases (NIfTI, so a new study with the T1Gd written as its MR series) with
their expert labels, in process, and prints per case the total and the parts: the source series,
SEG (highdicom), RTSTRUCT (contours), the burned-in overlay series and the summary image; then the
median and the largest total over the cases.

Usage:
    python bench/bench_dicom_export.py [--data DIR] [--cases 3]
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / ".." / "shared" / "data" / "brats2018"


def _parts(case) -> dict[str, float]:
    from bratseg.io import MODALITIES
    from bratseg.report.dicom.capture import build_overlay_series, render_summary
    from bratseg.report.dicom.export import source_series
    from bratseg.report.dicom.rtstruct import build_rtstruct
    from bratseg.report.dicom.seg import Provenance, build_seg

    times = {}
    start = time.perf_counter()
    source = source_series(case)
    times["source series"] = time.perf_counter() - start
    start = time.perf_counter()
    build_seg(case.seg, case.seg_convention, source, Provenance(), series_number=1)
    times["SEG"] = time.perf_counter() - start
    start = time.perf_counter()
    build_rtstruct(case.seg, case.seg_convention, source, series_number=2)
    times["RTSTRUCT"] = time.perf_counter() - start
    volume = case.image[MODALITIES.index("t1ce")]
    start = time.perf_counter()
    build_overlay_series(volume, case.seg, case.seg_convention, source, series_number=3)
    times["overlay series"] = time.perf_counter() - start
    start = time.perf_counter()
    render_summary(volume, case.seg, case.seg_convention, [("WT", 1.0)], ["x"])
    times["summary image"] = time.perf_counter() - start
    return times


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--cases", type=int, default=3)
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT / "src"))
    logging.basicConfig(level=logging.ERROR)
    from bratseg.io import list_case_folders, load_case
    from bratseg.report.dicom import export_dicom

    totals = []
    for case_dir in list_case_folders(args.data)[: args.cases]:
        case = load_case(case_dir)
        with tempfile.TemporaryDirectory() as tmp:
            start = time.perf_counter()
            export_dicom(case, case.seg, case.seg_convention, Path(tmp) / "out")
            total = time.perf_counter() - start
        totals.append(total)
        parts = ", ".join(f"{k} {v:.1f} s" for k, v in _parts(case).items())
        print(f"{case.case_id}: {total:.1f} s written ({parts})")
    print(f"export-dicom: median {statistics.median(totals):.1f} s, max {max(totals):.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
