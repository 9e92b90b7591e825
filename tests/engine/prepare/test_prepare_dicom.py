"""A DICOM study of the raw clinical case with decoy series (a second T1, a DWI, a localizer):
the decoys that match no channel are ignored, the second T1 is never guessed between (one line
asking for the mapping, exit 2, nothing written), and with that one mapping the study prepares."""

from __future__ import annotations

import json
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

sitk = pytest.importorskip("SimpleITK")
pytest.importorskip("deepbet", reason="brain extraction needs deepbet (napari-brats[prepare])")

from bratseg.cli.main import main  # noqa: E402
from bratseg.prepare import pick_series  # noqa: E402

pytestmark = pytest.mark.slow

#: Series folder -> (channel whose raw file it holds, SeriesDescription); decoys last.
SERIES = {
    "s02": ("t2", "MRHR T2 AX"),
    "s05": ("flair", "MRHR FLAIR AX"),
    "s10": ("t1", "T1 AX SE"),
    "s13": ("t1ce", "MRHR T1 AX POST GAD"),
    "s11": ("t1", "T1 AX SE repeat"),  # decoy: a second T1
    "s07": ("t2", "DWI b1000 AX"),  # decoy
    "s01": ("t1", "3-plane loc"),  # decoy
}


def _write_series(image, folder: Path, description: str, number: int) -> None:
    folder.mkdir(parents=True)
    d = image.GetDirection()
    uid = f"1.2.826.0.1.3680043.2.1125.77.{number}"
    common = [
        ("0008|0060", "MR"),
        ("0008|0031", time.strftime("%H%M%S")),
        ("0020|000e", uid),
        ("0020|000d", "1.2.826.0.1.3680043.2.1125.77"),
        ("0020|0011", str(number)),
        ("0020|0037", "\\".join(map(str, (d[0], d[3], d[6], d[1], d[4], d[7])))),
        ("0008|103e", description),
    ]
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()
    for z in range(image.GetDepth()):
        piece = image[:, :, z]
        for tag, value in common:
            piece.SetMetaData(tag, value)
        point = image.TransformIndexToPhysicalPoint((0, 0, z))
        piece.SetMetaData("0020|0032", "\\".join(map(str, point)))
        piece.SetMetaData("0020|0013", str(z + 1))
        piece.SetMetaData("0008|0018", f"{uid}.{z + 1}")
        writer.SetFileName(str(folder / f"IM{z:04d}.dcm"))
        writer.Execute(piece)


@pytest.fixture(scope="module")
def study(raw_clinical_map, tmp_path_factory) -> Path:
    """The raw series (decimated 2x in-plane) as a DICOM study folder with decoys."""
    root = tmp_path_factory.mktemp("dicom") / "study"
    for name, (channel, description) in SERIES.items():
        img = nib.load(raw_clinical_map[channel])
        affine = img.affine.copy()
        affine[:3, :2] *= 2.0
        small = nib.Nifti1Image(np.asarray(img.dataobj)[::2, ::2, :].astype(np.int16), affine)
        path = root.parent / f"{name}.nii"
        nib.save(small, path)
        _write_series(sitk.ReadImage(str(path)), root / name, description, int(name[1:]))
    return root


def test_decoys_are_ignored_and_two_t1_are_not_guessed(study: Path, tmp_path: Path, capsys):
    out = tmp_path / "case"
    assert main(["prepare", str(study), "-o", str(out), "-q"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "s10" in err[0] and "s11" in err[0] and "--map t1=" in err[0]
    assert not out.exists()
    files = pick_series(study, {"t1": "s10"})
    assert {k: p.name for k, p in files.items()} == {
        "t1": "s10",
        "t1ce": "s13",
        "t2": "s02",
        "flair": "s05",
    }


def test_one_mapping_prepares_the_study(study: Path, tmp_path: Path, capsys):
    out = tmp_path / "case"
    assert main(["prepare", str(study), "-o", str(out), "-q", "--no-n4", "--map", "t1=s10"]) == 0
    prov = json.loads((out / "prepare.json").read_text())
    assert Path(prov["sources"]["flair"]["file"]).name == "s05"
    assert 1_300 <= prov["qc"]["brain_ml"] <= 2_000
    assert "[brain" in capsys.readouterr().out
