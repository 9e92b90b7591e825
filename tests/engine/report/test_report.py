"""The clinical report (bratseg.report, ``napari-brats report``): volumes as ``evaluate`` gives them,
RANO bidimensional products of known ellipsoids, the patient's side under LPS and RAS storage,
prior-report changes, the command line's JSON and exit codes, and the one-page PDF."""

from __future__ import annotations

import json
import shutil
import subprocess

import nibabel as nib
import numpy as np
import pytest

from bratseg.errors import BratsInputError
from bratseg.orientation import reorientation, reoriented_affine
from bratseg.report import ReportInfo, build_report, load_json_record, measure_bidimensional

BRATS_AFFINE = np.diag([-1.0, -1.0, 1.0, 1.0])


def run_here(capsys, *args):
    from bratseg.cli import main as cli_main

    capsys.readouterr()
    try:
        code = cli_main.main([str(a) for a in args])
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    out, err = capsys.readouterr()
    return subprocess.CompletedProcess(list(map(str, args)), code, out, err)


def assert_bad_input(proc, *fragments: str) -> None:
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("napari-brats: error: "), proc.stderr
    assert "Traceback" not in proc.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def ellipsoid(shape, centre_mm, semi_axes_mm, spacing, angle_deg=0.0) -> np.ndarray:
    """Boolean (X, Y, Z) ellipsoid, its first two axes rotated by ``angle_deg`` in the X-Y plane."""
    grids = np.meshgrid(
        *[np.arange(n) * s - c for n, s, c in zip(shape, spacing, centre_mm)], indexing="ij"
    )
    th = np.deg2rad(angle_deg)
    u = grids[0] * np.cos(th) + grids[1] * np.sin(th)
    v = -grids[0] * np.sin(th) + grids[1] * np.cos(th)
    a, b, c = semi_axes_mm
    return (u / a) ** 2 + (v / b) ** 2 + (grids[2] / c) ** 2 <= 1.0


# ------------------------------------------------------------------ RANO diameters


@pytest.mark.parametrize("spacing,angle", [((1.0, 1.0, 1.0), 0.0), ((0.8, 1.2, 2.0), 30.0)])
def test_bidimensional_product_of_an_ellipsoid(spacing, angle):
    """Semi-axes 20 and 12 mm in plane: 40 x 24 mm, within a voxel or two, on anisotropic pixels
    and rotated in plane; the axial slice of largest area is the ellipsoid's middle one."""
    shape = (80, 60, 40)
    centre = (40.0, 36.0, 20.0)
    mask = ellipsoid(shape, centre, (20.0, 12.0, 8.0), spacing, angle)
    rano = measure_bidimensional(mask, spacing, axial_axis=2)
    assert abs(rano.longest_mm - 40.0) <= 2 * max(spacing[:2])
    assert abs(rano.perpendicular_mm - 24.0) <= 2 * max(spacing[:2])
    assert rano.product_mm2 == pytest.approx(rano.longest_mm * rano.perpendicular_mm)
    assert rano.measurable
    assert rano.slice_index == round(centre[2] / spacing[2])
    # the end points are in voxels and span the stated diameters
    ends = np.asarray(rano.longest_ends) * np.asarray(spacing)
    assert np.linalg.norm(ends[1] - ends[0]) == pytest.approx(rano.longest_mm, abs=0.01)
    perp = np.asarray(rano.perpendicular_ends) * np.asarray(spacing)
    cosine = np.dot(ends[1] - ends[0], perp[1] - perp[0]) / (
        rano.longest_mm * rano.perpendicular_mm
    )
    assert abs(cosine) < 1e-3  # perpendicular (end points are rounded to 1/1000 voxel)
    # the longest diameter runs along the rotated major axis (within the few degrees by which
    # voxel corners near the tips can tilt it)
    direction = (ends[1] - ends[0])[:2] / rano.longest_mm
    assert abs(direction @ [np.cos(np.deg2rad(angle)), np.sin(np.deg2rad(angle))]) > np.cos(
        np.deg2rad(20)
    )


