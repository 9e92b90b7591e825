"""The plugin's docks end to end on a real shared case, with a tiny random-weight model.

Open a case through the reader, segment it in the background worker, move a postprocessing
slider, paint and check the paint survives, report, export for retraining and read it back,
then train in a separate process and stop it. Set ``NAPARI_BRATS_SCREENSHOTS=1`` to also save
pictures of each dock into docs/images/.
"""

from __future__ import annotations

import csv
import importlib.util
import json
import os
from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage

pytest.importorskip("napari")
pytest.importorskip("pytestqt")

from gui_case import CASE, DATA, NEEDS_CASE, ROOT, WORKER_TIMEOUT_MS  # noqa: E402

SCREENSHOTS = ROOT / "docs" / "images"
pytestmark = NEEDS_CASE

TINY_ARCH = "nnunet"


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory) -> Path:
    import torch

    from bratseg.checkpoint import save_checkpoint
    from bratseg.models import build_model, get_architecture

    torch.manual_seed(0)
    model = build_model(TINY_ARCH, preset="tiny")
    spec = get_architecture(TINY_ARCH)
    path = tmp_path_factory.mktemp("models") / "tiny-nnunet.pt"
    save_checkpoint(
        path,
        model,
        arch=TINY_ARCH,
        config=getattr(model, "config", None),
        postprocess=dict(spec.default_postprocess),
        preprocess={},
        provenance={"note": "random weights for tests"},
    )
    return path


@pytest.fixture(autouse=True)
def _few_threads(monkeypatch, tmp_path):
    import torch

    torch.set_num_threads(2)
    monkeypatch.setenv("BRATSEG_HOME", str(tmp_path / "home"))


def _screenshot(widget, name: str) -> None:
    if os.environ.get("NAPARI_BRATS_SCREENSHOTS"):
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        widget.grab().save(str(SCREENSHOTS / f"{name}.png"))


def _segment(viewer, qtbot, checkpoint):
    from napari_brats._state import viewer_state
    from napari_brats._widgets.segment import SegmentWidget

    segment = SegmentWidget(viewer)
    viewer.window.add_dock_widget(segment, name="Segment")
    assert viewer.open(str(CASE), plugin="napari-brats")
    assert "Brats18_2013_2_1" in segment.case_label.text()
    segment.set_only_checked([checkpoint])
    segment.device_combo.setCurrentText("cpu")
    assert "CPU" in segment.device_label.text()
    worker = segment.run()
    assert worker is not None
    state = viewer_state(viewer)
    qtbot.waitUntil(lambda: segment.worker is None, timeout=WORKER_TIMEOUT_MS)
    assert segment.last_error is None, segment.last_error
    assert state.session is not None
    return segment, state


