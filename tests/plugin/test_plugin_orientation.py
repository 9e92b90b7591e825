"""Display and writing whatever the storage orientation: a case stored RAS or sagittally shows
exactly as its LPS original (radiological, anatomical axis labels, mm) and is written back in its
own geometry; a labels layer without geometry takes the matching open case's or is refused."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from nibabel import orientations as ornt

from bratseg.errors import BratsInputError

pytest.importorskip("napari")

ROOT = Path(__file__).resolve().parents[2]
CASE = ROOT / ".." / "shared" / "data" / "brats2018" / "Brats18_2013_2_1"
MET_REF = ROOT / ".." / "shared" / "data" / "official-metrics-sample" / "sample_data" / "ref"
pytestmark = pytest.mark.skipif(
    not CASE.is_dir(), reason="shared BraTS data (../shared/data) absent"
)


def _restored(src: Path, dest: Path, codes: str) -> Path:
    out = dest / src.name
    out.mkdir(parents=True)
    for f in sorted(src.glob("*.nii.gz")):
        img = nib.load(f)
        transform = ornt.ornt_transform(ornt.io_orientation(img.affine), ornt.axcodes2ornt(codes))
        nib.save(img.as_reoriented(transform), out / f.name)
    return out


@pytest.fixture(scope="module")
def layers_by_storage(tmp_path_factory):
    from napari_brats._reader import read_case

    out = {"LPS": read_case(str(CASE))}
    for codes in ("RAS", "ASR"):
        out[codes] = read_case(str(_restored(CASE, tmp_path_factory.mktemp(codes), codes)))
    return out


@pytest.fixture(scope="module")
def cases_by_storage(layers_by_storage):
    """The live cases behind the layers, held for the module (layer metadata only names them)."""
    from napari_brats._cases import case_of_layer_data

    return {codes: case_of_layer_data(layers) for codes, layers in layers_by_storage.items()}


def test_every_storage_shows_the_same_radiological_picture(layers_by_storage) -> None:
    from napari_brats._layers import AXIS_LABELS, UNITS

    reference = layers_by_storage["LPS"]
    assert reference[3][0].shape == (155, 240, 240)  # FLAIR: axial slices, 240 x 240 in-plane
    for codes, layers in layers_by_storage.items():
        assert [k["name"] for _, k, _ in layers] == [k["name"] for _, k, _ in reference]
        for (data, kwargs, _), (ref_data, ref_kwargs, _) in zip(layers, reference):
            assert np.array_equal(data, ref_data), (codes, kwargs["name"])
            assert tuple(kwargs["scale"]) == tuple(ref_kwargs["scale"])
            assert kwargs["axis_labels"] == AXIS_LABELS and kwargs["units"] == UNITS


def test_the_layer_is_a_view_painting_reaches_the_storage_array(
    layers_by_storage, cases_by_storage
) -> None:
    from napari_brats._layers import display_index_to_storage, from_display, to_display

    data, kwargs, _ = layers_by_storage["ASR"][4]  # reference seg of the A-S-R stored copy
    meta = kwargs["metadata"]["bratseg"]
    storage = cases_by_storage["ASR"].seg
    assert np.shares_memory(data, storage)
    z, y, x = 80, 120, 100
    sx, sy, sz = display_index_to_storage((z, y, x), storage.shape, meta["affine"])
    assert data[z, y, x] == storage[sx, sy, sz]
    assert np.array_equal(
        from_display(to_display(storage, meta["affine"]), meta["affine"]), storage
    )
    assert from_display(data, meta["affine"]).shape == storage.shape


def test_writer_writes_back_in_the_source_geometry(
    layers_by_storage, cases_by_storage, tmp_path
) -> None:
    from napari_brats._writer import write_labels

    for codes in ("RAS", "ASR"):
        data, kwargs, _ = layers_by_storage[codes][4]
        case = cases_by_storage[codes]
        [written] = write_labels(str(tmp_path / f"{codes}.nii.gz"), data, kwargs)
        img = nib.load(written)
        assert np.array_equal(np.asarray(img.dataobj), case.seg), codes
        np.testing.assert_allclose(img.affine, case.affine)
        assert nib.aff2axcodes(img.affine) == tuple(codes)


def _cropped_copy(src: Path, dest: Path) -> Path:
    """A real case cropped to a box of its own shape (affine moved with it): a unique geometry."""
    out = dest / f"{src.name}"
    out.mkdir(parents=True)
    for f in sorted(src.glob("*.nii.gz")):
        img = nib.load(f)
        nib.save(img.slicer[40:200, 30:210, 10:140], out / f.name)
    return out


def test_a_labels_layer_without_geometry_takes_the_open_case_or_is_refused(
    layers_by_storage, cases_by_storage, tmp_path
) -> None:
    from napari_brats._cases import case_of_layer_data
    from napari_brats._layers import display_index_to_storage
    from napari_brats._reader import read_case
    from napari_brats._writer import write_labels

    # LPS, RAS and A-S-R copies are open: same shape and scale, different affines -> ambiguous
    data, kwargs, _ = layers_by_storage["LPS"][3]
    foreign = np.zeros(data.shape, np.uint8)
    with pytest.raises(BratsInputError, match="several open cases of different geometry"):
        write_labels(
            str(tmp_path / "amb.nii.gz"), foreign, {"name": "Labels", "scale": kwargs["scale"]}
        )
    with pytest.raises(BratsInputError, match="no known geometry.*matches no open case"):
        write_labels(
            str(tmp_path / "odd.nii.gz"),
            np.zeros((7, 8, 9), np.uint8),
            {"name": "Labels", "scale": (1, 1, 1)},
        )
    assert not (tmp_path / "amb.nii.gz").exists() and not (tmp_path / "odd.nii.gz").exists()
    # a case of its own geometry: napari's "new labels" layer over it takes its affine
    layers = read_case(str(_cropped_copy(CASE, tmp_path / "crop")))
    data, kwargs, _ = layers[3]
    case = case_of_layer_data(layers)
    foreign = np.zeros(data.shape, np.uint8)
    foreign[60, 70, 80] = 2
    [written] = write_labels(
        str(tmp_path / "new.nii.gz"), foreign, {"name": "Labels", "scale": kwargs["scale"]}
    )
    img = nib.load(written)
    np.testing.assert_allclose(img.affine, case.affine)
    index = display_index_to_storage((60, 70, 80), case.image.shape[1:], case.affine)
    assert np.asarray(img.dataobj)[index] == 2 and np.asarray(img.dataobj).sum() == 2


@pytest.mark.skipif(not MET_REF.is_dir(), reason="official BraTS-MET sample absent")
def test_the_ras_stored_official_sample_shows_like_its_lps_copy(tmp_path) -> None:
    from napari_brats._reader import read_single_nifti

    ras = sorted(MET_REF.glob("*.nii.gz"))[0]
    img = nib.load(ras)
    assert nib.aff2axcodes(img.affine)[:2] == ("R", "A")
    transform = ornt.ornt_transform(ornt.io_orientation(img.affine), ornt.axcodes2ornt("LPS"))
    lps = tmp_path / "lps.nii.gz"
    nib.save(img.as_reoriented(transform), lps)
    [(a, ka, kind)] = read_single_nifti(str(ras))
    [(b, kb, _)] = read_single_nifti(str(lps))
    assert kind == "labels" and np.array_equal(a, b) and tuple(ka["scale"]) == tuple(kb["scale"])
