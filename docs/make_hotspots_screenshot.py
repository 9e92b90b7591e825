"""Screenshot of the viewer with the Review hotspots dock and the uncertainty layer (run under a display or Xvfb).

    xvfb-run -a .venv/bin/python docs/make_hotspots_screenshot.py [CASE_DIR] [--row 0]

Segments CASE_DIR (default: ../extra-data/Brats18_CBICA_ASE_1, a case no bundled model trained on)
with the bundled default ensemble on the CPU, opens the Review hotspots dock, shows the
uncertainty layer, goes to hotspot ``--row`` and saves the whole window as
docs/images/hotspots.png.
"""

from __future__ import annotations

import argparse
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "docs" / "images" / "hotspots.png"
DEFAULT_CASE = ROOT / ".." / "extra-data" / "Brats18_CBICA_ASE_1"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("case_dir", nargs="?", default=str(DEFAULT_CASE))
    parser.add_argument("--row", type=int, default=0, help="hotspot to go to")
    parser.add_argument("--out", default=str(OUT))
    args = parser.parse_args()

    import imageio.v3 as iio
    import napari
    from qtpy.QtWidgets import QApplication

    from bratseg.checkpoint import load_checkpoint
    from bratseg.inference import InferenceOptions, predict_case
    from bratseg.io import load_case
    from bratseg.review import ModelInfo, ReviewSession
    from bratseg.zoo import default_model_names, default_postprocess, resolve_model
    from napari_brats._layers import case_layer_data, labels_layer_data
    from napari_brats._state import viewer_state
    from napari_brats._widgets.hotspots import HotspotsWidget

    case = load_case(args.case_dir)
    names = default_model_names()
    models = [load_checkpoint(resolve_model(n)) for n in names]
    prediction = predict_case(
        case, models, InferenceOptions(device="cpu", postprocess=default_postprocess(models[0]))
    )
    viewer = napari.Viewer(show=True)
    viewer.window._qt_window.resize(1500, 900)
    for data, kwargs, kind in case_layer_data(case):
        getattr(viewer, f"add_{kind}")(data, **kwargs)
    session = ReviewSession.from_prediction(case, prediction, ModelInfo(list(names), [], []))
    data, kwargs, _ = labels_layer_data(
        session.labels,
        case,
        session.convention,
        name=f"{case.case_id} segmentation",
        role="segmentation",
    )
    layer = viewer.add_labels(data, **kwargs)
    widget = HotspotsWidget(viewer)
    viewer.window.add_dock_widget(widget, name="Review hotspots", area="right")
    viewer_state(viewer).set_session(session, layer)
    widget.layer_check.setChecked(True)
    widget.go_to(args.row)
    viewer.scene.camera.zoom *= 1.6
    for _ in range(20):
        QApplication.processEvents()
    iio.imwrite(args.out, viewer.screenshot(canvas_only=False, flash=False))
    print(f"wrote {args.out}: {widget.assessment.reasons}")
    viewer.close()


if __name__ == "__main__":
    main()