@pytest.mark.slow
def test_segment_tune_correct_report_export(make_napari_viewer, qtbot, tiny_checkpoint, tmp_path):
    from bratseg.io import find_case_files, load_label_map
    from bratseg.labels import LABEL_VALUES
    from bratseg.postprocess import postprocess
    from napari_brats._widgets.correction import CorrectionWidget
    from napari_brats._widgets.export import ExportWidget
    from napari_brats._widgets.postprocess import PostprocessWidget
    from napari_brats._widgets.report import ReportWidget

    viewer = make_napari_viewer()
    post = PostprocessWidget(viewer)
    correction = CorrectionWidget(viewer)
    report = ReportWidget(viewer)
    export = ExportWidget(viewer)
    for widget, name in (
        (post, "Postprocessing"),
        (correction, "Correction"),
        (report, "Report"),
        (export, "Export"),
    ):
        viewer.window.add_dock_widget(widget, name=name)
    segment, state = _segment(viewer, qtbot, tiny_checkpoint)
    session = state.session

    # result: a uint8 labels layer (Z, Y, X view of the session map) with NCR/ED/ET colours
    layer = viewer.layers["Brats18_2013_2_1 segmentation"]
    assert layer.data.dtype == np.uint8 and layer.data.shape == (155, 240, 240)
    assert np.shares_memory(layer.data, session.labels)
    assert set(np.unique(layer.data)) <= {0, 1, 2, 4}
    assert "P(WT) whole tumour" in viewer.layers
    # the new result is seen at once: the slider stands on the slice with the most tumour
    axis = viewer.dims.not_displayed[0]
    area = (layer.data > 0).sum(axis=tuple(a for a in range(3) if a != axis))
    assert area.max() > 0 and area[viewer.dims.current_step[axis]] == area.max()
    _screenshot(segment, "segment_dock")

    # move a slider: labels recomputed from cached probabilities, equal to the engine's output
    before = session.labels.copy()
    wt = session.region_probs[0].astype(np.float32)
    target = 0.99 if (wt >= 0.45).any() else 0.01
    post.controls["wt_threshold"].value = target
    qtbot.waitUntil(lambda: abs(session.config.wt_threshold - target) < 1e-6, timeout=5000)
    assert not np.array_equal(before, session.labels)
    expected = postprocess(session.region_probs, session.config, convention=session.convention)
    np.testing.assert_array_equal(session.labels, expected)
    assert post.volumes["wt"] == pytest.approx((session.labels > 0).sum() / 1000.0)
    # drop tumour islands: only the largest component is left, as the engine computes it
    post.controls["min_island_fraction"].value = 1.0
    qtbot.waitUntil(lambda: session.config.min_island_fraction == 1.0, timeout=5000)
    expected = postprocess(session.region_probs, session.config, convention=session.convention)
    np.testing.assert_array_equal(session.labels, expected)
    assert ndimage.label(session.labels > 0, structure=np.ones((3, 3, 3)))[1] <= 1
    post.controls["min_island_fraction"].value = 0.0
    qtbot.waitUntil(lambda: session.config.min_island_fraction == 0.0, timeout=5000)
    # tumour parts without a core: the checkbox drives the engine's rule
    post.controls["wt_needs_core"].value = not session.config.wt_needs_core
    wanted = post.controls["wt_needs_core"].value
    qtbot.waitUntil(lambda: session.config.wt_needs_core == wanted, timeout=5000)
    expected = postprocess(session.region_probs, session.config, convention=session.convention)
    np.testing.assert_array_equal(session.labels, expected)
    post.controls["wt_needs_core"].value = not wanted
    qtbot.waitUntil(lambda: session.config.wt_needs_core != wanted, timeout=5000)
    # the sparse-ET decision: its two sliders drive the engine's rule
    post.controls["et_sparse_threshold"].value = 0.97
    post.controls["et_sparse_fraction"].value = 1.0
    qtbot.waitUntil(
        lambda: (
            (session.config.et_sparse_fraction, session.config.et_sparse_threshold) == (1.0, 0.97)
        ),
        timeout=5000,
    )
    expected = postprocess(session.region_probs, session.config, convention=session.convention)
    np.testing.assert_array_equal(session.labels, expected)
    post.controls["et_sparse_fraction"].value = 0.0
    qtbot.waitUntil(lambda: session.config.et_sparse_fraction == 0.0, timeout=5000)

    # paint ET (3D brush) in a known spot, move a slider, the paint survives
    et, ed = LABEL_VALUES["2021"]["et"], LABEL_VALUES["2021"]["ed"]
    correction.brush.setValue(4)
    correction.paint_tissue("et")
    assert layer.mode == "paint" and layer.selected_label == et
    snapshot = layer.data.copy()
    layer.paint((77, 120, 120), et)
    painted = layer.data != snapshot
    assert painted.sum() > 10 and (layer.data[painted] == et).all()
    post.controls["wt_threshold"].value = 0.30
    post.controls["et_threshold"].value = 0.95
    post.apply_now()
    assert session.config.et_threshold == pytest.approx(0.95)
    assert (layer.data[painted] == et).all(), "manual paint lost after a slider move"
    untouched = ~painted.transpose(2, 1, 0)
    fresh = postprocess(session.region_probs, session.config, convention="2021")
    np.testing.assert_array_equal(session.labels[untouched], fresh[untouched])
    assert "kept" in post.timing_label.text()

    # lock other labels: painting ED over the ET blob leaves it ET (napari preserve_labels)
    correction.set_lock(True)
    assert layer.preserve_labels
    layer.paint((77, 120, 120), ed)
    assert (layer.data[painted] == et).all()
    correction.set_lock(False)
    # undo is napari's own
    layer.paint((77, 120, 120), ed)
    assert layer.data[77, 120, 120] == ed
    layer.undo()
    assert (layer.data[painted] == et).all()
    _screenshot(correction, "correction_dock")
    _screenshot(post, "postprocess_dock")

    # report: AI proposal vs corrected
    result = report.refresh()
    voxels = int(painted.sum())
    rows = result["rows"]
    assert rows["et"]["corrected_ml"] >= voxels / 1000.0 - 1e-6
    assert rows["et"]["delta_ml"] > 0 and rows["et"]["lesions"] >= 1
    assert rows["wt"]["dice_vs_reference"] is not None
    report.export(tmp_path / "report.csv")
    report.export(tmp_path / "report.json")
    with (tmp_path / "report.csv").open() as handle:
        table = list(csv.DictReader(handle))
    assert [r["structure"] for r in table] == ["NCR", "ED", "ET", "TC", "WT"]
    assert json.loads((tmp_path / "report.json").read_text())["rows"]["et"]["delta_ml"] > 0
    _screenshot(report, "report_dock")

    # export for retraining, read back
    dataset = tmp_path / "dataset"
    case_dir = export.export(dataset, overwrite=None)
    assert case_dir == dataset / "Brats18_2013_2_1"
    files = find_case_files(case_dir)
    assert files["seg"].name == "Brats18_2013_2_1_seg.nii.gz"
    seg = load_label_map(files["seg"])
    source = load_label_map(CASE / "Brats18_2013_2_1_seg.nii.gz")
    np.testing.assert_allclose(seg.affine, source.affine)
    assert seg.data.shape == source.data.shape
    np.testing.assert_array_equal(seg.data, session.labels)
    ai = load_label_map(case_dir / "Brats18_2013_2_1_aiproposal.nii.gz")
    np.testing.assert_array_equal(ai.data, session.proposal)
    provenance = json.loads((case_dir / "Brats18_2013_2_1_provenance.json").read_text())
    assert (
        provenance["model"]["sha256"][0] == session.model.sha256[0]
        and len(session.model.sha256[0]) == 64
    )
    assert provenance["postprocess"]["et_threshold"] == pytest.approx(0.95)
    assert provenance["edited_voxels"]["et"]["added"] > 0
    # never overwritten without asking
    stamp = files["seg"].stat().st_mtime_ns
    assert export.export(dataset, overwrite=False) is None
    assert files["seg"].stat().st_mtime_ns == stamp and "exists" in export.status.text()
    assert not [p for p in dataset.iterdir() if p.name.startswith(".")]
    _screenshot(export, "export_dock")
    if os.environ.get("NAPARI_BRATS_SCREENSHOTS"):
        viewer.layers["T1Gd"].visible = True
        viewer.dims.set_point(0, 77)
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        viewer.window._qt_window.grab().save(str(SCREENSHOTS / "viewer.png"))

    # DICOM layout: SEG of the session's labels, kept unless asked
    if importlib.util.find_spec("highdicom") is not None:
        import pydicom

        from bratseg.report.dicom.seg import read_seg_labels
        from napari_brats._widgets.export import DICOM_LAYOUT

        export.layout_combo.setCurrentText(DICOM_LAYOUT)
        dicom_dir = export.export(tmp_path / "dicom", overwrite=None)
        assert dicom_dir == tmp_path / "dicom" / "Brats18_2013_2_1_dicom"
        source = [pydicom.dcmread(p) for p in sorted((dicom_dir / "SOURCE_T1GD").iterdir())]
        seg = pydicom.dcmread(dicom_dir / "SEG.dcm")
        np.testing.assert_array_equal(
            read_seg_labels(seg, source, session.convention), session.labels
        )
        assert export.export(tmp_path / "dicom", overwrite=False) is None
        assert "exists" in export.status.text()


