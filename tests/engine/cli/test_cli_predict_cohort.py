"""`predict DATASET_DIR -o OUT_DIR` sharded under torchrun, resumed after a kill, on real cases.

The network is a tiny random-weight checkpoint of a registered architecture (the stand-ins of
``tests/standin.py`` are registered only inside the test process, and torchrun starts new ones).
What is checked is the cohort machinery: each case done exactly once, by one rank, the JSON lines
and the summary table complete, and a killed run resumed without redoing verified cases.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch

from bratseg.checkpoint import save_checkpoint
from bratseg.cli.main import main
from bratseg.errors import BratsInputError
from bratseg.models import build_model
from bratseg.review.cohort import (
    LINES_NAME,
    RECORDS_DIR,
    SUMMARY_NAME,
    append_line,
    merge_summary,
    verify_case,
)
from bratseg.review.cohort_shard import Shard, shard_device, shard_from_env, shard_threads

REPO = Path(__file__).resolve().parents[3]
CASES = ("Brats18_2013_2_1", "Brats18_CBICA_ABM_1", "Brats18_TCIA01_201_1", "Brats18_2013_3_1")
TIMEOUT_S = 600


@pytest.fixture(autouse=True)
def _home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BRATSEG_HOME", str(tmp_path / "home"))


@pytest.fixture(scope="module")
def dataset(brats2018_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Four real cases (symlinks) and a folder that is not a case."""
    folder = tmp_path_factory.mktemp("cohort") / "dataset"
    folder.mkdir()
    for case in CASES:
        if not (brats2018_dir / case).is_dir():
            pytest.skip(f"shared case {case} not found")
        (folder / case).symlink_to(brats2018_dir / case, target_is_directory=True)
    (folder / "notes").mkdir()
    return folder


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random-weight network at 3 mm (fast on CPU)."""
    torch.manual_seed(0)
    net = build_model("lowrank-resunet", preset="tiny")
    path = tmp_path_factory.mktemp("model") / "tiny.pt"
    save_checkpoint(
        path, net, arch="lowrank-resunet", config=net.config, preprocess={"target_spacing": 3.0}
    )
    return path


def torchrun(dataset: Path, out: Path, model: Path, nproc: int = 2) -> list[str]:
    return [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        str(nproc),
        "-m",
        "bratseg.cli.main",
        "predict",
        str(dataset),
        "-o",
        str(out),
        "--model",
        str(model),
        "--device",
        "cpu",
        "-q",
    ]


def env(home: Path) -> dict[str, str]:
    e = dict(os.environ)
    e.update(OMP_NUM_THREADS="1", PYTHONWARNINGS="ignore", BRATSEG_HOME=str(home))
    return e


def lines_of(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / LINES_NAME).read_text().splitlines()]


def labels_of(path: Path) -> np.ndarray:
    return np.asarray(nib.load(path).dataobj)


@pytest.fixture(scope="module")
def full_run(dataset: Path, model: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One uninterrupted two-process run over the dataset."""
    out = tmp_path_factory.mktemp("full") / "preds"
    home = out.parent / "home"
    proc = subprocess.run(
        torchrun(dataset, out, model),
        capture_output=True,
        encoding="utf-8",
        errors="replace",
        env=env(home),
        cwd=REPO,
        timeout=TIMEOUT_S,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out


def test_shards_split_every_case_exactly_once() -> None:
    cases = [Path(f"/d/case{i:02d}") for i in (7, 3, 11, 0, 5, 9, 1)]
    for world in range(1, 5):
        shares = [Shard(rank, world).cases(list(reversed(cases))) for rank in range(world)]
        names = [p.name for share in shares for p in share]
        assert sorted(names) == sorted(p.name for p in cases)  # each exactly once
        assert max(map(len, shares)) - min(map(len, shares)) <= 1  # balanced
    assert shard_from_env({}) == Shard(0, 1, 0, 1)
    assert shard_from_env({"RANK": "1", "WORLD_SIZE": "2", "LOCAL_RANK": "1"}) == Shard(1, 2, 1, 2)
    with pytest.raises(BratsInputError, match="RANK"):
        shard_from_env({"RANK": "2", "WORLD_SIZE": "2"})
    with pytest.raises(BratsInputError, match="integers"):
        shard_from_env({"WORLD_SIZE": "two"})
    # on CUDA every rank takes its local GPU; an explicit choice or one process is left alone
    assert shard_device("auto", Shard(3, 4, 1, 2), cuda_count=2) == "cuda:1"
    assert shard_device("cuda", Shard(3, 4, 3, 4), cuda_count=2) == "cuda:1"  # GPUs shared
    assert shard_device("auto", Shard(3, 4, 1, 2), cuda_count=0) == "auto"
    assert shard_device("cpu", Shard(3, 4, 1, 2), cuda_count=2) == "cpu"
    assert shard_device("auto", Shard(), cuda_count=2) == "auto"
    assert shard_threads(None, Shard(0, 2, 0, 2)) == max(1, (os.cpu_count() or 1) // 2)
    assert shard_threads(3, Shard(0, 2, 0, 2)) == 3 and shard_threads(None, Shard()) is None


def test_appended_lines_of_concurrent_writers_stay_whole(tmp_path: Path) -> None:
    path = tmp_path / "lines.jsonl"
    big = "x" * 3000
    pids = []
    for writer in range(2):
        pid = os.fork()
        if pid == 0:  # child: append 200 long lines, then leave without pytest's cleanup
            try:
                for i in range(200):
                    append_line(path, {"writer": writer, "i": i, "pad": big})
            finally:
                os._exit(0)
        pids.append(pid)
    for pid in pids:
        assert os.waitpid(pid, 0)[1] == 0
    records = [json.loads(line) for line in path.read_text().splitlines()]
    assert sorted((r["writer"], r["i"]) for r in records) == [
        (w, i) for w in range(2) for i in range(200)
    ]


def test_torchrun_two_processes_each_case_once(dataset: Path, full_run: Path) -> None:
    out = full_run
    lines = lines_of(out)
    assert sorted(line["case"] for line in lines) == sorted(CASES)  # each case exactly once
    assert {line["rank"] for line in lines} == {0, 1}
    for line in lines:
        assert line["status"] == "done" and line["world_size"] == 2
        assert sorted(CASES).index(line["case"]) % 2 == line["rank"]  # every 2nd of the sorted
        assert set(line["volumes_ml"]) == {"wt", "tc", "et"} and line["device"].startswith("CPU")
        assert isinstance(line["needs_review"], bool) and isinstance(line["reasons"], list)
        assert line["needs_review"] == bool(line["reasons"]) and "et_rule" in line
        labels = labels_of(out / line["output"])
        assert labels.shape == (240, 240, 155)
        assert line["volumes_ml"]["wt"] == pytest.approx(np.count_nonzero(labels) / 1000, abs=1e-3)
        assert verify_case(
            out,
            line["case"],
            json.loads((out / RECORDS_DIR / f"{line['case']}.json").read_text())["settings"],
        )
    with open(out / SUMMARY_NAME, newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["case"] for r in rows] == sorted(CASES)  # written after both ranks finished
    by_case = {line["case"]: line for line in lines}
    for row in rows:
        assert float(row["wt_ml"]) == pytest.approx(by_case[row["case"]]["volumes_ml"]["wt"])
        assert row["status"] == "done" and row["rank"] == str(by_case[row["case"]]["rank"])
    assert sorted(p.name for p in out.glob("*.nii.gz")) == sorted(f"{c}.nii.gz" for c in CASES)


def test_merge_adds_the_line_of_a_recorded_case_once(full_run: Path, tmp_path: Path) -> None:
    out = tmp_path / "copy"
    shutil.copytree(full_run, out)
    lines = (out / LINES_NAME).read_text().splitlines()
    lost = json.loads(lines[1])["case"]  # killed between its record and its line
    (out / LINES_NAME).write_text("\n".join(lines[:1] + lines[2:]) + "\n")
    (out / SUMMARY_NAME).unlink()
    assert merge_summary(out, list(CASES)) == (len(CASES), [])
    assert merge_summary(out, list(CASES)) == (len(CASES), [])  # a second merge adds nothing
    again = lines_of(out)
    assert sorted(line["case"] for line in again) == sorted(CASES) and again[-1]["case"] == lost
    assert again[-1] == json.loads(lines[1])
    with open(out / SUMMARY_NAME, newline="") as fh:
        assert [r["case"] for r in csv.DictReader(fh)] == sorted(CASES)


def test_rerun_after_sigterm_does_only_what_is_left(
    dataset: Path, model: Path, full_run: Path, tmp_path: Path
) -> None:
    out = tmp_path / "preds"
    proc = subprocess.Popen(
        torchrun(dataset, out, model),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        encoding="utf-8",
        errors="replace",
        env=env(tmp_path / "home"),
        cwd=REPO,
    )
    deadline = time.monotonic() + TIMEOUT_S
    while not ((out / LINES_NAME).exists() and (out / LINES_NAME).read_text().strip()):
        assert proc.poll() is None, proc.stderr.read()[-3000:] if proc.stderr else ""
        assert time.monotonic() < deadline
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)  # torchrun passes it to both workers
    proc.communicate(timeout=TIMEOUT_S)
    assert proc.returncode != 0
    first = {line["case"] for line in lines_of(out)}
    assert 1 <= len(first) < len(CASES), "the kill came after every case was done"
    kept = {c: (out / f"{c}.nii.gz").stat().st_mtime_ns for c in first}
    assert not list(out.glob(".*.tmp*")) and not list(out.glob("*.tmp"))  # nothing partial
    # a verified output whose file was then damaged is redone, not trusted
    damaged = sorted(first)[0]
    (out / f"{damaged}.nii.gz").write_bytes(b"not a nifti")

    rerun = subprocess.run(
        torchrun(dataset, out, model),
        capture_output=True,
        encoding="utf-8",
        errors="replace",
        env=env(tmp_path / "home"),
        cwd=REPO,
        timeout=TIMEOUT_S,
    )
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    lines = lines_of(out)
    again = [line["case"] for line in lines[len(first) :]]
    assert sorted(again) == sorted((set(CASES) - first) | {damaged})  # only what was left
    for case in first - {damaged}:
        assert (out / f"{case}.nii.gz").stat().st_mtime_ns == kept[case]  # not rewritten
    for case in CASES:  # the same outputs as the uninterrupted run
        np.testing.assert_array_equal(
            labels_of(out / f"{case}.nii.gz"), labels_of(full_run / f"{case}.nii.gz")
        )
    with open(out / SUMMARY_NAME, newline="") as fh:
        assert [r["case"] for r in csv.DictReader(fh)] == sorted(CASES)


def test_dataset_outputs_not_written_by_predict_are_refused(
    dataset: Path, model: Path, full_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    out = tmp_path / "preds"
    out.mkdir()
    foreign = out / f"{CASES[0]}.nii.gz"
    foreign.write_bytes(b"someone's file")
    rc = main(["predict", str(dataset), "-o", str(out), "--model", str(model), "-q"])
    assert rc == 2 and "--overwrite" in capsys.readouterr().err
    assert foreign.read_bytes() == b"someone's file"
    # a finished folder rerun with the same settings does nothing; other settings are refused
    stamp = {p.name: p.stat().st_mtime_ns for p in full_run.glob("*.nii.gz")}
    rc = main(["predict", str(dataset), "-o", str(full_run), "--model", str(model), "-q"])
    assert rc == 0
    assert {p.name: p.stat().st_mtime_ns for p in full_run.glob("*.nii.gz")} == stamp
    rc = main(["predict", str(dataset), "-o", str(full_run), "--model", str(model), "--tta", "8"])
    assert rc == 2 and "other settings" in capsys.readouterr().err
    assert {p.name: p.stat().st_mtime_ns for p in full_run.glob("*.nii.gz")} == stamp


def test_a_failed_case_is_logged_and_retried_the_others_kept(
    brats2018_dir: Path, model: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    good, bad = CASES[0], "Broken_1"
    dataset = tmp_path / "dataset"
    dataset.mkdir()
    (dataset / good).symlink_to(brats2018_dir / good, target_is_directory=True)
    (dataset / bad).mkdir()
    for channel in ("t1", "t1ce", "t2", "flair"):
        src = brats2018_dir / good / f"{good}_{channel}.nii.gz"
        dst = dataset / bad / f"{bad}_{channel}.nii.gz"
        dst.write_bytes(b"not a nifti" if channel == "flair" else src.read_bytes())
    out = tmp_path / "preds"
    args = ["predict", str(dataset), "-o", str(out), "--model", str(model), "--device", "cpu", "-q"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "1 of 2 case(s) failed" in err and f"{bad}_flair" in err
    lines = {line["case"]: line for line in lines_of(out)}
    assert lines[good]["status"] == "done" and lines[bad]["status"] == "failed"
    assert f"{bad}_flair" in lines[bad]["error"] and not (out / f"{bad}.nii.gz").exists()
    with open(out / SUMMARY_NAME, newline="") as fh:
        rows = {r["case"]: r for r in csv.DictReader(fh)}
    assert rows[bad]["status"] == "failed" and rows[bad]["error"] and rows[good]["wt_ml"]
    stamp = (out / f"{good}.nii.gz").stat().st_mtime_ns
    assert main(args) == 2  # the failed case is tried again, the done one kept
    again = lines_of(out)[len(lines) :]
    assert [line["case"] for line in again] == [bad]
    assert (out / f"{good}.nii.gz").stat().st_mtime_ns == stamp