def test_ring_lesion_sum_of_products_and_measurability():
    """A ring of ET around NCR measures as the whole lesion; a 6 mm focus is not measurable and
    not summed; the sum of products is the big lesion's product."""
    spacing = (1.0, 1.0, 1.0)
    shape = (120, 100, 60)
    outer = ellipsoid(shape, (50, 50, 30), (20, 12, 10), spacing)
    inner = ellipsoid(shape, (50, 50, 30), (12, 6, 6), spacing)
    small = ellipsoid(shape, (100, 50, 30), (3, 3, 3), spacing)
    labels = np.zeros(shape, np.uint8)
    labels[outer] = 4
    labels[inner] = 1
    labels[small] = 4
    report = build_report(labels, "2021", BRATS_AFFINE)
    big, focus = report.enhancing
    assert abs(big.rano.longest_mm - 40) <= 2 and abs(big.rano.perpendicular_mm - 24) <= 2
    assert big.target and big.rano.measurable
    assert not focus.rano.measurable and not focus.target and focus.rano.longest_mm < 10
    assert report.sum_of_products_mm2 == pytest.approx(big.rano.product_mm2)
    assert [lesion.enhancing for lesion in report.lesions] == [[1], [2]]
    assert report.et_tc_ratio == pytest.approx(
        np.count_nonzero(labels == 4) / np.count_nonzero(labels > 0)
    )
    d = report.to_dict()
    assert d["n_measurable"] == 1 and d["n_lesions"] == 2
    assert d["regions"]["et"]["lesions"] == 2 and d["regions"]["wt"]["lesions"] == 2


# ------------------------------------------------------------------ sides


def _lesion_on_side(x_index: int) -> tuple[np.ndarray, np.ndarray]:
    """A 240x240x155 label map (BraTS storage) with one ET blob at storage x ``x_index``, and a
    brain mask image centred on the volume."""
    labels = np.zeros((240, 240, 155), np.uint8)
    labels[x_index - 5 : x_index + 5, 115:125, 70:80] = 4
    image = np.zeros((240, 240, 155), np.float32)
    image[40:200, 30:210, 10:140] = 1.0
    return labels, image


def test_hemisphere_under_brats_and_ras_storage():
    """BraTS storage (affine diag(-1, -1, 1), x index towards the patient's left): a lesion at a
    high x index is on the left; the same head stored RAS (flipped array, affine to match) gives
    the same side, and the mirror lesion is on the right."""
    for x_index, side in ((170, "left"), (70, "right")):
        labels, image = _lesion_on_side(x_index)
        lps = build_report(labels, "2021", BRATS_AFFINE, images=image)
        (lesion,) = lps.lesions
        assert lesion.hemisphere == side and lesion.fraction_left == (
            1.0 if side == "left" else 0.0
        )
        assert lesion.midline_distance_mm == pytest.approx(abs(x_index - 0.5 - 119.5), abs=0.01)
        reo = reorientation(BRATS_AFFINE, "RAS")
        ras_affine = reoriented_affine(BRATS_AFFINE, reo, labels.shape)
        assert np.allclose(np.diag(ras_affine)[:3], [1, 1, 1])
        ras = build_report(reo.apply(labels), "2021", ras_affine, images=reo.apply(image))
        assert ras.lesions[0].hemisphere == side
        assert ras.lesions[0].centroid_mm == pytest.approx(lesion.centroid_mm, abs=1e-3)
        # no images: the plane through the volume centre gives the same answer here
        assert build_report(labels, "2021", BRATS_AFFINE).lesions[0].hemisphere == side


def test_midline_follows_the_brain_not_the_volume():
    """A brain shifted in the field of view moves the mid-sagittal plane with it."""
    labels, _ = _lesion_on_side(150)
    image = np.zeros(labels.shape, np.float32)
    image[120:230, 30:210, 10:140] = 1.0  # brain centre at x index 174.5: the lesion is right of it
    assert build_report(labels, "2021", BRATS_AFFINE).lesions[0].hemisphere == "left"
    assert build_report(labels, "2021", BRATS_AFFINE, images=image).lesions[0].hemisphere == "right"


# ------------------------------------------------------------------ prior and proposal


