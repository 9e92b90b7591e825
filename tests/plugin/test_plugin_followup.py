"""The follow-up view on a synthetic pair: a real case and a moved copy of it whose enhancing tumour
grew by a known number of voxels (there is no real longitudinal pair with labels here).

Both time points end up on the baseline grid, in two grid panels that share one camera and one
slice position; the overlay carries the known change and the suggestion with its rule.
``NAPARI_BRATS_SCREENSHOTS=1`` writes ``docs/images/followup-view.png``.
"""

from __future__ import annotations

import os
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from scipy import ndimage

from bratseg.metrics import dice

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOT = ROOT / "docs" / "images" / "followup-view.png"
CHANNELS = ("t1", "t1ce", "t2", "flair")
ET, ED = 4, 2


def _moved(deg_z: float, shift: tuple[float, float, float]) -> np.ndarray:
    a = np.radians(deg_z)
    out = np.eye(4)
    out[:2, :2] = [[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]]
    out[:3, 3] = shift
    return out


def _write_case(src: Path, out: Path, seg: np.ndarray, motion: np.ndarray) -> Path:
    out.mkdir(parents=True)
    for channel in (*CHANNELS, "seg"):
        img = nib.load(src / f"{src.name}_{channel}.nii.gz")
        data = seg if channel == "seg" else np.asarray(img.dataobj)
        nib.save(nib.Nifti1Image(data, motion @ img.affine), out / f"{out.name}_{channel}.nii.gz")
    return out


@pytest.fixture(scope="module")
def pair(brats2018_case_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    """(baseline dir, follow-up dir, baseline seg, grown seg): ET grown into the edema by 3 voxels,
    the follow-up's affine turned by 5 degrees and shifted."""
    src = brats2018_case_dir
    seg = np.asarray(nib.load(src / f"{src.name}_seg.nii.gz").dataobj).astype(np.uint8)
    grown = seg.copy()
    grown[ndimage.binary_dilation(seg == ET, iterations=3) & (seg == ED)] = ET
    root = tmp_path_factory.mktemp("pair")
    baseline = _write_case(src, root / "Base_1", seg, np.eye(4))
    followup = _write_case(src, root / "Follow_1", grown, _moved(5.0, (6.0, -4.0, 3.0)))
    return baseline, followup, seg, grown


def test_followup_view_shows_both_time_points_linked(make_napari_viewer, pair, own_home) -> None:
    from napari_brats._followup import open_followup
    from napari_brats._layers import from_display

    baseline, followup, seg, grown = pair
    viewer = make_napari_viewer(show=bool(os.environ.get("NAPARI_BRATS_SCREENSHOTS")))
    layers = open_followup(viewer, str(baseline), str(followup))
    base_image, base_labels, fu_image, fu_labels = layers
    assert [layer.name for layer in viewer.layers] == [layer.name for layer in layers]
    assert base_labels.name == "baseline Base_1 labels" and "Follow_1" in fu_labels.name
    # linked: grid mode, baseline panel on the left, follow-up on the right, one camera and slider
    assert viewer.grid.enabled and viewer.grid.stride == 2
    positions = {
        layer.name: viewer.grid.position(i, viewer.layers) for i, layer in enumerate(layers)
    }
    assert positions[base_labels.name] == positions[base_image.name] == (0, 0)
    assert positions[fu_labels.name] == positions[fu_image.name] == (0, 1)
    assert all(layer.data.shape == base_labels.data.shape for layer in layers)  # one grid
    # the baseline is shown as it is; the follow-up is back on the baseline grid (motion undone)
    affine = nib.load(baseline / "Base_1_seg.nii.gz").affine
    np.testing.assert_array_equal(from_display(base_labels.data, affine), seg)
    moved_back = from_display(fu_labels.data, affine)
    assert dice(moved_back == ET, grown == ET) > 0.9
    assert dice(moved_back > 0, grown > 0) > 0.9
    # the overlay: the known ET growth (1 mm voxels) and the suggestion with its rule
    n_grown = int((grown == ET).sum() - (seg == ET).sum())
    text = viewer.text_overlay.text
    assert viewer.text_overlay.visible
    assert f"({n_grown / 1000:+.1f} mL" in text.splitlines()[1]  # ET first
    assert "suggestion:" in text and "rule" in text
    if os.environ.get("NAPARI_BRATS_SCREENSHOTS"):
        viewer.dims.set_point(0, float(np.argwhere(seg == ET)[:, 2].mean()))
        viewer.window.resize(1400, 760)
        viewer.reset_view()
        viewer.camera.zoom *= 1.6
        viewer.screenshot(str(SCREENSHOT), canvas_only=False)
