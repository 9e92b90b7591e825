"""A DICOM study of the raw clinical case with decoy series (a second T1, a DWI, a localizer):
the decoys that match no channel are ignored, the second T1 is never guessed between (one line
asking for the mapping, exit 2, nothing written), and with that one mapping the study prepares."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("SimpleITK")
pytest.importorskip("deepbet", reason="brain extraction needs deepbet (napari-brats[prepare])")

from raw_scans import write_dicom_study  # noqa: E402

from bratseg.cli.main import main  # noqa: E402
from bratseg.prepare import pick_series  # noqa: E402

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def study(raw_clinical_map, tmp_path_factory) -> Path:
    """The raw series (decimated 2x in-plane) as a DICOM study folder with decoys."""
    return write_dicom_study(raw_clinical_map, tmp_path_factory.mktemp("dicom") / "study", step=2)


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
