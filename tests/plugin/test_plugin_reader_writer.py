"""Reader, writer and sample data of the napari plugin on real shared BraTS cases."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("napari")

DATA = Path(__file__).resolve().parents[2] / ".." / "shared" / "data"
CASE_2018 = DATA / "brats2018" / "Brats18_2013_2_1"
CASE_2023 = DATA / "brats2023-naming" / "BraTS-GLI-00001-000"
pytestmark = pytest.mark.skipif(
    not CASE_2018.is_dir(), reason="shared BraTS data (../shared/data) absent"
)


def _layers_by_name(layer_data):
    return {kwargs["name"]: (data, kwargs, kind) for data, kwargs, kind in layer_data}


def test_reader_opens_case_folder_with_aligned_layers():
    import nibabel as nib

    from napari_brats._reader import napari_get_reader

    reader = napari_get_reader(str(CASE_2018))
    assert reader is not None
    layers = _layers_by_name(reader(str(CASE_2018)))
    assert set(layers) == {"T1", "T1Gd", "T2", "FLAIR", "Brats18_2013_2_1 reference seg"}
    flair_file = next(CASE_2018.glob("*_flair.nii.gz"))
    flair = np.asarray(nib.load(str(flair_file)).dataobj)
    data, kwargs, kind = layers["FLAIR"]
    assert kind == "image" and data.shape == flair.shape[::-1]  # (Z, Y, X) display order
    np.testing.assert_array_equal(np.asarray(data).transpose(2, 1, 0), flair)
    lo, hi = kwargs["contrast_limits"]
    assert flair.min() <= lo < hi <= flair.max()
    seg_data, seg_kwargs, seg_kind = layers["Brats18_2013_2_1 reference seg"]
    assert seg_kind == "labels" and seg_data.dtype == np.uint8
    assert set(np.unique(seg_data)) <= {0, 1, 2, 4}
    scales = {tuple(kw["scale"]) for _, kw, _ in layers.values()}
    assert scales == {(1.0, 1.0, 1.0)}
    colormap = seg_kwargs["colormap"]
    assert np.allclose(colormap.color_dict[4][:3], (0.9, 0.0, 0.0))


def test_reader_opens_whole_case_from_one_file_and_2023_names():
    from napari_brats._reader import napari_get_reader

    one_file = next(CASE_2023.glob("*-t2f.nii.gz"))
    reader = napari_get_reader(str(one_file))
    names = [kw["name"] for _, kw, _ in reader(str(one_file))]
    assert names[:4] == ["T1", "T1Gd", "T2", "FLAIR"]


def test_reader_single_label_map_and_rejects_other_files(tmp_path):
    from napari_brats._reader import napari_get_reader

    seg = CASE_2023 / "algorithm-output-not-ground-truth-seg.nii.gz"
    lone = tmp_path / "lone_seg.nii.gz"
    shutil.copy(seg, lone)
    layers = napari_get_reader(str(lone))(str(lone))
    assert len(layers) == 1 and layers[0][2] == "labels"
    assert layers[0][1]["metadata"]["bratseg"]["convention"] == "2023"
    (tmp_path / "notes.txt").write_text("x")
    assert napari_get_reader(str(tmp_path / "notes.txt")) is None


def test_reader_reports_bad_case_in_one_line(tmp_path):
    from bratseg.errors import BratsInputError
    from napari_brats._reader import read_case

    broken = tmp_path / "case"
    broken.mkdir()
    for name in ("t1", "t1ce"):  # neither T2 nor FLAIR: nothing can stand in
        shutil.copy(next(CASE_2018.glob(f"*_{name}.nii.gz")), broken / f"case_{name}.nii.gz")
    with pytest.raises(BratsInputError) as info:
        read_case(str(broken))
    assert "\n" not in str(info.value) and "needs T2 or FLAIR" in str(info.value)


def test_reader_opens_a_case_lacking_flair_and_names_the_stand_in(tmp_path):
    from napari_brats._reader import napari_get_reader

    partial = tmp_path / "case"
    partial.mkdir()
    for name in ("t1", "t1ce", "t2"):
        (partial / f"case_{name}.nii.gz").symlink_to(next(CASE_2018.glob(f"*_{name}.nii.gz")))
    reader = napari_get_reader(str(partial))
    assert reader is not None
    layers = _layers_by_name(reader(str(partial)))
    flair = layers["FLAIR missing: T2 copy"]
    np.testing.assert_array_equal(flair[0], layers["T2"][0])
    assert not flair[1]["visible"] and layers["T2"][1]["visible"]


def test_writer_round_trips_labels_in_source_geometry(tmp_path):
    import nibabel as nib

    from napari_brats._reader import read_case
    from napari_brats._writer import write_labels

    layers = _layers_by_name(read_case(str(CASE_2018)))
    data, kwargs, _ = layers["Brats18_2013_2_1 reference seg"]
    edited = np.array(data)
    edited[70, 100:110, 100:110] = 4
    out = write_labels(str(tmp_path / "edited.nii.gz"), edited, kwargs)
    img = nib.load(out[0])
    source = nib.load(str(next(CASE_2018.glob("*_seg.nii.gz"))))
    assert img.shape == source.shape and img.get_data_dtype() == np.uint8
    np.testing.assert_allclose(img.affine, source.affine)
    np.testing.assert_array_equal(np.asarray(img.dataobj), edited.transpose(2, 1, 0))
    assert not list(tmp_path.glob("*.tmp*"))


def test_sample_data_loads_a_real_case(monkeypatch):
    from napari_brats._sample_data import SAMPLE_ENV, load_sample_case

    monkeypatch.setenv(SAMPLE_ENV, str(CASE_2018))
    names = [kw["name"] for _, kw, _ in load_sample_case()]
    assert names[:4] == ["T1", "T1Gd", "T2", "FLAIR"]


def test_sample_data_explains_when_absent(monkeypatch, tmp_path):
    from bratseg.errors import BratsInputError
    from napari_brats import _sample_data

    monkeypatch.setenv(_sample_data.SAMPLE_ENV, str(tmp_path))  # names no case folder
    with pytest.raises(BratsInputError, match=_sample_data.SAMPLE_ENV):
        _sample_data.find_sample_case()


def test_the_packaged_sample_opens_without_any_checkout_data(monkeypatch, tmp_path):
    """The case shipped in the package: real, lossless crop of its source, with its attribution."""
    import nibabel as nib

    from bratseg.cli.main import main
    from bratseg.sample import PACKAGED_SAMPLE, SAMPLE_CASE_ID
    from napari_brats._sample_data import SAMPLE_ENV, load_sample_case

    monkeypatch.delenv(SAMPLE_ENV, raising=False)
    layers = load_sample_case()
    assert [kw["name"] for _, kw, _ in layers] == [
        "T1",
        "T1Gd",
        "T2",
        "FLAIR",
        f"{SAMPLE_CASE_ID} reference seg",
    ]
    size = sum(f.stat().st_size for f in PACKAGED_SAMPLE.iterdir())
    assert size <= 12e6 and "CC BY 3.0" in (PACKAGED_SAMPLE / "ATTRIBUTION.md").read_text()
    source = CASE_2018.parent / SAMPLE_CASE_ID
    if source.is_dir():  # lossless: the crop holds every voxel of the source, at the same place
        for f in sorted(source.glob("*.nii.gz")):
            full, crop = nib.load(f), nib.load(PACKAGED_SAMPLE / f.name)
            corner = np.round(np.linalg.solve(full.affine, crop.affine @ [0, 0, 0, 1])[:3]).astype(
                int
            )
            box = tuple(slice(c, c + n) for c, n in zip(corner, crop.shape))
            full_data = np.asarray(full.dataobj)
            assert np.array_equal(full_data[box], np.asarray(crop.dataobj)), f.name
            assert np.count_nonzero(full_data) == np.count_nonzero(np.asarray(crop.dataobj)), f.name
    assert main(["sample", str(tmp_path / "here")]) == 0
    written = tmp_path / "here" / SAMPLE_CASE_ID
    assert sorted(p.name for p in written.iterdir()) == sorted(
        p.name for p in PACKAGED_SAMPLE.iterdir()
    )
    assert main(["sample", str(tmp_path / "here")]) == 2  # never over an existing case folder


def test_viewer_opens_case_through_plugin(make_napari_viewer):
    viewer = make_napari_viewer()
    viewer.open(str(CASE_2018), plugin="napari-brats")
    assert [layer.name for layer in viewer.layers][:4] == ["T1", "T1Gd", "T2", "FLAIR"]
    assert viewer.layers["FLAIR"].data.shape == (155, 240, 240)


def test_writer_refuses_a_layer_without_geometry_that_matches_no_open_case(tmp_path):
    """An identity-affine guess would open mirrored in other tools: refused, nothing written
    (matching an open case is tested in test_plugin_orientation.py)."""
    from bratseg.errors import BratsInputError
    from napari_brats._writer import write_labels

    data = np.zeros((5, 6, 7), dtype=np.int32)
    data[2, 3, 4] = 2
    with pytest.raises(BratsInputError, match="no known geometry") as err:
        write_labels(str(tmp_path / "plain"), data, {"scale": (3.0, 2.0, 1.0), "metadata": {}})
    assert "(5, 6, 7)" in str(err.value) and "open its case first" in str(err.value)
    assert list(tmp_path.iterdir()) == []
