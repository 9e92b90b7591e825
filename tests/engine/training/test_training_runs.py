"""Whole training runs on real BraTS cases: progress log, checkpoints, exact resume, stop file,
SIGTERM, fine-tuning on one case, the user model folder, and DDP with two gloo processes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import torch
from tiny_training import TRAINING_CASES, link_cases, tiny_config

from bratseg.checkpoint import load_checkpoint
from bratseg.training import TrainConfig, rundir, train_events
from bratseg.training.rundir import load_state

pytestmark = pytest.mark.slow  # whole training runs

torch.set_num_threads(2)
#: Seconds a training subprocess may take: generous, CI machines are often busy.
SUBPROCESS_TIMEOUT_S = 600

REPO = Path(__file__).resolve().parents[3]
CASES = TRAINING_CASES
STEP_KEYS = {"event", "epoch", "step", "loss", "lr", "eta_s", "device"}
EPOCH_KEYS = {"event", "epoch", "step", "loss", "lr", "val_dice", "eta_s", "device"}


@pytest.fixture(scope="module")
def dataset(brats2018_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with three real cases (symlinks)."""
    return link_cases(tmp_path_factory.mktemp("train-data"), brats2018_dir, CASES)


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.getbasetemp() / "training-crop-cache"


def tiny(dataset: Path, out: Path, cache_dir: Path, **kw) -> TrainConfig:
    settings = {"epochs": 2, "steps_per_epoch": 3, "val_cases": [CASES[0]], **kw}
    return tiny_config(dataset, out, cache_dir, **settings)


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "bratseg.cli.main", "train", *args]


def env() -> dict[str, str]:
    e = dict(os.environ)
    e.update(OMP_NUM_THREADS="1", BRATSEG_NUM_THREADS="1", PYTHONWARNINGS="ignore")
    return e


@pytest.fixture(scope="module")
def finished_run(
    dataset: Path, cache_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, list]:
    out = tmp_path_factory.mktemp("run") / "run"
    events = list(train_events(tiny(dataset, out, cache_dir, model="ds-unet")))
    return out, events


def test_every_event_has_exactly_the_keys_of_its_record_type(
    finished_run: tuple[Path, list],
) -> None:
    from bratseg.training.events import (
        EVENT_KINDS,
        DoneEvent,
        EpochEvent,
        StartEvent,
        StepEvent,
    )

    records = {"start": StartEvent, "step": StepEvent, "epoch": EpochEvent, "done": DoneEvent}
    out, _ = finished_run
    lines = [json.loads(line) for line in (out / "progress.jsonl").read_text().splitlines()]
    assert {e["event"] for e in lines} == set(records) and set(records) < set(EVENT_KINDS)
    for event in lines:
        record = records[event["event"]]
        keys = set(event)
        assert (
            record.__required_keys__ <= keys <= record.__required_keys__ | record.__optional_keys__
        ), (
            event["event"],
            keys ^ (record.__required_keys__ | record.__optional_keys__),
        )
        assert {"device", "time"} <= keys  # stamped by the trainer


def test_run_writes_progress_and_loadable_checkpoints(finished_run: tuple[Path, list]) -> None:
    out, events = finished_run
    lines = [json.loads(line) for line in (out / "progress.jsonl").read_text().splitlines()]
    assert lines == json.loads(json.dumps(events))  # the log is exactly the yielded events
    kinds = [e["event"] for e in lines]
    assert kinds == ["start"] + ["step"] * 3 + ["epoch"] + ["step"] * 3 + ["epoch", "done"]
    assert all(STEP_KEYS <= set(e) for e in lines if e["event"] == "step")
    epochs = [e for e in lines if e["event"] == "epoch"]
    assert all(EPOCH_KEYS <= set(e) and set(e["val_dice"]) == {"wt", "tc", "et"} for e in epochs)
    assert lines[0]["val_cases"] == [CASES[0]] and CASES[0] not in lines[0]["train_cases"]
    assert lines[-1]["reason"] == "completed" and lines[-1]["checkpoint"].endswith("best.pt")
    best = load_checkpoint(out / "best.pt")
    prov = best.meta["provenance"]
    assert (
        best.meta["arch"] == "ds-unet" and prov["val_cases"] == [CASES[0]] and prov["epochs"] >= 1
    )
    assert set(prov["val_dice"]) == {"wt", "tc", "et"} and prov["wall_time_s"] > 0
    assert best.meta["preprocess"]["target_spacing"] == 3.0
    assert load_checkpoint(out / "last.pt").meta["provenance"]["steps"] == 6
    state = load_state(out / "state.pt")  # weights_only=True
    assert state["global_step"] == 6 and state["epoch"] == 2