def test_bad_case_shows_one_line_error(make_napari_viewer, tmp_path):
    from napari_brats._widgets.segment import SegmentWidget

    viewer = make_napari_viewer()
    segment = SegmentWidget(viewer)
    (tmp_path / "empty_case").mkdir()
    assert not segment.open_case(tmp_path / "empty_case")
    assert (
        segment.last_error and "\n" not in segment.last_error and "empty_case" in segment.last_error
    )
    assert len(viewer.layers) == 0
    assert segment.run() is None and "no case" in segment.last_error


def _segment_dock_on_case(make_napari_viewer, checkpoint: Path):
    """A viewer with the default case open and a Segment dock set to run ``checkpoint`` on CPU.

    Returns:
        ``(viewer, segment_widget, number_of_layers_before_segmenting)``.
    """
    from napari_brats._widgets.segment import SegmentWidget

    viewer = make_napari_viewer()
    segment = SegmentWidget(viewer)
    viewer.open(str(CASE), plugin="napari-brats")
    n_layers = len(viewer.layers)
    segment.set_only_checked([checkpoint])
    segment.device_combo.setCurrentText("cpu")
    return viewer, segment, n_layers


def test_cancel_and_bad_checkpoint_leave_viewer_unchanged(
    make_napari_viewer, qtbot, tiny_checkpoint, tmp_path
):
    from napari_brats._state import viewer_state

    viewer, segment, n_layers = _segment_dock_on_case(make_napari_viewer, tiny_checkpoint)
    worker = segment.run()
    worker.yielded.connect(lambda _progress: segment.cancel())
    qtbot.waitUntil(lambda: segment.worker is None, timeout=WORKER_TIMEOUT_MS)
    assert "cancelled" in segment.status.text()
    assert viewer_state(viewer).session is None and len(viewer.layers) == n_layers
    assert segment.run_button.isEnabled()

    # a broken checkpoint: one-line error in the dock, nothing added
    broken = tmp_path / "broken.pt"
    broken.write_bytes(b"not a checkpoint")
    segment.set_only_checked([broken])
    segment.run()
    qtbot.waitUntil(lambda: segment.worker is None, timeout=WORKER_TIMEOUT_MS)
    assert (
        segment.last_error and "broken.pt" in segment.last_error and "\n" not in segment.last_error
    )
    assert viewer_state(viewer).session is None and len(viewer.layers) == n_layers


