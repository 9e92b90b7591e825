"""Screenshots of the napari-brats docks for the README (run under a display or Xvfb).

    xvfb-run -a .venv/bin/python docs/make_screenshots.py [CASE_DIR] [--model NAME_OR_CHECKPOINT ...]

Opens the viewer as ``napari-brats view`` does, segments the case (with the bundled default
model(s), or ``--model``, repeatable for an ensemble; without any trained model a tiny
random-weight network stands in, and the labels are then meaningless), paints a correction, moves a threshold, and saves one PNG per dock plus the
whole window into docs/images/. The Training dock is shown replaying a real run's progress.jsonl
when ``--training-log`` is given.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "docs" / "images"
DEFAULT_CASE = ROOT / ".." / "shared" / "data" / "brats2018" / "Brats18_2013_2_1"
SLUGS = {
    "Segment": "segment_dock",
    "Postprocessing": "postprocess_dock",
    "Correction": "correction_dock",
    "Report": "report_dock",
    "Export for retraining": "export_dock",
    "Training": "training_dock",
}


def _wait(condition, timeout: float) -> None:
    from qtpy.QtWidgets import QApplication

    start = time.time()
    while not condition():
        QApplication.processEvents()
        time.sleep(0.02)
        if time.time() - start > timeout:
            raise TimeoutError("timed out")


def _models(names: list[str] | None) -> list[str]:
    if names:
        return names
    from bratseg.zoo import default_model_names

    default = default_model_names()
    if default:
        return default
    import torch

    from bratseg.checkpoint import save_checkpoint
    from bratseg.models import build_model, get_architecture

    torch.manual_seed(0)
    model = build_model("nnunet", preset="tiny")
    path = Path(tempfile.mkdtemp()) / "random-tiny-nnunet.pt"
    save_checkpoint(
        path,
        model,
        arch="nnunet",
        config=getattr(model, "config", None),
        postprocess=dict(get_architecture("nnunet").default_postprocess),
        preprocess={},
        provenance={"note": "random weights (no trained model yet)"},
    )
    return [str(path)]


def main() -> None:
    from qtpy.QtWidgets import QApplication, QDockWidget

    from bratseg.labels import LABEL_VALUES
    from napari_brats._state import viewer_state
    from napari_brats._view_command import open_viewer

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("case_dir", nargs="?", default=str(DEFAULT_CASE))
    parser.add_argument("--model", action="append", help="repeat for an ensemble")
    parser.add_argument(
        "--training-log", help="progress.jsonl of a run to replay in the Training dock"
    )
    args = parser.parse_args()

    OUT.mkdir(parents=True, exist_ok=True)
    viewer, docks = open_viewer(args.case_dir, _models(args.model))
    viewer.window._qt_window.resize(1700, 1050)
    viewer.reset_view()
    segment = docks["Segment"]
    segment.device_combo.setCurrentText("auto")
    segment.run()
    _wait(lambda: segment.worker is None, 900)
    state = viewer_state(viewer)
    session = state.session
    if session is None:
        raise SystemExit(f"segmentation failed: {segment.last_error}")
    reference = session.case.seg if session.case.seg is not None else session.labels
    z = (
        int(np.argmax((reference > 0).sum(axis=(0, 1))))
        if reference.any()
        else reference.shape[2] // 2
    )
    viewer.dims.set_point(0, z)
    viewer.reset_view()
    viewer.layers["T1Gd"].visible = False
    viewer.layers["FLAIR"].visible = True

    # a correction: paint a small ET blob, then move a threshold (the paint survives)
    layer = state.layer
    docks["Correction"].paint_tissue("et")
    xs, ys = np.nonzero(reference[:, :, z]) if reference[:, :, z].any() else ([120], [120])
    layer.paint((z, int(np.median(ys)), int(np.median(xs))), LABEL_VALUES[session.convention]["et"])
    docks["Postprocessing"].controls["tc_threshold"].value = 0.5
    docks["Postprocessing"].apply_now()
    docks["Report"].refresh()
    docks["Export for retraining"].status.setText(
        "Ready to export — click to write the dataset case."
    )
    if args.training_log:
        panel = docks["Training"]
        for line in Path(args.training_log).read_text().splitlines():
            if line.strip():
                panel.handle_event(json.loads(line))
    for _ in range(20):
        QApplication.processEvents()
        time.sleep(0.02)
    for name, widget in docks.items():
        if name not in SLUGS:  # its own script: docs/make_hotspots_screenshot.py, _worklist_
            continue
        widget.resize(max(widget.width(), 420), max(widget.sizeHint().height(), 380))
        QApplication.processEvents()
        widget.grab().save(str(OUT / f"{SLUGS[name]}.png"))
    post = docks["Postprocessing"]  # its Advanced section (the ET rules) opened, tab in front
    dock = post.parentWidget()
    while dock is not None and not isinstance(dock, QDockWidget):
        dock = dock.parentWidget()
    if dock is not None:
        dock.raise_()
    post.advanced.expand(animate=False)
    for _ in range(20):
        QApplication.processEvents()
        time.sleep(0.02)
    post.resize(max(post.width(), 420), post.sizeHint().height())
    QApplication.processEvents()
    post.grab().save(str(OUT / "postprocess_dock_advanced.png"))
    viewer.window.screenshot(str(OUT / "viewer.png"), canvas_only=False)
    print("saved", sorted(p.name for p in OUT.glob("*.png")))
    viewer.close()


if __name__ == "__main__":
    main()
