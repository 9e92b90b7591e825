"""Hostile saved review sessions (the hostile-input probes 5.4-5.24), on real BraTS 2018 cases.

Each test damages or forges a saved session the way a disk error, a hand edit or a copied folder
would, and checks what the store, the worklist and the ``sessions`` command make of it: one line
naming the file and exit 2, a listing that still shows the other sessions, never another case's
labels, never a file outside the session folder, never a label value BraTS does not have.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from expert_review import BLOCK, expert_session

from bratseg.cli.main import main
from bratseg.errors import BratsInputError
from bratseg.review import SessionStore, case_key
from bratseg.review.worklist import Worklist

CASES = ("Brats18_2013_2_1", "Brats18_CBICA_ABM_1")


@pytest.fixture(scope="module")
def pristine(brats2018_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Two case folders (links to the real files) and a store holding a review of each."""
    from bratseg.io import load_case

    root = tmp_path_factory.mktemp("hostile")
    cases, keys = {}, {}
    for name in CASES:
        (root / "cases" / name).mkdir(parents=True)
        for f in (brats2018_dir / name).iterdir():
            os.symlink(f, root / "cases" / name / f.name)
        case = load_case(root / "cases" / name)
        SessionStore(root / "sessions").save(expert_session(case))
        cases[name], keys[name] = case, case_key(case.files)
    return {"root": root, "cases": cases, "keys": keys}


@pytest.fixture()
def env(pristine: dict, tmp_path: Path, monkeypatch) -> dict:
    """A private copy of the pristine store, the one ``napari-brats`` commands use."""
    sessions = tmp_path / "sessions"
    shutil.copytree(pristine["root"] / "sessions", sessions)
    monkeypatch.setenv("BRATSEG_SESSIONS", str(sessions))
    return {**pristine, "store": SessionStore(sessions), "sessions": sessions}


def _meta_path(env: dict, name: str) -> Path:
    return env["sessions"] / env["keys"][name] / "session.json"


def _edit_meta(env: dict, name: str, **changes) -> dict:
    path = _meta_path(env, name)
    meta = json.loads(path.read_text())
    for key, value in changes.items():
        if value is _DROP:
            meta.pop(key)
        else:
            meta[key] = value
    path.write_text(json.dumps(meta))
    return meta


_DROP = object()


def _export(env: dict, name: str, out: Path, capsys) -> tuple[int, str]:
    code = main(["sessions", "export", env["keys"][name], "-o", str(out)])
    return code, capsys.readouterr().err


