"""Outputs never replace a case's input files and never turn into one of its files (DEF-1, DEF-17).

Every writer of a user-named output (``predict -o`` / ``--probabilities``, ``report --pdf``,
``sessions export -o``, the worklist's export of approved cases) refuses, even with
``--overwrite``, any path that is one of the files the case reads: the same name, a ``./`` or
``..`` spelling, a symlink or a hard link. A channel or label-map name inside a case folder is
refused unless ``--into-case`` is given. Real BraTS 2018 case copies; the stand-in model.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

import pytest

from bratseg.cli.main import main

CASE = "Brats18_2013_2_1"


def _md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


@pytest.fixture()
def case(brats2018_case_dir: Path, tmp_path: Path) -> Path:
    folder = tmp_path / CASE
    shutil.copytree(brats2018_case_dir, folder)
    return folder


@pytest.fixture()
def digests(case: Path) -> dict[str, str]:
    return {f.name: _md5(f) for f in case.iterdir()}


def _refused(capsys, *fragments: str) -> str:
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    for fragment in fragments:
        assert fragment in lines[0], err
    return lines[0]


def _unchanged(case: Path, digests: dict[str, str]) -> None:
    assert {f.name: _md5(f) for f in case.iterdir()} == digests


@pytest.mark.parametrize(
    "spell",
    [
        lambda c: c / f"{CASE}_t1.nii.gz",  # probe 3.5
        lambda c: c / "." / f"{CASE}_t1ce.nii.gz",
        lambda c: c / ".." / CASE / f"{CASE}_flair.nii.gz",
        lambda c: c / f"{CASE}_seg.nii.gz",  # the expert label map, although predict skips it
    ],
)
def test_predict_never_overwrites_an_input_even_with_overwrite(case, digests, capsys, spell):
    out = spell(case)
    rc = main(["predict", str(case), "-o", str(out), "--overwrite", "--model", "no-such", "-q"])
    assert rc == 2
    _refused(capsys, "would replace the input", "even with --overwrite")
    _unchanged(case, digests)


def test_symlinks_and_hard_links_to_an_input_count(case, digests, tmp_path, capsys):
    link = tmp_path / "t2-link.nii.gz"
    link.symlink_to(case / f"{CASE}_t2.nii.gz")
    hard = tmp_path / "t1ce-hard.nii.gz"
    os.link(case / f"{CASE}_t1ce.nii.gz", hard)
    for args in (
        ["-o", str(tmp_path / "o.nii.gz"), "--probabilities", str(link)],
        ["-o", str(hard)],
    ):
        rc = main(["predict", str(case), *args, "--overwrite", "--model", "x", "-q"])
        assert rc == 2
        _refused(capsys, "would replace the input")
    _unchanged(case, digests)
    # a case whose channel is itself a symlink: the real file is protected too
    target = tmp_path / "real_flair.nii.gz"
    shutil.move(case / f"{CASE}_flair.nii.gz", target)
    (case / f"{CASE}_flair.nii.gz").symlink_to(target)
    before = _md5(target)
    assert main(["predict", str(case), "-o", str(target), "--overwrite", "--model", "x"]) == 2
    _refused(capsys, "would replace the input")
    assert _md5(target) == before


def test_report_pdf_never_overwrites_an_input(case, digests, capsys):
    seg = case / f"{CASE}_seg.nii.gz"
    assert main(["report", str(case), "--pdf", str(seg), "--overwrite"]) == 2
    _refused(capsys, "PDF would replace the input")
    _unchanged(case, digests)


@pytest.mark.parametrize("name", [f"{CASE}_seg.nii.gz", "pred_flair.nii.gz", "ai-t1ce.nii"])
def test_channel_or_label_names_inside_a_case_folder_need_into_case(case, tmp_path, capsys, name):
    (case / f"{CASE}_seg.nii.gz").unlink()  # probe 3.7: a case copy without its label map
    rc = main(["predict", str(case), "-o", str(case / name), "--model", "x", "-q"])
    assert rc == 2
    _refused(capsys, "--into-case", str(case))
    assert not (case / name).exists()
    # the same name elsewhere is fine: the guard looks at case folders only (fails later, on
    # the model name, not on the output)
    assert main(["predict", str(case), "-o", str(tmp_path / name), "--model", "x", "-q"]) == 2
    assert "unknown model" in capsys.readouterr().err


def test_into_case_writes_the_label_map_on_purpose(case, standin, tmp_path, capsys):
    (case / f"{CASE}_seg.nii.gz").unlink()
    model = standin.save_standin(tmp_path / "standin.pt")
    out = case / f"{CASE}_seg.nii.gz"
    rc = main(["predict", str(case), "-o", str(out), "--model", str(model), "--into-case", "-q"])
    assert rc == 0, capsys.readouterr().err
    assert out.is_file()
    # inputs stay protected even then
    t1 = case / f"{CASE}_t1.nii.gz"
    before = _md5(t1)
    args = ["-o", str(t1), "--model", str(model), "--into-case", "--overwrite", "-q"]
    assert main(["predict", str(case), *args]) == 2
    _refused(capsys, "would replace the input")
    assert _md5(t1) == before


def test_dataset_outputs_are_guarded_per_case(case, capsys):
    # -o DIR = the case folder itself for a dataset: <case>.nii.gz is no channel name, but an
    # output folder inside a case named like a channel is caught per case
    dataset = case.parent
    odd = dataset / "x_flair"
    odd.mkdir()
    for f in case.iterdir():
        if "_seg" not in f.name:
            os.symlink(f, odd / f.name.replace(CASE, "x_flair"))
    rc = main(["predict", str(dataset), "-o", str(odd), "--model", "x", "-q"])
    assert rc == 2
    _refused(capsys, "--into-case")


def test_worklist_and_session_exports_never_replace_the_source_case(
    brats2018_case_dir, standin, tmp_path, monkeypatch, capsys
):
    monkeypatch.setenv("BRATSEG_SESSIONS", str(tmp_path / "sessions"))
    root = tmp_path / "cases"
    shutil.copytree(brats2018_case_dir, root / CASE)
    digests = {f.name: _md5(f) for f in (root / CASE).iterdir()}
    model = standin.save_standin(tmp_path / "standin.pt")
    assert main(["worklist", str(root), "--segment-all", "--model", str(model), "--json"]) == 0
    assert main(["worklist", str(root), "--approve", CASE, "--reviewer", "Dr A", "--json"]) == 0
    # exporting into the worklist folder itself would replace the case folder by its export
    rc = main(["worklist", str(root), "--export-approved", str(root), "--overwrite", "--json"])
    assert rc == 2
    assert {f.name: _md5(f) for f in (root / CASE).iterdir()} == digests
    assert not [p for p in root.iterdir() if p.name.startswith(".")]
    capsys.readouterr()
    # sessions export: never onto the case's files, a channel name in its folder needs --into-case
    t1 = root / CASE / f"{CASE}_t1.nii.gz"
    assert main(["sessions", "export", CASE, "-o", str(t1), "--overwrite"]) == 2
    _refused(capsys, "would replace the input")
    flair = root / CASE / "reviewed_flair.nii.gz"
    assert main(["sessions", "export", CASE, "-o", str(flair)]) == 2
    _refused(capsys, "--into-case")
    assert {f.name: _md5(f) for f in (root / CASE).iterdir()} == digests
    assert main(["sessions", "export", CASE, "-o", str(flair), "--into-case"]) == 0
    assert flair.is_file()
