"""DICOM outputs of a real case's expert labels: SEG reads back voxel-exact, RTSTRUCT contours
rasterise back to the regions, the burned-in series has one slice per source slice on its geometry,
everything shares one study and frame of reference, and dciodvfy finds no error. The case is
cropped around its tumour (real data, fewer slices) to keep the tests fast."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

hd = pytest.importorskip("highdicom")
pydicom = pytest.importorskip("pydicom")
pytest.importorskip("skimage")

from raw_scans import write_dicom_series  # noqa: E402

from bratseg.cli.main import main  # noqa: E402
from bratseg.io import load_case  # noqa: E402
from bratseg.labels import region_masks  # noqa: E402
from bratseg.report.dicom.rtstruct import rasterize_rtstruct  # noqa: E402
from bratseg.report.dicom.seg import read_seg_labels  # noqa: E402
from bratseg.report.dicom.source import lps_geometry  # noqa: E402

CHANNELS = ("t1", "t1ce", "t2", "flair", "seg")
MARGIN = 4


def crop_case(case_dir: Path, out: Path) -> Path:
    """The case cropped to its tumour's bounding box plus a margin (affine shifted to match)."""
    name = case_dir.name
    seg = nib.load(case_dir / f"{name}_seg.nii.gz")
    where = np.argwhere(np.asarray(seg.dataobj) > 0)
    lo = np.maximum(where.min(axis=0) - MARGIN, 0)
    hi = np.minimum(where.max(axis=0) + MARGIN + 1, seg.shape)
    out.mkdir(parents=True)
    for channel in CHANNELS:
        img = nib.load(case_dir / f"{name}_{channel}.nii.gz")
        data = np.asarray(img.dataobj)[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]]
        affine = img.affine.copy()
        affine[:3, 3] = img.affine[:3, :3] @ lo + img.affine[:3, 3]
        nib.save(nib.Nifti1Image(data, affine, img.header), out / f"{out.name}_{channel}.nii.gz")
    return out


