"""Screenshots of the raw-scan path in the viewer (run under a display or Xvfb):

    xvfb-run -a .venv/bin/python docs/make_prepare_screenshots.py [RAW_CASE_DIR] [--no-n4]

Writes the raw clinical case (default ../shared/data/raw-clinical/TCGA-FG-6692) as a DICOM study
with decoy series (a second T1, a DWI, a localizer; ``tests/raw_scans.py``) into a temporary
folder, opens the Segment dock's series picker on it (docs/images/series-picker.png), chooses the
first T1, prepares the study in the dock's worker and saves the viewer with the QC overlay
(brain-mask outline over T1Gd, QC lines) as docs/images/prepare-qc.png.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
IMAGES = ROOT / "docs" / "images"
DEFAULT_CASE = ROOT / ".." / "shared" / "data" / "raw-clinical" / "TCGA-FG-6692"
ENDS = {"t1": "_t1", "t1ce": "_t1c", "t2": "_t2", "flair": "_fla"}


def _pump(seconds: float) -> None:
    from qtpy.QtWidgets import QApplication

    end = time.time() + seconds
    while time.time() < end:
        QApplication.processEvents()
        time.sleep(0.05)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("case_dir", nargs="?", default=str(DEFAULT_CASE))
    parser.add_argument("--no-n4", action="store_true", help="skip the bias-field correction")
    args = parser.parse_args()

    sys.path.insert(0, str(ROOT / "tests"))
    from raw_scans import write_dicom_study

    native = Path(args.case_dir) / "native"
    raw_map = {k: next(native.glob(f"*{end}.nii.gz")) for k, end in ENDS.items()}
    work = Path(tempfile.mkdtemp(prefix="prepare-shot-"))
    study = write_dicom_study(raw_map, work / "TCGA-FG-6692", step=1)

    import napari

    viewer = napari.Viewer(title="napari-brats")
    window = viewer.window._qt_window
    window.resize(1700, 1000)
    _, segment = viewer.window.add_plugin_dock_widget("napari-brats", "Segment")
    picker = segment.choose_series(study)
    picker.choose("t1", study / "s10")
    picker.resize(1000, 900)
    _pump(1.0)
    picker.grab().save(str(IMAGES / "series-picker.png"))
    print("saved", IMAGES / "series-picker.png")
    picker.n4_check.setChecked(not args.no_n4)
    start = time.time()
    picker.accept()
    _pump(0.5)
    while segment.worker is not None:
        _pump(0.2)
    print(f"prepared in {time.time() - start:.0f} s: {segment.status.text()}")
    if segment.last_error:
        shutil.rmtree(work, ignore_errors=True)
        raise SystemExit(segment.last_error)
    mask = viewer.layers["brain mask (QC)"]
    middle = int(mask.data.any(axis=(1, 2)).nonzero()[0].mean())
    viewer.dims.set_point(0, (middle + 10) * mask.scale[0])
    _pump(2.0)
    window.grab().save(str(IMAGES / "prepare-qc.png"))
    print("saved", IMAGES / "prepare-qc.png")
    viewer.close()
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
