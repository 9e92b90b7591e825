"""One needs-review assessment: the Hotspots dock, the Worklist row (dock table and engine row) and
the report (Report dock and ``bratseg report`` on the saved session) show the same reasons for the
same case, after the model run and again after the reviewer's edits. Runs on the packaged case."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("napari")
pytest.importorskip("pytestqt")

pytestmark = [pytest.mark.gui, pytest.mark.usefixtures("own_home")]


def _uncertain_prediction(case):
    """A ball of tumour at 0.6 probability in the middle of the brain: the entropy rules fire."""
    from bratseg.inference import Prediction
    from bratseg.postprocess import PostprocessConfig

    shape = case.image.shape[1:]
    grid = np.indices(shape).astype(np.float32)
    centre = np.array(shape, dtype=np.float32)[:, None, None, None] / 2
    ball = ((grid - centre) ** 2).sum(axis=0) < 15.0**2
    probs = np.zeros((3, *shape), dtype=np.float16)
    probs[:, ball] = 0.6
    labels = np.where(ball, 4, 0).astype(np.uint8)  # all of it enhancing (2021 convention)
    return Prediction(
        region_probs=probs,
        labels=labels,
        device="cpu",
        seconds=0.0,
        models=["synthetic"],
        postprocess=PostprocessConfig(),
        convention="2021",
    )


def _shown_everywhere(state, hotspots, report_dock, folder):
    """The reasons of the dock, the worklist row, its table cell, the Report dock and the CLI."""
    from bratseg.cli.main import main
    from bratseg.review.assessment import NEEDS_REVIEW_NOTE
    from bratseg.review.worklist import Worklist
    from napari_brats._widgets._worklist_table import NOTE_COLUMN, row_cells

    dock = list(hotspots.refresh().reasons)
    assert hotspots.flag.text().count("<li>") == len(dock)
    state.save_now()
    [row] = Worklist(folder, state.store).rows
    note = row_cells(row)[NOTE_COLUMN]
    report = report_dock.refresh()
    assert all(n.startswith(NEEDS_REVIEW_NOTE) for n in report["notes"])  # no ET-rule note here
    assert all(n in report_dock.summary.text() for n in report["notes"])
    notes = [n.removeprefix(NEEDS_REVIEW_NOTE) for n in report["notes"]]
    saved = state.store.get(state.key)
    record = saved.folder / "session.json"
    assert main(["report", str(folder / row.case_id), "--provenance", str(record)]) == 0
    return dock, row.reasons, note, notes


def test_the_dock_the_worklist_and_the_report_give_the_same_reasons(
    make_napari_viewer, tmp_path, capsys
) -> None:
    from bratseg.review import ModelInfo, ReviewSession
    from bratseg.review.assessment import NEEDS_REVIEW_NOTE
    from bratseg.sample import write_sample
    from napari_brats._reader import read_case
    from napari_brats._show import show_session
    from napari_brats._state import viewer_state
    from napari_brats._widgets.hotspots import HotspotsWidget
    from napari_brats._widgets.report import ReportWidget

    folder = tmp_path / "cases"
    case_dir = write_sample(folder)
    viewer = make_napari_viewer()
    state = viewer_state(viewer)
    layer_data = read_case(str(case_dir))
    case = state.adopt(layer_data)
    for data, kwargs, kind in layer_data:
        getattr(viewer, f"add_{kind}")(data, **kwargs)
    session = ReviewSession.from_prediction(
        case, _uncertain_prediction(case), ModelInfo(["synthetic"], [], [])
    )
    show_session(viewer, session)
    hotspots, report_dock = HotspotsWidget(viewer), ReportWidget(viewer)
    for edit in ("model run", "tumour erased by hand"):
        if edit != "model run":
            session.labels[:] = 0
            session.record_edits()
            state.commit()
        capsys.readouterr()
        dock, row, note, notes = _shown_everywhere(state, hotspots, report_dock, folder)
        cli = [
            line.split(NEEDS_REVIEW_NOTE, 1)[1].strip()
            for line in capsys.readouterr().out.splitlines()
            if NEEDS_REVIEW_NOTE in line
        ]
        assert dock, f"{edit}: the rules should fire on this case"
        assert row == dock, edit
        assert note == "; ".join(dock), edit
        assert notes == dock, edit
        assert cli == dock, edit
        assert (
            json.loads((state.store.get(state.key).folder / "session.json").read_text())[
                "assessment"
            ]["reasons"]
            == dock
        )