@pytest.fixture(scope="module")
def small_case(brats2018_case_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return crop_case(brats2018_case_dir, tmp_path_factory.mktemp("crop") / "Small_1")


@pytest.fixture(scope="module")
def coarse_case(brats2018_case_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The whole case at every second voxel (2 mm): small, and still a whole skull-stripped brain
    that passes the input check (a crop around the tumour is rightly refused for segmentation)."""
    name, out = brats2018_case_dir.name, tmp_path_factory.mktemp("coarse") / "Small_1"
    out.mkdir()
    for channel in CHANNELS:
        img = nib.load(brats2018_case_dir / f"{name}_{channel}.nii.gz").slicer[::2, ::2, ::2]
        data = np.asarray(img.dataobj)
        nib.save(
            nib.Nifti1Image(data, img.affine, img.header), out / f"{out.name}_{channel}.nii.gz"
        )
    return out


@pytest.fixture(scope="module")
def nifti_export(small_case: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("export") / "dicom"
    assert main(["export-dicom", str(small_case), "-o", str(out), "--reviewer", "Ana Lima"]) == 0
    return out


#: SeriesDescription of each channel, as a scanner names them.
SERIES_DESCRIPTIONS = {
    "t1": "AX T1 SE PRE",
    "t1ce": "AX T1 POST GD",
    "t2": "AX T2 FSE",
    "flair": "AX FLAIR",
}


def read(path: Path):
    return pydicom.dcmread(path)


def series_files(folder: Path) -> list:
    return [read(p) for p in sorted(folder.glob("*.dcm"))]


def dice(a: np.ndarray, b: np.ndarray) -> float:
    return 2.0 * np.logical_and(a, b).sum() / max(a.sum() + b.sum(), 1)


def check_objects(out: Path, case, source_datasets: list) -> None:
    """Every object on the source's study, frame of reference and grid; labels read back."""
    src = source_datasets[0]
    seg_ds = read(out / "SEG.dcm")
    rt = read(out / "RTSTRUCT.dcm")
    overlay = series_files(out / "OVERLAY")
    summary = read(out / "SUMMARY.dcm")
    for ds in (seg_ds, rt, summary, *overlay):
        assert ds.StudyInstanceUID == src.StudyInstanceUID
        assert ds.PatientID == src.PatientID
    for ds in (seg_ds, rt, *overlay):
        assert ds.FrameOfReferenceUID == src.FrameOfReferenceUID
    referenced = {str(d.SOPInstanceUID) for d in source_datasets}

    # SEG: the segments, their codes, the referenced series, the labels voxel-exact
    seg = hd.seg.Segmentation.from_dataset(seg_ds)
    assert seg_ds.ReferencedSeriesSequence[0].SeriesInstanceUID == src.SeriesInstanceUID
    types = [s.SegmentedPropertyTypeCodeSequence[0].CodeValue for s in seg_ds.SegmentSequence]
    assert types == ["6574001", "79654002", "C113842"]  # necrosis, edema, enhancing lesion
    assert {
        s.SegmentedPropertyCategoryCodeSequence[0].CodeValue for s in seg_ds.SegmentSequence
    } == {"49755003"}
    labels = read_seg_labels(seg, source_datasets, case.seg_convention)
    assert np.array_equal(labels, case.seg)
    assert referenced >= {
        str(f.DerivationImageSequence[0].SourceImageSequence[0].ReferencedSOPInstanceUID)
        for f in seg_ds.PerFrameFunctionalGroupsSequence
    }

    # RTSTRUCT: WT, TC, ET contours on the source images, rasterised back within a voxel
    assert [r.ROIName for r in rt.StructureSetROISequence] == ["WT", "TC", "ET"]
    frame_ref = rt.ReferencedFrameOfReferenceSequence[0]
    series_ref = frame_ref.RTReferencedStudySequence[0].RTReferencedSeriesSequence[0]
    assert series_ref.SeriesInstanceUID == src.SeriesInstanceUID
    masks = rasterize_rtstruct(rt, lps_geometry(case.affine)[0], case.shape)
    truth = region_masks(case.seg, case.seg_convention)
    for region, mask in masks.items():
        assert dice(mask, truth[region.lower()]) > 0.995, region  # exact on full cases

    # burned-in series: one RGB slice per source slice, same position and orientation
    assert len(overlay) == len(source_datasets) == case.shape[2]
    by_position = {
        tuple(np.round(np.asarray(d.ImagePositionPatient, float), 3)) for d in source_datasets
    }
    for ds in overlay:
        assert tuple(np.round(np.asarray(ds.ImagePositionPatient, float), 3)) in by_position
        assert (ds.Rows, ds.Columns, ds.SamplesPerPixel) == (src.Rows, src.Columns, 3)
        np.testing.assert_allclose(ds.ImageOrientationPatient, src.ImageOrientationPatient)
    k = int(np.argmax((case.seg > 0).sum(axis=(0, 1))))
    pixels = overlay[k].pixel_array  # tumour voxels are tinted: colour channels differ there
    tinted = pixels.max(axis=-1).astype(int) - pixels.min(axis=-1) > 20
    assert np.array_equal(tinted, case.seg[:, :, k].T > 0)
    assert summary.pixel_array.shape[-1] == 3 and summary.pixel_array.std() > 0


def test_a_nifti_case_gets_a_new_study_and_every_object_reads_back(
    nifti_export: Path, small_case: Path, capsys: pytest.CaptureFixture
) -> None:
    case = load_case(small_case)
    source = series_files(nifti_export / "SOURCE_T1GD")
    check_objects(nifti_export, case, source)
    # the new MR series holds the T1Gd itself, on the case's grid
    volume = np.stack([d.pixel_array.T for d in source], axis=-1)
    assert np.array_equal(volume, case.image[1].astype(np.int16))
    assert "No source DICOM" in (nifti_export / "README.txt").read_text()
    assert "No source DICOM" in str(source[0].ImageComments)
    assert "No source DICOM" in str(read(nifti_export / "SEG.dcm").ImageComments)
    seg = read(nifti_export / "SEG.dcm")
    assert str(seg.ContentCreatorName) == "Ana Lima^"
    assert seg.SegmentSequence[0].SegmentAlgorithmType == "MANUAL"  # no model named


def dicom_case_of(small_case: Path, root: Path, t1_shift_mm: float = 0.0) -> Path:
    """``small_case`` as four scanner series (one study and frame of reference) and its seg; the
    T1 series moved by ``t1_shift_mm`` along x (on another grid) when asked."""
    pytest.importorskip("SimpleITK")
    dicom_case = root / "Small_1"
    study, frame_of_reference = pydicom.uid.generate_uid(), pydicom.uid.generate_uid()
    for number, m in enumerate(("t1", "t1ce", "t2", "flair"), start=1):
        nifti = small_case / f"Small_1_{m}.nii.gz"
        if m == "t1" and t1_shift_mm:
            img = nib.load(nifti)
            affine = img.affine.copy()
            affine[0, 3] += t1_shift_mm
            nifti = root / "t1_shifted.nii.gz"
            nib.save(nib.Nifti1Image(np.asarray(img.dataobj), affine), nifti)
        write_dicom_series(
            nifti,
            dicom_case / m,
            SERIES_DESCRIPTIONS[m],
            number,
            study_uid=study,
            series_uid=pydicom.uid.generate_uid(prefix=None),
            frame_of_reference=frame_of_reference,
        )
    shutil.copy(small_case / "Small_1_seg.nii.gz", dicom_case / "Small_1_seg.nii.gz")
    return dicom_case


def test_a_dicom_case_is_referenced_on_its_own_geometry(small_case: Path, tmp_path: Path) -> None:
    dicom_case = dicom_case_of(small_case, tmp_path)
    out = tmp_path / "out"
    assert main(["export-dicom", str(dicom_case), "-o", str(out)]) == 0
    case = load_case(dicom_case)
    assert case.files["t1ce"].is_dir()
    source = sorted(
        series_files(case.files["t1ce"]), key=lambda d: float(d.ImagePositionPatient[2])
    )
    check_objects(out, case, source)
    assert not (out / "SOURCE_T1GD").exists()
    if shutil.which("dciodvfy"):
        for path in (out / "SEG.dcm", out / "RTSTRUCT.dcm", out / "OVERLAY" / "IM0001.dcm"):
            assert dciodvfy_errors(path) == [], path.name
    assert "References the T1Gd DICOM series" in (out / "README.txt").read_text()


def test_series_on_other_grids_are_exported_on_the_t1gd_series_with_align(
    small_case: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    dicom_case = dicom_case_of(small_case, tmp_path, t1_shift_mm=2.0)
    out = tmp_path / "out"
    assert main(["export-dicom", str(dicom_case), "-o", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--align" in err[0] and not out.exists()
    assert main(["export-dicom", str(dicom_case), "-o", str(out), "--align", "resample"]) == 0
    case = load_case(dicom_case, align="resample")
    source = sorted(
        series_files(case.files["t1ce"]), key=lambda d: float(d.ImagePositionPatient[2])
    )
    check_objects(out, case, source)


def test_model_reviewer_and_approval_travel_in_the_seg(small_case: Path, tmp_path: Path) -> None:
    import json

    record = {
        "case_id": "Small_1",
        "model": {"names": ["nnunet-small-cv44-f0"], "sha256": ["a" * 64]},
        "signoffs": [{"action": "approve", "reviewer": "Ana Lima", "time": "2026-12-07T04:00:00Z"}],
    }
    session = tmp_path / "session.json"
    session.write_text(json.dumps(record))
    out = tmp_path / "out"
    assert (
        main(["export-dicom", str(small_case), "-o", str(out), "--provenance", str(session)]) == 0
    )
    seg = read(out / "SEG.dcm")
    segment = seg.SegmentSequence[2]
    assert segment.SegmentAlgorithmType == "SEMIAUTOMATIC"
    algorithm = segment.SegmentationAlgorithmIdentificationSequence[0]
    assert algorithm.AlgorithmName == "nnunet-small-cv44-f0"
    assert "a" * 64 in str(algorithm.AlgorithmParameters)
    assert str(seg.ContentCreatorName) == "Ana Lima^"
    assert "approved 2026-12-07T04:00:00Z" in str(seg.ImageComments)


@pytest.mark.skipif(
    shutil.which("dciodvfy") is None, reason="dciodvfy (Debian dicom3tools) not installed"
)
def test_every_object_validates_with_dciodvfy(nifti_export: Path) -> None:
    files = [
        nifti_export / "SEG.dcm",
        nifti_export / "RTSTRUCT.dcm",
        nifti_export / "SUMMARY.dcm",
        sorted((nifti_export / "OVERLAY").iterdir())[0],
        sorted((nifti_export / "SOURCE_T1GD").iterdir())[0],
    ]
    for path in files:
        assert dciodvfy_errors(path) == [], path.name


def dciodvfy_errors(path: Path) -> list[str]:
    """The ``Error`` lines of dciodvfy (Debian package dicom3tools) on one file."""
    run = subprocess.run(
        ["dciodvfy", str(path)],
        capture_output=True,
        encoding="utf-8",
        errors="replace",
        check=False,
    )
    return [line for line in (run.stdout + run.stderr).splitlines() if line.startswith("Error")]


def _nothing_written(parent: Path, name: str) -> bool:
    return not any(
        p.name == name or p.name.startswith(f".{name}.partial") for p in parent.iterdir()
    )


def test_bad_inputs_give_one_line_exit_2_and_write_nothing(
    small_case: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    seg = nib.load(small_case / "Small_1_seg.nii.gz")
    data = np.asarray(seg.dataobj)
    shifted = tmp_path / "shifted.nii.gz"  # another grid: the origin moved by 3 voxels
    affine = seg.affine.copy()
    affine[:3, 3] += 3.0
    nib.save(nib.Nifti1Image(data, affine), shifted)
    not_brats = tmp_path / "not_brats.nii.gz"
    odd = data.copy()
    odd[odd == 2] = 7
    nib.save(nib.Nifti1Image(odd, seg.affine), not_brats)
    cases = {
        "shifted": (["--labels", str(shifted)], "affine differs"),
        "not_brats": (["--labels", str(not_brats)], "not BraTS labels"),
    }
    for name, (extra, message) in cases.items():
        capsys.readouterr()
        rc = main(["export-dicom", str(small_case), "-o", str(tmp_path / name), *extra])
        err = capsys.readouterr().err.strip().splitlines()
        assert rc == 2 and len(err) == 1 and message in err[0], (name, err)
        assert _nothing_written(tmp_path, name)

    existing = tmp_path / "existing"
    existing.mkdir()
    (existing / "keep.txt").write_text("mine")
    capsys.readouterr()
    assert main(["export-dicom", str(small_case), "-o", str(existing)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "output folder exists" in err[0]
    assert [p.name for p in existing.iterdir()] == ["keep.txt"]


def test_a_saved_review_session_exports_its_edited_labels_model_and_approval(
    small_case: Path, tmp_path: Path
) -> None:
    from bratseg.postprocess import PostprocessConfig
    from bratseg.review import ModelInfo, ReviewSession, SessionStore

    case = load_case(small_case)
    proposal = case.seg.copy()
    labels = proposal.copy()
    labels[:4, :4, :] = 2  # a hand edit: edema painted in a corner
    session = ReviewSession(
        case=case,
        convention="2021",
        region_probs=None,
        config=PostprocessConfig(),
        proposal=proposal,
        labels=labels,
        overrides=np.zeros(labels.shape, dtype=bool),
        model=ModelInfo(["nnunet-small-cv44-f0"], ["w.pt"], ["b" * 64]),
    )
    session.approve("Ana Lima")
    saved = SessionStore(tmp_path / "sessions").save(session)
    out = tmp_path / "out"
    assert main(["export-dicom", str(saved.folder), "-o", str(out)]) == 0
    seg = read(out / "SEG.dcm")
    source = series_files(out / "SOURCE_T1GD")
    assert np.array_equal(read_seg_labels(seg, source, "2021"), labels)
    assert str(seg.ContentCreatorName) == "Ana Lima^"
    algorithm = seg.SegmentSequence[0].SegmentationAlgorithmIdentificationSequence[0]
    assert algorithm.AlgorithmName == "nnunet-small-cv44-f0"
    assert "status approved" in str(seg.ImageComments)


def test_the_worklist_exports_approved_cases_as_dicom(
    coarse_case: Path, standin, tmp_path: Path, monkeypatch, capsys: pytest.CaptureFixture
) -> None:
    monkeypatch.setenv("BRATSEG_SESSIONS", str(tmp_path / "sessions"))
    folder = tmp_path / "cases"
    (folder / "Small_1").mkdir(parents=True)
    for path in coarse_case.iterdir():
        if not path.name.endswith("_seg.nii.gz"):
            (folder / "Small_1" / path.name).symlink_to(path)
    model = standin.save_standin(tmp_path / "standin-regions.pt")
    args = ["worklist", str(folder), "--segment-all", "--model", str(model), "--device", "cpu"]
    assert main([*args, "--approve", "Small_1", "--reviewer", "dr.ana"]) == 0
    out = tmp_path / "dicom"
    assert main(["worklist", str(folder), "--export-dicom", str(out)]) == 0
    seg = read(out / "Small_1_dicom" / "SEG.dcm")
    algorithm = seg.SegmentSequence[0].SegmentationAlgorithmIdentificationSequence[0]
    assert algorithm.AlgorithmName == "standin-regions"
    assert str(seg.ContentCreatorName) == "dr.ana^"
    assert seg.SegmentSequence[0].SegmentAlgorithmType == "SEMIAUTOMATIC"
    capsys.readouterr()
    assert main(["worklist", str(folder), "--export-dicom", str(out)]) == 2  # kept, not replaced
    assert "already in" in capsys.readouterr().err
    assert main(["worklist", str(folder), "--export-dicom", str(out), "--overwrite"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["Small_1_dicom"]  # replaced, no leftovers


def test_a_raw_oblique_case_exports_on_its_t1gd_grid(data_dir: Path, tmp_path: Path) -> None:
    """The raw clinical case: series on their own grids (resampled into the T1Gd's), LAS storage,
    5.5 mm slices, oblique slice direction. A sphere-shaped label map on that grid comes back
    exactly from SEG and RTSTRUCT."""
    native = data_dir / "raw-clinical" / "TCGA-FG-6692" / "native"
    if not native.is_dir():
        pytest.skip(f"raw clinical case not found at {native}")
    case_dir = tmp_path / "Raw_1"
    case_dir.mkdir()
    for path in native.iterdir():
        channel = {"t1": "t1", "t1c": "t1ce", "t2": "t2", "fla": "flair"}[
            path.name.removesuffix(".nii.gz").rsplit("_", 1)[-1]
        ]
        (case_dir / f"Raw_1_{channel}.nii.gz").symlink_to(path)
    case = load_case(case_dir, align="resample", load_seg=False)
    centre = np.asarray(case.shape) // 2
    grid = np.indices(case.shape).astype(np.float64)
    mm = np.sqrt(sum(((g - c) * s) ** 2 for g, c, s in zip(grid, centre, case.spacing)))
    labels = np.zeros(case.shape, np.uint8)
    labels[mm < 30] = 2
    labels[mm < 20] = 4
    labels[mm < 8] = 1
    labels_path = tmp_path / "labels.nii.gz"
    nib.save(nib.Nifti1Image(labels, case.affine), labels_path)
    out = tmp_path / "out"
    args = ["export-dicom", str(case_dir), "--align", "resample", "--labels", str(labels_path)]
    assert main([*args, "-o", str(out)]) == 0
    source = series_files(out / "SOURCE_T1GD")
    assert abs(float(source[0].ImageOrientationPatient[5])) > 0.05  # oblique slices
    seg = read(out / "SEG.dcm")
    assert np.array_equal(read_seg_labels(seg, source, "2021"), labels)
    masks = rasterize_rtstruct(read(out / "RTSTRUCT.dcm"), lps_geometry(case.affine)[0], case.shape)
    truth = region_masks(labels, "2021")
    assert all(np.array_equal(mask, truth[name.lower()]) for name, mask in masks.items())
    if shutil.which("dciodvfy"):
        for path in (out / "SEG.dcm", out / "RTSTRUCT.dcm", out / "OVERLAY" / "IM0001.dcm"):
            assert dciodvfy_errors(path) == [], path.name


def test_a_killed_exports_partial_folder_is_removed_by_the_next_export(
    small_case: Path, tmp_path: Path
) -> None:
    """The staging folder of an export killed by SIGKILL (``.<name>.partial-<pid>``, its process
    gone) does not stay next to the exports for ever."""
    dead = 99_999_999  # a process id no Linux system hands out
    stale = tmp_path / f".dicom.partial-{dead}"
    (stale / "OVERLAY").mkdir(parents=True)
    (stale / "SEG.dcm").write_bytes(b"partial")
    old = time.time() - 3600
    os.utime(stale, (old, old))
    assert main(["export-dicom", str(small_case), "-o", str(tmp_path / "dicom")]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dicom"]


def test_reviewer_and_status_are_one_literal_line(
    small_case: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """User text with ``$...$`` (matplotlib mathtext) and newlines: the summary image draws it
    literally (it crashed, exit 1, nothing written), and no object holds a line break."""
    out = tmp_path / "out"
    reviewer, status = 'Dr "x";\nrm -rf / $\\frac{$', "cost $5 and $6^{\napproved"
    args = ["export-dicom", str(small_case), "-o", str(out), "--reviewer", reviewer]
    assert main([*args, "--status", status]) == 0
    for name in ("SEG.dcm", "RTSTRUCT.dcm", "SUMMARY.dcm"):
        texts = [str(e.value) for e in read(out / name).iterall() if isinstance(e.value, str)]
        assert not [t for t in texts if "rm -rf" in t and "\n" in t], name
    seg = read(out / "SEG.dcm")
    assert "cost $5 and $6^{ approved" in str(seg.ImageComments)
    assert all("\n" not in line for line in capsys.readouterr().out.splitlines())


def test_a_case_without_t1gd_says_on_every_image_that_t1_stands_in(
    small_case: Path, tmp_path: Path
) -> None:
    """The overlay, the new source series and the notes name the T1 that stood in for the
    missing T1Gd: a reader never takes the burned-in images for a contrast series."""
    from bratseg.report.dicom.export import export_dicom

    folder = tmp_path / "Small_1"
    folder.mkdir()
    for channel in ("t1", "t2", "flair", "seg"):
        (folder / f"Small_1_{channel}.nii.gz").symlink_to(small_case / f"Small_1_{channel}.nii.gz")
    case = load_case(folder, allow_missing=True)
    assert case.substituted == {"t1ce": "t1"}
    result = export_dicom(case, case.seg, case.seg_convention, tmp_path / "dicom")
    overlay = series_files(result.folder / "OVERLAY")
    source = series_files(result.folder / "SOURCE_T1GD")
    assert {str(d.SeriesDescription) for d in overlay} == {
        "T1 in place of the missing T1Gd with tumour overlay (burned in)"
    }
    assert str(source[0].SeriesDescription) == "T1 in place of the missing T1Gd (from NIfTI)"
    assert "T1Gd missing: T1 used in its place" in str(overlay[0].ImageComments)
    assert "the volume shown (T1 in place of the missing T1Gd) written" in str(
        source[0].ImageComments
    )
    assert "(T1Gd) written" not in " ".join(result.notes)
    assert any(n.startswith("T1Gd missing: T1 used in its place") for n in result.notes)
    assert "T1Gd missing" in (result.folder / "README.txt").read_text()
    # the complete case keeps the plain names
    full = export_dicom(load_case(small_case), load_case(small_case).seg, "2021", tmp_path / "full")
    assert {str(d.SeriesDescription) for d in series_files(full.folder / "OVERLAY")} == {
        "T1Gd with tumour overlay (burned in)"
    }