def test_prior_report_changes(tmp_path):
    spacing = (1.0, 1.0, 1.0)
    shape = (100, 80, 50)
    before = np.zeros(shape, np.uint8)
    before[ellipsoid(shape, (50, 40, 25), (18, 14, 12), spacing)] = 2
    before[ellipsoid(shape, (50, 40, 25), (12, 10, 8), spacing)] = 4
    after = np.zeros(shape, np.uint8)
    after[ellipsoid(shape, (50, 40, 25), (22, 16, 14), spacing)] = 2
    after[ellipsoid(shape, (50, 40, 25), (16, 12, 9), spacing)] = 4
    first = build_report(before, "2021", BRATS_AFFINE, info=ReportInfo(case_id="P1-t0"))
    path = tmp_path / "prior.json"
    path.write_text(json.dumps(first.to_dict()))
    prior = load_json_record(path)
    second = build_report(
        after, "2021", BRATS_AFFINE, prior=prior, info=ReportInfo(case_id="P1-t1")
    )
    for key in ("ed", "et", "tc", "wt"):
        row, old = second.regions[key], first.regions[key]["volume_ml"]
        assert row["prior_ml"] == old
        assert row["change_ml"] == pytest.approx(row["volume_ml"] - old)
        assert row["change_pct"] == pytest.approx(100 * (row["volume_ml"] - old) / old)
    assert second.regions["ncr"]["prior_ml"] == 0 and second.regions["ncr"]["change_pct"] is None
    spd0, spd1 = first.sum_of_products_mm2, second.sum_of_products_mm2
    assert spd1 > spd0 > 0
    assert second.prior["case_id"] == "P1-t0"
    assert second.prior["change_mm2"] == pytest.approx(spd1 - spd0)
    assert second.prior["change_pct"] == pytest.approx(100 * (spd1 - spd0) / spd0)
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"case_id": "x", "regions": {"wt": {"volume_ml": 1}}}))
    with pytest.raises(BratsInputError, match="regions"):
        load_json_record(bad)


def test_proposal_dice_and_volumes_are_the_metrics_modules(brats2018_case):
    from scipy import ndimage

    from bratseg.metrics import dice
    from bratseg.report import structure_masks

    case = brats2018_case
    proposal = case.seg.copy()
    proposal[ndimage.binary_erosion(case.seg > 0, iterations=2) & (case.seg == 2)] = 0
    report = build_report(
        case.seg, case.seg_convention, case.affine, case.spacing, proposal=proposal
    )
    ai, corrected = structure_masks(proposal, "2021"), structure_masks(case.seg, "2021")
    voxel_ml = float(np.prod(case.spacing)) / 1000
    for key, row in report.regions.items():
        assert row["dice_vs_proposal"] == dice(ai[key], corrected[key])
        assert row["proposal_ml"] == np.count_nonzero(ai[key]) * voxel_ml
        assert row["delta_ml"] == pytest.approx(row["volume_ml"] - row["proposal_ml"])
    assert (
        report.regions["ed"]["dice_vs_proposal"] < 1.0 == report.regions["et"]["dice_vs_proposal"]
    )


# ------------------------------------------------------------------ command line


def test_cli_volumes_equal_evaluate_and_json_is_one_object(brats2018_case_dir, capsys):
    seg = next(brats2018_case_dir.glob("*_seg.nii.gz"))
    evaluated = run_here(capsys, "evaluate", seg, seg, "--json")
    assert evaluated.returncode == 0, evaluated.stderr
    metrics = json.loads(evaluated.stdout)
    proc = run_here(capsys, "report", brats2018_case_dir, "--labels", seg, "--json")
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)  # exactly one JSON object: json.loads refuses trailing data
    assert isinstance(report, dict) and report["case_id"] == brats2018_case_dir.name
    for region in ("wt", "tc", "et"):
        assert report["regions"][region]["volume_ml"] == metrics[region]["volume_ref_ml"]
    assert report["n_lesions"] == len(report["lesions"]) >= 1
    assert report["lesions"][0]["hemisphere"] in ("left", "right")
    assert sum(lesion["volume_ml"] for lesion in report["lesions"]) == pytest.approx(
        report["regions"]["wt"]["volume_ml"]
    )
    table = run_here(
        capsys, "report", brats2018_case_dir, "--reviewer", "A. Reader", "--status", "final"
    )
    assert table.returncode == 0 and "A. Reader" in table.stdout and "final" in table.stdout
    assert f"{report['regions']['wt']['volume_ml']:.2f}" in table.stdout


def test_cli_prior_and_proposal(brats2018_case_dir, capsys, tmp_path):
    seg = next(brats2018_case_dir.glob("*_seg.nii.gz"))
    first = run_here(capsys, "report", brats2018_case_dir, "--json")
    prior = tmp_path / "prior.json"
    prior.write_text(first.stdout)
    again = json.loads(
        run_here(
            capsys, "report", brats2018_case_dir, "--json", "--prior", prior, "--proposal", seg
        ).stdout
    )
    for row in again["regions"].values():
        assert row["change_ml"] == 0 and row["dice_vs_proposal"] == 1.0
    assert again["prior"]["change_mm2"] == 0


