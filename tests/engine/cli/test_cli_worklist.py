"""`napari-brats worklist` on real BraTS 2018 cases with the stand-in model: segment all, approve,
export the approved cases, the one-line errors and exit code 2."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from bratseg.cli.main import main

CASES = ("Brats18_2013_2_1", "Brats18_CBICA_ABM_1")


@pytest.fixture()
def folder(brats2018_dir: Path, tmp_path: Path, monkeypatch) -> Path:
    monkeypatch.setenv("BRATSEG_SESSIONS", str(tmp_path / "sessions"))
    root = tmp_path / "cases"
    for name in CASES:
        (root / name).mkdir(parents=True)
        for f in (brats2018_dir / name).iterdir():
            os.symlink(f, root / name / f.name)
    return root


def _json(capsys) -> dict:
    return json.loads(capsys.readouterr().out)


def test_worklist_command_segments_approves_and_exports(
    folder: Path, standin, tmp_path: Path, capsys
) -> None:
    model = standin.save_standin(tmp_path / "standin-regions.pt")
    assert main(["worklist", str(folder), "--json"]) == 0
    assert [c["status"] for c in _json(capsys)["cases"]] == ["new", "new"]

    assert (
        main(
            [
                "worklist",
                str(folder),
                "--segment-all",
                "--model",
                str(model),
                "--device",
                "cpu",
                "--approve",
                CASES[0],
                "--reviewer",
                "dr.ana",
                "--json",
            ]
        )
        == 0
    )
    cases = _json(capsys)["cases"]
    assert [c["status"] for c in cases] == ["approved", "segmented"]
    assert cases[0]["approval"]["reviewer"] == "dr.ana" and cases[0]["models"] == [
        "standin-regions"
    ]

    out = tmp_path / "dataset"
    assert main(["worklist", str(folder), "--export-approved", str(out)]) == 0
    table = capsys.readouterr().out
    assert "approved by dr.ana" in table and table.splitlines()[0].split()[:2] == ["Case", "Status"]
    assert sorted(p.name for p in out.iterdir()) == [CASES[0]]
    assert main(["worklist", str(folder), "--export-approved", str(out)]) == 2  # kept, not replaced
    assert "already in" in capsys.readouterr().err

    assert main(["worklist", str(folder), "--reopen", CASES[0], "--json"]) == 0
    assert _json(capsys)["cases"][0]["status"] == "segmented"


def test_worklist_command_bad_input_is_one_line(folder: Path, tmp_path: Path, capsys) -> None:
    assert main(["worklist", str(tmp_path / "nope")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "folder not found" in err
    assert main(["worklist", str(folder), "--approve", "Nope"]) == 2
    assert "no case 'Nope'" in capsys.readouterr().err
    assert main(["worklist", str(folder), "--approve", CASES[1]]) == 2
    assert "has no review yet" in capsys.readouterr().err
