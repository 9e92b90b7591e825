"""``napari-brats view [CASE_DIR]``: open napari with the plugin's docks and a case loaded.

The plugin registers this module under the ``bratseg.commands`` entry point, so the engine's
command line offers it without importing napari itself; napari (and Qt) are imported inside
:func:`run` only, so ``napari-brats --help`` works without a GUI.
Without ``CASE_DIR`` the sample case shipped in the package is opened (see
:mod:`bratseg.sample`); failing that, the viewer opens empty with the docks ready.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from bratseg.errors import BratsInputError

logger = logging.getLogger(__name__)

#: Docks opened by ``view``: (manifest widget name, tabbed with the previous one).
DOCKS = (
    "Segment",
    "Postprocessing",
    "Correction",
    "Review hotspots",
    "Report",
    "Export for retraining",
    "Training",
)
PLUGIN = "napari-brats"


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``view`` command."""
    parser = subparsers.add_parser(
        "view",
        help="open napari with the segmentation docks and a case loaded",
        description="Open the napari viewer with the napari-brats docks (Segment, Postprocessing, "
        "Correction, Report, Export for retraining, Training) and load CASE_DIR, or the sample "
        "case when none is given ($NAPARI_BRATS_SAMPLE or ../shared/data next to a checkout).",
    )
    parser.add_argument("case_dir", metavar="CASE_DIR", nargs="?", help="case folder to open")
    parser.add_argument(
        "--model",
        action="append",
        metavar="NAME_OR_CHECKPOINT",
        help="tick this model in the Segment dock (repeat for an ensemble)",
    )
    parser.add_argument(
        "--segment", action="store_true", help="run the segmentation as soon as the case is open"
    )
    parser.add_argument(
        "--worklist",
        metavar="FOLDER",
        help="also open the Worklist dock on a folder of case folders (status, segment all, sign-off)",
    )
    parser.add_argument(
        "--followup",
        metavar="FOLLOWUP_DIR",
        help="follow-up view: CASE_DIR is the baseline; both are shown side by side, linked, "
        "the follow-up registered onto the baseline (labels: each folder's seg, as `compare`)",
    )
    parser.set_defaults(func=run)


def _case_path(case_dir: str | None) -> Path | None:
    if case_dir:
        path = Path(case_dir)
        if not path.exists():
            raise BratsInputError("case folder not found", path)
        return path
    try:
        from bratseg.sample import sample_case_dir

        return sample_case_dir()
    except BratsInputError as exc:
        logger.warning("%s", exc)
        return None


def open_viewer(
    case_dir: str | None = None,
    models: list[str] | None = None,
    show: bool = True,
    worklist: str | None = None,
    viewer=None,
):
    """Create the viewer, add the docks, load the case; returns ``(viewer, docks)``.

    With ``worklist`` (a folder of case folders) the Worklist dock is added too, on that folder.
    ``viewer``: an existing viewer to fill instead of a new one (e.g. a test fixture's).
    """
    import napari

    if worklist is not None and not Path(worklist).is_dir():
        raise BratsInputError("worklist folder not found", worklist)

    path = _case_path(case_dir)
    if path is not None:
        from bratseg.io import find_case_files

        find_case_files(path if path.is_dir() else path.parent)  # one-line error before any window
    if viewer is None:
        viewer = napari.Viewer(title="napari-brats", show=show)
    docks = {}
    first = None
    for name in DOCKS:
        dock, widget = viewer.window.add_plugin_dock_widget(PLUGIN, name, tabify=first is not None)
        docks[name] = widget
        first = first or dock
    if path is not None:
        viewer.open(str(path), plugin=PLUGIN)
    if models:
        from bratseg.zoo import resolve_model

        docks["Segment"].set_only_checked([resolve_model(m) for m in models])
    if worklist is not None:
        _, docks["Worklist"] = viewer.window.add_plugin_dock_widget(
            PLUGIN, "Worklist", tabify=False
        )
        docks["Worklist"].set_folder(worklist)
        if models:
            docks["Worklist"].model_list.set_only_checked([resolve_model(m) for m in models])
    if first is not None:
        first.raise_()
    return viewer, docks


def run(args: argparse.Namespace) -> int:
    """Open the viewer and block until it is closed."""
    try:
        import napari
    except ImportError as exc:  # the GUI extra is not installed
        raise BratsInputError(
            f"napari is not installed ({exc}); install the GUI extra: pip install 'napari-brats[gui]'"
        ) from exc
    if getattr(args, "followup", None):
        from napari_brats._followup import open_followup

        if not args.case_dir:
            raise BratsInputError("--followup needs the baseline case folder as CASE_DIR")
        viewer = napari.Viewer(title="napari-brats follow-up")
        open_followup(viewer, str(_case_path(args.case_dir)), str(_case_path(args.followup)))
        napari.run()
        return 0
    viewer, docks = open_viewer(args.case_dir, args.model, worklist=getattr(args, "worklist", None))
    if args.segment and docks.get("Segment") is not None:
        docks["Segment"].run()
    napari.run()
    return 0
