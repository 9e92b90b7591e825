"""Screenshot of the viewer with the Worklist dock after "Segment all" (run under a display or Xvfb).

    xvfb-run -a .venv/bin/python docs/make_worklist_screenshot.py [CASES_DIR] [--n 4] [--model NAME ...]

Links the first ``--n`` cases of CASES_DIR (default: the BraTS 2018 cases in ../shared/data) into a
temporary folder, opens it in the Worklist dock with review sessions in a temporary folder (the
user's are not touched), segments all with the bundled default model(s) (or ``--model``,
repeatable), opens the first case, approves it, opens the second, and saves the whole window as
docs/images/worklist.png.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "docs" / "images" / "worklist.png"
DEFAULT_CASES = ROOT / ".." / "shared" / "data" / "brats2018"


def _wait(condition, timeout: float) -> None:
    from qtpy.QtWidgets import QApplication

    start = time.time()
    while not condition():
        QApplication.processEvents()
        time.sleep(0.05)
        if time.time() - start > timeout:
            raise TimeoutError("timed out")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("cases_dir", nargs="?", default=str(DEFAULT_CASES))
    parser.add_argument("--n", type=int, default=4, help="cases to link into the worklist")
    parser.add_argument("--model", action="append", help="repeat for an ensemble")
    parser.add_argument("--reviewer", default="dr.reviewer")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="worklist-shot-"))
    os.environ["BRATSEG_SESSIONS"] = str(work / "sessions")
    folder = work / "cases"
    sources = sorted(p for p in Path(args.cases_dir).iterdir() if p.is_dir())[: args.n]
    for source in sources:
        (folder / source.name).mkdir(parents=True)
        for f in source.iterdir():
            os.symlink(f.resolve(), folder / source.name / f.name)

    import napari

    from bratseg.zoo import default_model_names, resolve_model

    viewer = napari.Viewer(title="napari-brats")
    window = viewer.window._qt_window
    window.resize(1900, 1050)
    qt_dock, dock = viewer.window.add_plugin_dock_widget("napari-brats", "Worklist")
    dock.set_folder(folder)
    models = [str(resolve_model(m)) for m in (args.model or default_model_names())]
    dock.model_list.set_only_checked(models)
    start = time.time()
    dock.segment_all()
    _wait(lambda: dock.worker is None, timeout=3600)
    print(f"segment all: {len(sources)} cases in {time.time() - start:.0f} s; {dock.status.text()}")
    dock.open_row(0)
    dock.reviewer_edit.setText(args.reviewer)
    dock.approve()
    dock.open_row(1)
    viewer.dims.set_point(0, 80 * viewer.layers[0].scale[0])
    from qtpy.QtWidgets import QApplication

    for _ in range(40):  # let the canvas draw
        QApplication.processEvents()
        time.sleep(0.05)
    dock.table.resizeColumnsToContents()
    from qtpy.QtCore import Qt

    window.resizeDocks([qt_dock], [1010], Qt.Orientation.Horizontal)  # every column in view
    for _ in range(20):
        QApplication.processEvents()
        time.sleep(0.05)
    viewer.window._qt_window.grab().save(str(OUT))
    print("saved", OUT)
    viewer.close()


if __name__ == "__main__":
    main()