def test_cli_bad_labels_exit_2(brats2018_case_dir, capsys, tmp_path):
    assert_bad_input(
        run_here(capsys, "report", brats2018_case_dir, "--labels", tmp_path / "none.nii.gz"),
        "none.nii.gz",
    )
    seg = next(brats2018_case_dir.glob("*_seg.nii.gz"))
    img = nib.load(seg)
    cropped = tmp_path / "cropped_seg.nii.gz"
    nib.save(nib.Nifti1Image(np.asarray(img.dataobj)[:200].astype(np.uint8), img.affine), cropped)
    assert_bad_input(
        run_here(capsys, "report", brats2018_case_dir, "--labels", cropped),
        "cropped_seg.nii.gz",
        "shape",
    )
    shifted = tmp_path / "shifted_seg.nii.gz"
    affine = img.affine.copy()
    affine[0, 3] += 5
    nib.save(nib.Nifti1Image(np.asarray(img.dataobj).astype(np.uint8), affine), shifted)
    assert_bad_input(run_here(capsys, "report", brats2018_case_dir, "--labels", shifted), "affine")
    bad_prior = tmp_path / "prior.json"
    bad_prior.write_text("[1, 2]")
    assert_bad_input(
        run_here(capsys, "report", brats2018_case_dir, "--prior", bad_prior), "prior.json"
    )


# ------------------------------------------------------------------ PDF


@pytest.mark.skipif(shutil.which("pdftoppm") is None, reason="pdftoppm (poppler) not installed")
def test_pdf_is_one_readable_page_written_atomically(brats2018_case_dir, capsys, tmp_path):
    from matplotlib.image import imread

    pdf = tmp_path / "report.pdf"
    proc = run_here(capsys, "report", brats2018_case_dir, "--pdf", pdf, "--reviewer", "A. Reader")
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.pdf"]  # no temporary file left
    assert pdf.read_bytes().startswith(b"%PDF")
    subprocess.run(
        ["pdftoppm", "-png", "-r", "40", str(pdf), str(tmp_path / "page")], check=True, timeout=60
    )
    pages = sorted(tmp_path.glob("page*.png"))
    assert len(pages) == 1
    pixels = imread(pages[0])[..., :3]
    assert pixels.shape[0] > pixels.shape[1] > 200  # A4 portrait
    assert (
        pixels.std() > 0.1 and (pixels.min(axis=-1) < 0.2).mean() > 0.02
    )  # text and slices, not blank
    red = (pixels[..., 0] > 0.7) & (pixels[..., 1] < 0.3) & (pixels[..., 2] < 0.3)
    assert red.sum() > 20  # the ET overlay is drawn
    stamp = pdf.stat().st_mtime_ns
    assert_bad_input(run_here(capsys, "report", brats2018_case_dir, "--pdf", pdf), "exists")
    assert pdf.stat().st_mtime_ns == stamp
    assert (
        run_here(capsys, "report", brats2018_case_dir, "--pdf", pdf, "--overwrite").returncode == 0
    )


def test_pdf_slice_points_follow_the_lps_view():
    """A storage voxel's point lands on the same voxel in the LPS-ordered view the page draws."""
    shape = (30, 40, 20)
    labels = np.zeros(shape, np.uint8)
    labels[3, 31, 12] = 4
    for affine in (
        BRATS_AFFINE,
        np.eye(4),
        np.array([[0, 0, 1, 0], [-1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 0, 1.0]]),
    ):
        reo = reorientation(affine, "LPS")
        point = np.round(reo.point((3, 31, 12), shape)).astype(int)
        assert reo.apply(labels)[tuple(point)] == 4


def test_cli_reviewer_status_and_model_from_a_provenance_record(
    brats2018_case_dir, capsys, tmp_path
):
    record = tmp_path / "session.json"
    sha = "ab" * 32
    record.write_text(
        json.dumps(
            {
                "case_id": brats2018_case_dir.name,
                "model": {"names": ["nnunet-small"], "sha256": [sha]},
                "signoffs": [
                    {"action": "approve", "reviewer": "B. Second", "time": "2026-01-01T00:00:00Z"}
                ],
            }
        )
    )
    report = json.loads(
        run_here(capsys, "report", brats2018_case_dir, "--json", "--provenance", record).stdout
    )
    assert report["model"] == {"names": ["nnunet-small"], "sha256": [sha]}
    assert report["reviewer"] == "B. Second" and report["status"] == "approved"
    report = json.loads(
        run_here(
            capsys,
            "report",
            brats2018_case_dir,
            "--json",
            "--provenance",
            record,
            "--reviewer",
            "C. Third",
            "--status",
            "draft",
        ).stdout
    )
    assert report["reviewer"] == "C. Third" and report["status"] == "draft"
    assert_bad_input(
        run_here(capsys, "report", brats2018_case_dir, "--provenance", tmp_path / "none.json"),
        "none.json",
        "not found",
    )
