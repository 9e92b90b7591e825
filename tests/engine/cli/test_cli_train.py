"""`napari-brats train` refuses bad input before writing anything: one stderr line, exit code 2.

The refusals run the real command in a subprocess (``python -m bratseg.cli.main train``), as a
user or the Training dock does; the run folder is compared file by file before and after.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from tiny_training import link_cases

from bratseg.errors import BratsInputError
from bratseg.training.recipes import check_overrides

REPO = Path(__file__).resolve().parents[3]
CASE = "Brats18_2013_2_1"


@pytest.fixture(scope="module")
def dataset(brats2018_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return link_cases(tmp_path_factory.mktemp("train-cli-data"), brats2018_dir, [CASE])


def train(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    env = dict(os.environ, OMP_NUM_THREADS="1", BRATSEG_NUM_THREADS="1", PYTHONWARNINGS="ignore")
    return subprocess.run(
        [sys.executable, "-m", "bratseg.cli.main", "train", *args],
        capture_output=True,
        encoding="utf-8",
        errors="replace",
        env=env,
        cwd=REPO,
        timeout=timeout,
    )


def snapshot(folder: Path) -> dict[str, bytes] | None:
    """Every file under ``folder`` with its bytes (None when the folder does not exist)."""
    if not folder.exists():
        return None
    return {
        str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()
    }


def previous_run(folder: Path) -> Path:
    """A folder holding an earlier run's config and progress log."""
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"data": ["earlier"], "out": str(folder)}))
    (folder / "progress.jsonl").write_text(
        json.dumps({"event": "done", "reason": "completed"}) + "\n"
    )
    return folder


CASES = {
    "no --data": (lambda d, out: ["--out", str(out)], "--data", None),
    "--data folder missing": (
        lambda d, out: ["--data", str(d / "nowhere"), "--out", str(out)],
        "nowhere",
        None,
    ),
    "unknown recipe key": (
        lambda d, out: ["--data", str(d), "--out", str(out), "--recipe", '{"learning_rate": 0.1}'],
        "learning_rate",
        None,
    ),
    "recipe value of the wrong type": (
        lambda d, out: ["--data", str(d), "--out", str(out), "--recipe", '{"lr": "fast"}'],
        "'lr' must be a number",
        None,
    ),
    "--resume without a saved state": (
        lambda d, out: ["--out", str(out), "--resume"],
        "nothing to resume",
        "empty",
    ),
    "fresh run into a run folder": (
        lambda d, out: [
            "--data",
            str(d),
            "--out",
            str(out),
            "--model",
            "nnunet",
            "--preset",
            "tiny",
            "--epochs",
            "1",
        ],
        "--resume",
        "run",
    ),
}


@pytest.mark.parametrize("name", list(CASES))
def test_bad_input_is_one_line_exit_2_and_nothing_written(name, dataset, tmp_path):
    make_args, message, folder_state = CASES[name]
    out = tmp_path / "run"
    if folder_state == "empty":
        out.mkdir()
    elif folder_state == "run":
        previous_run(out)
    before = snapshot(out)
    proc = train(*make_args(dataset, out))
    assert proc.returncode == 2, proc.stderr[-2000:]
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("napari-brats: error:"), proc.stderr[-2000:]
    assert message in lines[0] and "Traceback" not in proc.stderr
    assert snapshot(out) == before  # nothing created, nothing overwritten, no log line appended


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"learning_rate": 1e-3}, "unknown recipe key 'learning_rate'"),
        ({"lr": "fast"}, "'lr' must be a number"),
        ({"lr": True}, "'lr' must be a number"),
        ({"batch_size": 1.5}, "'batch_size' must be an integer"),
        ({"amp": "yes"}, "'amp' must be true or false"),
        ({"schedule": "linear"}, "'schedule' must be one of"),
        ({"optimizer": "sgd"}, "'optimizer' must be one of"),
        ({"loss": "l2"}, "'loss' must be one of"),
        ({"augment": 0.5}, "'augment' must be an object"),
        ({"augment": {"flip": 0.5}}, "unknown augment key 'flip'"),
        ({"augment": {"flip_axes": "xy"}}, "'flip_axes' must be a list of numbers"),
        ({"augment": {"noise_prob": [0.1]}}, "'noise_prob' must be a number"),
    ],
)
def test_recipe_overrides_are_checked(overrides, message):
    with pytest.raises(BratsInputError, match=message.replace("(", r"\(")):
        check_overrides(overrides)


def test_valid_recipe_overrides_pass():
    check_overrides(
        {
            "lr": 1,
            "schedule": "cosine",
            "batch_size": 2,
            "amp": False,
            "augment": {"affine_prob": 0.3, "flip_axes": [0, 1], "zoom_range": [1.0, 1.2]},
        }
    )


def test_engine_refuses_a_fresh_run_into_a_run_folder(tmp_path):
    """The same refusal through the Python API (``train_events``), before the log is opened."""
    from bratseg.training import TrainConfig, train_events

    out = previous_run(tmp_path / "run")
    before = snapshot(out)
    with pytest.raises(BratsInputError, match="already holds a run"):
        next(
            train_events(
                TrainConfig(data=[str(tmp_path)], out=str(out), model="nnunet", preset="tiny")
            )
        )
    with pytest.raises(BratsInputError, match="unknown recipe key"):
        next(
            train_events(
                TrainConfig(data=[str(tmp_path)], out=str(tmp_path / "new"), recipe={"lr_max": 1})
            )
        )
    assert snapshot(out) == before and not (tmp_path / "new").exists()


def test_resume_at_an_epoch_boundary_finishes_the_epoch(dataset, tmp_path):
    """A run stopped right after an epoch's last step (``--max-steps`` at a boundary, as a
    SIGTERM can also land) resumes: the epoch it ends without new steps has no mean loss, and the
    command says so instead of failing on it."""
    out = tmp_path / "run"
    common = ["--model", "nnunet", "--preset", "tiny", "--patch", "32", "32", "32"]
    first = train(
        "--data", str(dataset), "--out", str(out), *common,
        "--steps-per-epoch", "2", "--epochs", "2", "--max-steps", "2",
    )  # fmt: skip
    assert first.returncode == 0, first.stderr
    resumed = train("--out", str(out), "--resume")
    assert resumed.returncode == 0, resumed.stderr
    assert "unexpected" not in resumed.stderr
    events = [json.loads(line) for line in (out / "progress.jsonl").read_text().splitlines()]
    epochs = [e for e in events if e["event"] == "epoch"]
    assert [e["epoch"] for e in epochs] == [1, 2] and epochs[-1]["step"] == 4
    assert events[-1]["event"] == "done" and events[-1]["reason"] == "completed"
