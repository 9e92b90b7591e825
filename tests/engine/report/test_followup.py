"""Follow-up comparison on a synthetic pair: a real case and a moved copy of it (a rigid motion in
the affine, voxels untouched) whose tumour was changed by a known number of voxels. There is no real
longitudinal pair with labels here; this tests the mechanics: the registration recovers the motion,
the changes are the known ones, and the suggestion follows its rule."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from scipy import ndimage

from bratseg.cli.main import main
from bratseg.report.response import classify, suggest_response

CHANNELS = ("t1", "t1ce", "t2", "flair")
ET, ED, NCR = 4, 2, 1  # BraTS 2021 labels of the data


def rigid(deg_z: float, deg_x: float, shift: tuple[float, float, float]) -> np.ndarray:
    a, b = np.radians(deg_z), np.radians(deg_x)
    rz = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])
    rx = np.array([[1, 0, 0], [0, np.cos(b), -np.sin(b)], [0, np.sin(b), np.cos(b)]])
    out = np.eye(4)
    out[:3, :3] = rz @ rx
    out[:3, 3] = shift
    return out


def write_case(
    src: Path, out: Path, seg: np.ndarray, motion: np.ndarray, box: tuple[slice, ...]
) -> Path:
    """``src``'s images cropped to ``box`` (the brain) with ``seg``, the affine moved by ``motion``."""
    out.mkdir(parents=True)
    for channel in (*CHANNELS, "seg"):
        img = nib.load(src / f"{src.name}_{channel}.nii.gz")
        data = seg if channel == "seg" else np.asarray(img.dataobj)
        affine = img.affine.copy()
        affine[:3, 3] = img.affine[:3, :3] @ [s.start for s in box] + img.affine[:3, 3]
        nib.save(
            nib.Nifti1Image(np.ascontiguousarray(data[box]), motion @ affine),
            out / f"{out.name}_{channel}.nii.gz",
        )
    return out