def test_resume_reproduces_the_uninterrupted_run(
    dataset: Path, cache_dir: Path, tmp_path: Path
) -> None:
    # cascade-unet has dropout: the torch RNG must be restored too
    full = [
        e["loss"]
        for e in train_events(tiny(dataset, tmp_path / "a", cache_dir, stop_after_steps=5))
        if e["event"] == "step"
    ]
    first = list(train_events(tiny(dataset, tmp_path / "b", cache_dir, stop_after_steps=2)))
    assert first[-1]["reason"] == "max-steps"
    resumed = list(
        train_events(tiny(dataset, tmp_path / "b", cache_dir, stop_after_steps=5, resume=True))
    )
    assert resumed[0]["event"] == "start" and resumed[0]["resumed"] and resumed[0]["step"] == 2
    losses = [e["loss"] for e in first + resumed if e["event"] == "step"]
    assert losses == full  # crosses the epoch boundary (validation, checkpoints) too
    a, b = load_state(tmp_path / "a" / "state.pt"), load_state(tmp_path / "b" / "state.pt")
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])


def test_stop_file_leaves_a_usable_checkpoint(
    dataset: Path, cache_dir: Path, tmp_path: Path
) -> None:
    events = []
    for event in train_events(tiny(dataset, tmp_path / "run", cache_dir, epochs=20)):
        events.append(event)
        if event["event"] == "step":
            (tmp_path / "run" / "STOP").touch()
    assert events[-1]["event"] == "done" and events[-1]["reason"] == "stop-file"
    assert sum(e["event"] == "step" for e in events) == 1
    assert load_checkpoint(tmp_path / "run" / "last.pt").meta["provenance"]["steps"] == 1
    # resuming removes the stale STOP file and continues
    more = list(
        train_events(tiny(dataset, tmp_path / "run", cache_dir, resume=True, stop_after_steps=2))
    )
    assert [e["step"] for e in more if e["event"] == "step"] == [2]


