"""Opening a case with "Align series: register" runs in a worker thread: the viewer stays live,
the progress bar moves series by series, Cancel stops before the next series (nothing is added),
and a finished registration shows the same layers and quality lines as the engine's load.

The case is the packaged BraTS case (skull-stripped, cropped to its brain box) taken at every
second voxel (2 mm, so that it passes the input check and each registration stays quick) whose T2
and FLAIR contents were moved by 5 degrees and 4 mm while their headers stayed the same: motion
between series, as registration is for.
"""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

pytest.importorskip("napari")
pytest.importorskip("pytestqt")
pytest.importorskip("SimpleITK")

from gui_case import NEEDS_SAMPLE, SAMPLE_CASE, WORKER_TIMEOUT_MS  # noqa: E402

pytestmark = [NEEDS_SAMPLE, pytest.mark.gui, pytest.mark.usefixtures("own_home")]

#: Every second voxel of the case: a 2 mm grid over its full field of view.
BOX = (slice(None, None, 2), slice(None, None, 2), slice(None, None, 2))


def _moved(img: nib.Nifti1Image) -> nib.Nifti1Image:
    """The content moved by a rigid motion (5 degrees about the axial axis, 4 mm), same header."""
    from nibabel.processing import resample_from_to

    centre = img.affine @ np.r_[np.array(img.shape[:3]) / 2, 1]
    a = np.radians(5)
    motion = np.eye(4)
    motion[:2, :2] = [[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]]
    motion[:3, 3] = centre[:3] - motion[:3, :3] @ centre[:3] + np.array([4.0, 0.0, 0.0])
    frame = nib.Nifti1Image(np.asarray(img.dataobj, dtype=np.float32), motion @ img.affine)
    out = resample_from_to(frame, (img.shape[:3], img.affine), order=1)
    return nib.Nifti1Image(np.asarray(out.dataobj, dtype=np.float32), img.affine, img.header)


@pytest.fixture(scope="module")
def moved_case(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("moved") / SAMPLE_CASE.name
    out.mkdir()
    for f in sorted(SAMPLE_CASE.glob("*.nii.gz")):
        channel = f.name[len(SAMPLE_CASE.name) + 1 :].split(".")[0]
        if channel == "seg":
            continue
        img = nib.load(f)
        box = img.slicer[BOX]
        box = nib.Nifti1Image(np.asarray(box.dataobj, dtype=np.float32), box.affine)
        nib.save(_moved(box) if channel in ("t2", "flair") else box, out / f.name)
    return out


def _dock(make_napari_viewer):
    from napari_brats._widgets.segment import SegmentWidget

    viewer = make_napari_viewer()
    segment = SegmentWidget(viewer)
    viewer.window.add_dock_widget(segment, name="Segment")
    segment.align_combo.setCurrentText("register")
    return viewer, segment


def test_registration_runs_in_a_worker_and_shows_the_aligned_case(
    make_napari_viewer, qtbot, moved_case
):
    from bratseg.io import load_case

    viewer, segment = _dock(make_napari_viewer)
    steps: list[int] = []
    assert segment.open_case(moved_case)
    assert segment.worker is not None, "registration ran on the GUI thread"
    segment.worker.yielded.connect(lambda p: steps.append(p.step))
    assert not segment.run_button.isEnabled() and not segment.open_button.isEnabled()
    assert segment.cancel_button.isEnabled()
    qtbot.waitUntil(lambda: segment.worker is None, timeout=WORKER_TIMEOUT_MS)
    assert segment.last_error is None, segment.last_error
    assert segment.run_button.isEnabled() and not segment.cancel_button.isEnabled()
    assert {layer.name for layer in viewer.layers} >= {"T1", "T1Gd", "T2", "FLAIR"}
    shown = segment.state.case_of(viewer.layers["T1Gd"])
    reports = {r.channel: r for r in shown.alignment}
    assert set(reports) == {"T1", "T2", "FLAIR"}
    assert 3.0 <= reports["FLAIR"].rotation_deg <= 7.0, reports["FLAIR"].line()
    assert "registered to T1Gd" in segment.status.text()
    assert steps and steps == sorted(steps) and max(steps) <= 2
    engine = {r.channel: r for r in load_case(moved_case, align="register").alignment}
    for channel, report in reports.items():  # seeded sampling: the same pair, the same motion
        assert abs(report.rotation_deg - engine[channel].rotation_deg) < 0.01
        assert abs(report.translation_mm - engine[channel].translation_mm) < 0.01


def test_cancel_stops_before_the_next_series_and_adds_nothing(
    make_napari_viewer, qtbot, moved_case
):
    viewer, segment = _dock(make_napari_viewer)
    assert segment.open_case(moved_case)
    segment.cancel()
    qtbot.waitUntil(lambda: segment.worker is None, timeout=WORKER_TIMEOUT_MS)
    assert len(viewer.layers) == 0
    assert segment.status.text().startswith("cancelled")
    assert segment.run_button.isEnabled() and segment.open_button.isEnabled()


def test_a_broken_case_is_reported_not_half_opened(make_napari_viewer, qtbot, moved_case, tmp_path):
    broken = tmp_path / moved_case.name
    broken.mkdir()
    for f in moved_case.glob("*.nii.gz"):  # neither T2 nor FLAIR: nothing can stand in
        if not f.name.endswith(("_t2.nii.gz", "_flair.nii.gz")):
            (broken / f.name).write_bytes(f.read_bytes())
    viewer, segment = _dock(make_napari_viewer)
    segment.open_case(broken)
    qtbot.waitUntil(lambda: segment.worker is None, timeout=WORKER_TIMEOUT_MS)
    assert len(viewer.layers) == 0
    assert segment.last_error is not None and "T2" in segment.last_error