@pytest.fixture(scope="module")
def pair(brats2018_case_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    """(baseline, follow-up, seg, grown seg): ET grown into the edema by 4 voxels."""
    src = brats2018_case_dir
    seg = np.asarray(nib.load(src / f"{src.name}_seg.nii.gz").dataobj).astype(np.uint8)
    brain = np.asarray(nib.load(src / f"{src.name}_t1ce.nii.gz").dataobj) > 0
    where = np.argwhere(brain)
    box = tuple(
        slice(max(int(lo) - 2, 0), int(hi) + 3) for lo, hi in zip(where.min(0), where.max(0))
    )
    grown = seg.copy()
    grown[ndimage.binary_dilation(seg == ET, iterations=4) & (seg == ED)] = ET
    root = tmp_path_factory.mktemp("pair")
    baseline = write_case(src, root / "Base_1", seg, np.eye(4), box)
    followup = write_case(src, root / "Follow_1", grown, rigid(6.0, 3.0, (8.0, -5.0, 4.0)), box)
    return baseline, followup, seg[box], grown[box]


def test_compare_gives_the_known_change_and_recovers_the_motion(
    pair, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    baseline, followup, seg, grown = pair
    pdf, registered = tmp_path / "page.pdf", tmp_path / "registered.nii.gz"
    args = ["compare", str(baseline), str(followup), "--json", "--pdf", str(pdf)]
    assert main([*args, "--registered", str(registered)]) == 0
    data = json.loads(capsys.readouterr().out)
    n_et, n_grown = int((seg == ET).sum()), int((grown == ET).sum() - (seg == ET).sum())
    changes = data["changes"]
    assert changes["et"]["change_ml"] == pytest.approx(n_grown / 1000.0)  # 1 mm voxels
    assert changes["et"]["change_pct"] == pytest.approx(100.0 * n_grown / n_et)
    assert changes["ed"]["change_ml"] == pytest.approx(-n_grown / 1000.0)
    assert changes["tc"]["change_ml"] == pytest.approx(n_grown / 1000.0)
    assert changes["wt"]["change_ml"] == changes["ncr"]["change_ml"] == 0.0
    assert 100.0 * n_grown / n_et > 40.0  # by construction: volumetric progression
    by_rule = {s["rule"]: s for s in data["suggestions"]}
    assert by_rule["enhancing-volumetric"]["category"] == "PD"
    assert by_rule["non-enhancing-volumetric"]["category"] == "SD"
    assert all(
        s["text"].startswith("suggestion:") and "rule" in s["text"] for s in by_rule.values()
    )
    assert "Suggestion only" in data["caveat"]
    # the registration undoes the motion: the follow-up labels land on the grown map exactly
    assert data["registration"]["rotation_deg"] == pytest.approx(6.0, abs=0.3)
    assert not data["registration"]["poor"]
    moved = np.asarray(nib.load(registered).dataobj)
    assert (moved != grown).mean() < 1e-3
    np.testing.assert_allclose(
        nib.load(registered).affine, nib.load(baseline / "Base_1_seg.nii.gz").affine
    )
    assert pdf.read_bytes().startswith(b"%PDF")


def test_a_shrinking_tumour_without_registration_is_a_partial_response(
    pair, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    baseline, _followup, seg, _grown = pair
    shrunk = seg.copy()
    et = np.flatnonzero(seg.ravel() == ET)
    shrunk.ravel()[et[: int(0.7 * et.size)]] = NCR  # 70 % of the enhancing voxels now necrotic
    img = nib.load(baseline / "Base_1_seg.nii.gz")
    labels = tmp_path / "shrunk.nii.gz"
    nib.save(nib.Nifti1Image(shrunk, img.affine), labels)
    args = ["compare", str(baseline), str(baseline), "--followup-labels", str(labels)]
    assert main([*args, "--no-register", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["registration"] is None
    assert data["changes"]["et"]["change_pct"] == pytest.approx(
        -100.0 * int(0.7 * et.size) / et.size
    )
    assert data["changes"]["tc"]["change_ml"] == 0.0
    by_rule = {s["rule"]: s["category"] for s in data["suggestions"]}
    assert by_rule["enhancing-volumetric"] == "PR"


def test_the_rules_at_their_thresholds() -> None:
    assert classify("enhancing-volumetric", 10.0, 14.0, "mL").category == "PD"  # +40 %
    assert classify("enhancing-volumetric", 10.0, 13.9, "mL").category == "SD"
    assert classify("enhancing-volumetric", 10.0, 3.5, "mL").category == "PR"  # -65 %
    assert classify("enhancing-volumetric", 10.0, 0.0, "mL", gone=True).category == "CR"
    assert classify("enhancing-bidimensional", 400.0, 500.0, "mm²").category == "PD"  # +25 %
    assert classify("enhancing-bidimensional", 400.0, 200.0, "mm²").category == "PR"  # -50 %
    assert classify("non-enhancing-volumetric", 10.0, 6.5, "mL").category == "MR"  # -35 %
    small = classify("enhancing-volumetric", 0.5, 5.0, "mL", evaluable=False)
    assert small.category == "not evaluable" and small.change_pct is None
    # a report without measurable enhancing lesions is not evaluable bidimensionally
    report = {
        "regions": {"et": {"volume_ml": 0.2}, "wt": {"volume_ml": 30.0}},
        "sum_of_products_mm2": 0.0,
        "n_measurable": 0,
    }
    categories = [s.category for s in suggest_response(report, report)]
    assert categories == ["not evaluable", "not evaluable", "SD"]


@pytest.mark.parametrize(
    ("option", "target", "overwrite"),
    [
        ("--pdf", "base/t1", True),  # an input image, even with --overwrite
        ("--registered", "follow/seg", True),  # the follow-up's own label map
        ("--registered", "base/seg", True),
        ("--registered", "base/pred_flair", False),  # a name the case would read as its FLAIR
    ],
)
def test_compare_outputs_never_replace_or_pollute_an_input(
    pair, option: str, target: str, overwrite: bool, capsys: pytest.CaptureFixture
) -> None:
    baseline, followup, _seg, _grown = pair
    folder, what = target.split("/")
    case = baseline if folder == "base" else followup
    path = case / (f"{case.name}_{what}.nii.gz" if what != "pred_flair" else "pred_flair.nii.gz")
    before = path.read_bytes() if path.exists() else None
    args = ["compare", str(baseline), str(followup), option, str(path)]
    assert main([*args, *(["--overwrite"] if overwrite else [])]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(path) in err[0]
    assert ("would replace the input" if before else "case folder") in err[0]
    assert (path.read_bytes() if path.exists() else None) == before
    assert sorted(p.name for p in case.iterdir()) == sorted(
        f"{case.name}_{c}.nii.gz" for c in (*CHANNELS, "seg")
    )