def test_sigterm_stops_cleanly(dataset: Path, cache_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    proc = subprocess.Popen(
        cli(
            "--data",
            str(dataset),
            "--model",
            "ds-unet",
            "--preset",
            "tiny",
            "--epochs",
            "50",
            "--patch",
            "32",
            "32",
            "32",
            "--target-spacing",
            "3",
            "--out",
            str(out),
            "--cache-dir",
            str(cache_dir),
            "--num-workers",
            "0",
            "--json",
        ),
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        encoding="utf-8",
        errors="replace",
        env=env(),
        cwd=REPO,
    )
    watchdog = threading.Timer(SUBPROCESS_TIMEOUT_S, proc.kill)  # never block on a stuck trainer
    watchdog.start()
    events = []
    try:
        for line in proc.stdout:
            events.append(json.loads(line))
            if events[-1]["event"] == "step" and events[-1]["step"] == 1:
                proc.send_signal(signal.SIGTERM)
        rc = proc.wait(timeout=SUBPROCESS_TIMEOUT_S)
    finally:
        watchdog.cancel()
    assert rc == 0
    assert events[-1]["event"] == "done" and events[-1]["reason"] == "signal SIGTERM"
    assert load_checkpoint(out / "last.pt").meta["arch"] == "ds-unet"


def test_finetune_one_case_and_list_in_user_models(
    finished_run: tuple[Path, list],
    brats2018_dir: Path,
    cache_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    src, _ = finished_run
    one = link_cases(tmp_path / "corrected", brats2018_dir, CASES[1:2])
    cfg = TrainConfig(
        data=[str(one)],
        out=str(tmp_path / "ft"),
        model=str(src / "best.pt"),
        epochs=1,
        steps_per_epoch=2,
        cache_dir=str(cache_dir),
        num_workers=0,
        patch=[32, 32, 32],
    )
    events = list(train_events(cfg))
    start = events[0]
    assert (
        start["train_cases"] == start["val_cases"] == [CASES[1]]
        and "training case" in start["split_note"]
    )
    assert start["init_from"]["path"] == str((src / "best.pt").resolve())
    assert start["preprocess"]["target_spacing"] == 3.0  # the checkpoint's preprocessing
    tuned = load_checkpoint(tmp_path / "ft" / "best.pt")
    assert tuned.meta["provenance"]["init_from"]["sha256"] and tuned.meta["arch"] == "ds-unet"
    # the precision it trained in is said at the start and kept with the weights (bfloat16 on a
    # CPU that computes it natively, float32 elsewhere)
    from bratseg.inference.device import cpu_has_native_bfloat16

    precision = "bfloat16" if cpu_has_native_bfloat16() else "float32"
    assert start["precision"] == tuned.provenance["precision"] == precision
    # the cases the initial weights saw travel with the fine-tuned checkpoint, so that a
    # cross-validation can tell them from truly unseen ones
    first = load_checkpoint(src / "best.pt").provenance["train_cases"]
    assert tuned.provenance["pretrained_cases"] == sorted(first)
    from bratseg.evaluation import pretrained_cases

    assert pretrained_cases(tuned.provenance) == set(first)
    legacy = {k: v for k, v in tuned.provenance.items() if k != "pretrained_cases"}
    assert pretrained_cases(legacy) == set(first)  # looked up through init_from
    assert (
        pretrained_cases({"init_from": {"path": str(tmp_path / "gone.pt"), "sha256": "0" * 64}})
        == set()
    )
    home = tmp_path / "home"
    (home / "models").mkdir(parents=True)
    (home / "models" / "my-tuned.pt").write_bytes((tmp_path / "ft" / "best.pt").read_bytes())
    monkeypatch.setenv("BRATSEG_HOME", str(home))
    from bratseg.zoo import list_models, resolve_model

    entry = next(m for m in list_models() if m.name == "my-tuned")
    assert (
        entry.arch == "ds-unet" and not entry.bundled and set(entry.val_dice) == {"wt", "tc", "et"}
    )
    assert resolve_model("my-tuned") == home / "models" / "my-tuned.pt"


def test_ddp_two_gloo_processes(dataset: Path, cache_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "ddp"
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        "2",
        "-m",
        "bratseg.cli.main",
        "train",
        "--data",
        str(dataset),
        "--model",
        "ds-unet",
        "--preset",
        "tiny",
        "--epochs",
        "1",
        "--steps-per-epoch",
        "2",
        "--patch",
        "32",
        "32",
        "32",
        "--target-spacing",
        "3",
        "--out",
        str(out),
        "--cache-dir",
        str(cache_dir),
        "--num-workers",
        "0",
        "--device",
        "cpu",
        "--val-cases",
        CASES[0],
    ]
    proc = subprocess.run(
        cmd,
        capture_output=True,
        encoding="utf-8",
        errors="replace",
        env=env(),
        cwd=REPO,
        timeout=SUBPROCESS_TIMEOUT_S,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = [json.loads(line) for line in (out / "progress.jsonl").read_text().splitlines()]
    assert [e["event"] for e in lines].count("start") == 1  # rank 0 only
    assert lines[0]["world_size"] == 2 and "gloo" in lines[0]["device"]
    assert lines[-1]["event"] == "done" and lines[-1]["step"] == 2
    assert load_checkpoint(out / "best.pt").meta["provenance"]["world_size"] == 2
    # rank 1's RNG state is saved beside rank 0's, and differs from it (own dropout draws)
    state0, rank1 = load_state(out / "state.pt"), load_state(out / "rng.rank1.pt")
    assert not torch.equal(state0["rng"]["torch"], rank1["torch"])
    # gradients were synchronised: after two steps on different patches (disjoint shards of the
    # epoch's samples, own augmentation draws) both ranks hold exactly the same weights ...
    from bratseg.training.patches import EpochSampler
    from bratseg.training.setup import initial_model
    from bratseg.training.snapshots import model_from_state

    shards = [set(EpochSampler(4, world_size=2, rank=r, seed=0)) for r in (0, 1)]
    assert not shards[0] & shards[1] and len(shards[0] | shards[1]) == 4
    names = [name for name, _ in model_from_state(state0).model.named_parameters()]
    assert rank1["weights_sha256"] == rundir.weights_digest({n: state0["model"][n] for n in names})
    # ... and not their initial weights: they trained (unsynchronised ranks would now differ)
    torch.manual_seed(0)
    init = initial_model("ds-unet", "tiny").model
    assert rundir.weights_digest(dict(init.named_parameters())) != rank1["weights_sha256"]


def test_rank_rng_restore_without_its_file_warns_and_uses_rank0(tmp_path: Path, caplog) -> None:
    """A rank resumed without its own RNG file (e.g. more processes than saved) falls back, saying so."""
    from bratseg.training import ddp, rundir
    from bratseg.training.snapshots import restore_rank_rng

    ctx = ddp.DistContext(rank=1, world_size=2)
    torch.manual_seed(3)
    saved = rundir.capture_rng()
    torch.manual_seed(4)
    with caplog.at_level("WARNING"):
        restore_rank_rng(tmp_path, ctx, saved)
    assert "rank 1: no saved RNG state (rng.rank1.pt)" in caplog.text
    assert torch.equal(torch.get_rng_state(), saved["torch"])

    torch.manual_seed(5)
    own = rundir.capture_rng()
    rundir.save_atomic(own, tmp_path / rundir.rank_rng_file(1))
    torch.manual_seed(6)
    restore_rank_rng(tmp_path, ctx, saved)
    assert torch.equal(torch.get_rng_state(), own["torch"])
