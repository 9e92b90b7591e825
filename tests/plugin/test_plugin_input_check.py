"""The Segment dock refuses raw scans (skull, 5.5 mm slices) with the engine's input check: an
error naming what was found and the way out (``napari-brats prepare``), and no run."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("napari")
pytest.importorskip("pytestqt")

pytestmark = [pytest.mark.gui, pytest.mark.usefixtures("own_home")]


@pytest.fixture()
def raw_on_one_grid(raw_clinical_map, tmp_path: Path) -> Path:
    """The raw series resampled onto the T1Gd grid: only the input check can refuse them."""
    import nibabel as nib
    from nibabel.processing import resample_from_to

    folder = tmp_path / "raw"
    folder.mkdir()
    ref = nib.load(raw_clinical_map["t1ce"])
    for key, path in raw_clinical_map.items():
        img = nib.load(path)
        img = img if key == "t1ce" else resample_from_to(img, ref, order=1)
        data = np.asarray(img.dataobj, np.float32)
        nib.save(nib.Nifti1Image(data, ref.affine), folder / f"raw_{key}.nii.gz")
    return folder


def test_segment_dock_refuses_raw_scans(make_napari_viewer, standin, raw_on_one_grid, tmp_path):
    from napari_brats._widgets.segment import SegmentWidget

    model = standin.save_standin(tmp_path / "standin-regions.pt", "regions")
    viewer = make_napari_viewer()
    segment = SegmentWidget(viewer)
    viewer.window.add_dock_widget(segment, name="Segment")
    assert viewer.open(str(raw_on_one_grid), plugin="napari-brats")
    segment.set_only_checked([model])
    assert segment.run() is None
    assert segment.worker is None
    assert "not BraTS-ready: not skull-stripped" in segment.last_error
    assert "napari-brats prepare" in segment.last_error