def test_stop_inside_inference_reports_cancelled_not_failed(
    make_napari_viewer, qtbot, tiny_checkpoint
):
    """``Cancelled`` raised by the engine reaches the dock through ``errored`` as a cancel."""
    from napari_brats._state import viewer_state

    viewer, segment, n_layers = _segment_dock_on_case(make_napari_viewer, tiny_checkpoint)
    worker = segment.run()
    errors: list[BaseException] = []
    worker.errored.connect(errors.append)
    worker.yielded.connect(lambda _progress: segment._stop.set())  # engine stops, worker not quit
    qtbot.waitUntil(lambda: segment.worker is None, timeout=WORKER_TIMEOUT_MS)
    assert [type(e).__name__ for e in errors] == ["Cancelled"]
    assert segment.status.text() == "cancelled — nothing changed"
    assert segment.last_error is None
    assert viewer_state(viewer).session is None and len(viewer.layers) == n_layers
    assert segment.run_button.isEnabled()


@pytest.mark.slow
def test_training_panel_streams_and_stops(make_napari_viewer, qtbot, tmp_path):
    from bratseg.checkpoint import load_checkpoint
    from bratseg.zoo import list_models
    from napari_brats._widgets.segment import SegmentWidget
    from napari_brats._widgets.training import TrainingWidget

    dataset = tmp_path / "dataset"
    dataset.mkdir()
    for name in ("Brats18_2013_2_1", "Brats18_2013_3_1"):
        (dataset / name).symlink_to((DATA / "brats2018" / name).resolve())
    viewer = make_napari_viewer()
    segment = SegmentWidget(viewer)
    panel = TrainingWidget(viewer)
    viewer.window.add_dock_widget(panel, name="Training")
    panel.add_dataset(dataset)
    panel.set_start_from("arch:nnunet")
    panel.preset_combo.setCurrentText("tiny")
    panel.epochs.setValue(50)
    panel.device_combo.setCurrentText("cpu")
    panel.name_edit.setText("my-finetuned")
    panel.extra_edit.setText(
        f"--steps-per-epoch 2 --patch 32 32 32 --batch-size 1 --max-val-cases 1 "
        f"--num-workers 0 --cache-dir {tmp_path / 'cache'}"
    )
    assert panel.start(tmp_path / "run")
    qtbot.waitUntil(
        lambda: any(e.get("event") == "step" for e in panel.events) or not panel.running,
        timeout=WORKER_TIMEOUT_MS,
    )
    assert panel.running, panel.error_text
    assert panel.plot.losses and panel.progress.maximum() == 100
    panel.stop()
    assert (tmp_path / "run" / "STOP").exists()
    qtbot.waitUntil(lambda: not panel.running, timeout=WORKER_TIMEOUT_MS)
    done = [e for e in panel.events if e.get("event") == "done"]
    assert done and done[0]["reason"] != "completed", panel.error_text
    loaded = load_checkpoint(done[0]["checkpoint"])
    assert loaded.meta["arch"] == "nnunet"
    assert panel.installed is not None and panel.installed.name == "my-finetuned.pt"
    assert "my-finetuned" in [m.name for m in list_models()]
    listed = [segment.model_list.item(i).text() for i in range(segment.model_list.count())]
    assert any(text.startswith("my-finetuned") for text in listed)
    _screenshot(panel, "training_dock")