def _listing(capsys) -> dict:
    assert main(["sessions", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)["sessions"]
    return {r["key"]: r for r in rows}


# --------------------------------------------------------------------- DEF-5: another case's review
def test_a_review_copied_under_another_cases_key_is_never_restored(
    env: dict, tmp_path: Path, capsys
) -> None:
    a, x = CASES
    folder_a = env["sessions"] / env["keys"][a]
    shutil.rmtree(folder_a)
    shutil.copytree(env["sessions"] / env["keys"][x], folder_a)  # probe 5.20
    store: SessionStore = env["store"]
    with pytest.raises(BratsInputError, match="belongs to another case") as info:
        store.restore(store.get(env["keys"][a]), env["cases"][a])
    assert str(folder_a) in str(info.value) and "\n" not in str(info.value)

    worklist = Worklist(env["root"] / "cases", store)
    row = worklist.rows[worklist.index_of(a)]
    assert row.status == "error" and "another case" in (row.error or "")
    assert row.volumes_ml is None and row.n_edited == 0  # not X's volumes
    assert worklist.rows[worklist.index_of(x)].status == "edited"
    with pytest.raises(BratsInputError):
        worklist.session(worklist.index_of(a))

    rows = _listing(capsys)
    assert rows[env["keys"][a]]["status"] == "damaged"
    assert rows[env["keys"][x]]["status"] == "edited"
    code, err = _export(env, a, tmp_path / "a.nii.gz", capsys)
    assert code == 2 and err.count("\n") == 1 and "another case" in err
    assert not (tmp_path / "a.nii.gz").exists()


def test_restore_checks_the_case_itself_not_only_the_folder(env: dict) -> None:
    a, x = CASES
    store: SessionStore = env["store"]
    with pytest.raises(BratsInputError, match=f"not case {x}'s"):
        store.restore(store.get(env["keys"][a]), env["cases"][x])
    restored = store.restore(store.get(env["keys"][a]), env["cases"][a])
    assert (restored.labels[BLOCK] == 1).all() and restored.saved_version is not None


# --------------------------------------------------------------------- DEF-6: names inside the folder
@pytest.mark.parametrize(
    "field, name",
    [
        ("proposal_file", "../../evil.npz"),
        ("edits_file", "../evil.npz"),
        ("proposal_file", "/tmp/evil.npz"),
        ("edits_file", "sub/edits-1.npz"),
    ],
)
def test_array_file_names_stay_inside_the_session_folder(
    env: dict, tmp_path: Path, capsys, field: str, name: str
) -> None:
    a = CASES[0]
    folder = env["sessions"] / env["keys"][a]
    meta = json.loads(_meta_path(env, a).read_text())
    target = (folder / name).resolve() if not name.startswith("/") else Path(name)
    if name.startswith("sub/"):
        target.parent.mkdir()
    if not name.startswith("/"):  # a valid file there: the old code read it and exported rc 0
        shutil.copy(folder / meta[field], target)
    _edit_meta(env, a, **{field: name})
    code, err = _export(env, a, tmp_path / "x.nii.gz", capsys)
    assert code == 2 and err.count("\n") == 1
    assert "session.json" in err and "not a file name of the session folder" in err
    assert not (tmp_path / "x.nii.gz").exists()
    assert _listing(capsys)[env["keys"][a]]["status"] == "damaged"


# --------------------------------------------------------------------- DEF-11: BraTS labels only
def _write_edits(env: dict, name: str, flat, values) -> None:
    folder = env["sessions"] / env["keys"][name]
    meta = json.loads(_meta_path(env, name).read_text())
    np.savez(folder / meta["edits_file"], flat=np.asarray(flat), values=np.asarray(values))


@pytest.mark.parametrize(
    "flat, values, message",
    [
        ([5, 6], [7, 263], "are not BraTS 2021 labels"),  # probe 5.13 (263 wrapped to 7)
        ([5, 6], [3, 1], "are not BraTS 2021 labels"),
        ([-1], [1], "edit indices -1"),  # probe 5.12: the last voxel, silently
        ([10**12], [1], "edit indices 1000000000000"),  # probe 5.11: IndexError, exit 1
        ([5, 6], [1], "indices for"),
    ],
)
def test_edits_are_checked_on_load(
    env: dict, tmp_path: Path, capsys, flat, values, message: str
) -> None:
    a = CASES[0]
    _write_edits(env, a, flat, values)
    code, err = _export(env, a, tmp_path / "x.nii.gz", capsys)
    assert code == 2 and err.count("\n") == 1 and message in err, err
    assert str(env["sessions"] / env["keys"][a]) in err
    assert not (tmp_path / "x.nii.gz").exists()


def test_a_painted_value_that_is_not_a_brats_label_is_never_saved_nor_written(
    env: dict, tmp_path: Path
) -> None:
    from bratseg.io import save_label_map

    a = CASES[0]
    store: SessionStore = env["store"]
    session = store.restore(store.get(env["keys"][a]), env["cases"][a])
    before = _meta_path(env, a).read_bytes()
    session.labels[0, 0, 0] = 7  # a label the viewer's picker allows, BraTS has not
    with pytest.raises(BratsInputError, match=r"\[7\] painted by hand are not BraTS 2021"):
        store.save(session, env["keys"][a])
    assert _meta_path(env, a).read_bytes() == before  # the last good save stays
    with pytest.raises(BratsInputError, match=r"\[7\] are not valid"):
        save_label_map(
            session.labels, tmp_path / "x.nii.gz", affine=np.eye(4), header=None
        )  # same convention in and out: checked too
    assert not (tmp_path / "x.nii.gz").exists()
    session.labels[0, 0, 0] = 2
    assert store.save(session, env["keys"][a]).meta["n_edited"] == session.n_edited


# --------------------------------------------------------------------- DEF-14: damaged sessions
def _truncate(env: dict, name: str, field: str) -> None:
    meta = json.loads(_meta_path(env, name).read_text())
    path = env["sessions"] / env["keys"][name] / meta[field]
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


DAMAGES = {
    "no shape": lambda env, n: _edit_meta(env, n, shape=_DROP),  # probe 5.4
    "no affine": lambda env, n: _edit_meta(env, n, affine=_DROP),  # probe 5.5
    "epoch not a number": lambda env, n: _edit_meta(env, n, last_change_epoch="abc"),  # 5.6
    "n_edited not a number": lambda env, n: _edit_meta(env, n, n_edited="x"),  # probe 5.7
    "truncated edits": lambda env, n: _truncate(env, n, "edits_file"),  # probe 5.9
    "truncated proposal": lambda env, n: _truncate(env, n, "proposal_file"),  # probe 5.10
    "header not base64": lambda env, n: _edit_meta(env, n, header="!!not base64!!"),  # 5.15
    "header of 10 bytes": lambda env, n: _edit_meta(env, n, header="AAAAAAAAAAAAAA=="),  # 5.16
    "affine of strings": lambda env, n: _edit_meta(env, n, affine=[["a"] * 4] * 4),
    "json list": lambda env, n: _meta_path(env, n).write_text("[1, 2]"),  # probe 5.8
    "not json": lambda env, n: _meta_path(env, n).write_text("{garbage"),  # probe 5.2
}


@pytest.mark.parametrize("damage", sorted(DAMAGES))
def test_a_damaged_session_is_one_line_exit_2_and_the_others_still_list(
    env: dict, tmp_path: Path, capsys, damage: str
) -> None:
    a, x = CASES
    DAMAGES[damage](env, a)
    code, err = _export(env, a, tmp_path / "x.nii.gz", capsys)
    assert code == 2 and err.count("\n") == 1 and "damaged" in err, err
    assert "unexpected" not in err and str(env["sessions"] / env["keys"][a]) in err
    assert not (tmp_path / "x.nii.gz").exists()
    rows = _listing(capsys)
    assert rows[env["keys"][x]]["status"] == "edited" and rows[env["keys"][x]]["damaged"] is None
    if damage.startswith("truncated"):  # session.json is sound: the arrays are checked on use
        assert rows[env["keys"][a]]["status"] == "edited"
    else:
        assert rows[env["keys"][a]]["status"] == "damaged" and rows[env["keys"][a]]["damaged"]
    assert main(["sessions"]) == 0  # the table too
    table = capsys.readouterr().out.splitlines()
    assert len(table) == 4 and any(x in line for line in table)
    worklist = Worklist(env["root"] / "cases", env["store"])
    assert worklist.rows[worklist.index_of(x)].status == "edited"