@pytest.mark.slow
def test_training_panel_shows_trainer_errors(make_napari_viewer, qtbot, tmp_path):
    from napari_brats._widgets.training import TrainingWidget

    viewer = make_napari_viewer()
    panel = TrainingWidget(viewer)
    panel.add_dataset(tmp_path / "no_such_folder")
    panel.set_start_from("arch:nnunet")
    assert panel.start(tmp_path / "run")
    qtbot.waitUntil(lambda: not panel.running, timeout=WORKER_TIMEOUT_MS)
    assert "no_such_folder" in panel.errors.toPlainText()
    assert panel.installed is None


def test_view_command_opens_docks_and_case(qtbot, capsys, make_napari_viewer):
    from bratseg.cli.main import main
    from napari_brats._view_command import DOCKS, open_viewer

    assert main(["view", str(DATA / "no_such_case")]) == 2
    assert "no_such_case" in capsys.readouterr().err
    viewer, docks = open_viewer(str(CASE), show=False, viewer=make_napari_viewer())
    assert set(docks) == set(DOCKS) and all(w is not None for w in docks.values())
    assert [layer.name for layer in viewer.layers][:4] == ["T1", "T1Gd", "T2", "FLAIR"]
    assert "Brats18_2013_2_1" in docks["Segment"].case_label.text()
    from bratseg.zoo import bundled_models

    models = docks["Segment"].model_list
    tips = {
        models.item(i).text().split()[0]: models.item(i).toolTip() for i in range(models.count())
    }
    for entry in bundled_models():  # hovering a bundled model shows its card
        assert "Dice:" in tips[entry.name] and "validation:" in tips[entry.name], tips
    from bratseg.zoo import default_model_names, resolve_model

    # one click segments with the default: the models of weights/default.txt are ticked, in
    # that order (the first one's postprocessing applies, as in `predict` without --model)
    assert models.selected_paths() == [str(resolve_model(n)) for n in default_model_names()]
