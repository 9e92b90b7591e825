"""The trainer's events: what :func:`bratseg.training.train` yields and writes to ``progress.jsonl``.

One JSON object per line of a run's progress file, one record type per ``"event"`` value. The
trainer builds them, the CLI's progress bar and the Training dock show them, the model card code
reads them back (:func:`read_progress`). Every event carries ``time`` (Unix
seconds); events of a running session also carry ``device`` (the compute device in words).
``device`` and ``time`` are stamped on by the trainer when it emits an event.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal, TypedDict

from bratseg.errors import BratsInputError

#: The ``"event"`` values, in the order a run writes them.
EVENT_KINDS = ("start", "step", "epoch", "done", "error")


class _Stamped(TypedDict, total=False):
    """Keys the trainer adds when it emits an event."""

    device: str
    time: float


class StartEvent(_Stamped):
    """A training session starts (fresh or resumed)."""

    event: Literal["start"]
    arch: str
    resumed: bool
    init_from: dict[str, Any] | None
    train_cases: list[str]
    val_cases: list[str]
    split_note: str
    patch: list[int]
    batch_size: int
    steps_per_epoch: int
    epochs: int | None
    time_budget_s: float | None
    recipe: str
    lr: float
    parameters: int
    preprocess: dict[str, Any]
    world_size: int
    precision: str
    epoch: int
    step: int
    run_dir: str


class StepEvent(_Stamped):
    """One optimiser step (only with ``TrainConfig.step_events``)."""

    event: Literal["step"]
    epoch: int
    step: int
    epoch_step: int
    steps_per_epoch: int
    loss: float
    loss_parts: dict[str, float]
    lr: float
    eta_s: float | None
    elapsed_s: float


class EpochEvent(_Stamped):
    """An epoch ended: its mean loss and, when validated, Dice per region."""

    event: Literal["epoch"]
    epoch: int
    step: int
    loss: float | None
    lr: float
    val_dice: dict[str, float] | None
    val_mean: float | None
    best: bool
    best_val_mean: float | None
    swa: bool
    eta_s: float | None
    elapsed_s: float


class DoneEvent(_Stamped):
    """The session ended (``reason``: completed, time-budget, stop file, signal, max-steps)."""

    event: Literal["done"]
    reason: str | None
    epoch: int
    step: int
    val_dice: dict[str, float] | None
    best_val_mean: float | None
    checkpoint: str
    last: str
    elapsed_s: float


class ErrorEvent(_Stamped):
    """The session failed; ``message`` is one line."""

    event: Literal["error"]
    message: str


#: Any event of a run.
TrainerEvent = StartEvent | StepEvent | EpochEvent | DoneEvent | ErrorEvent


def error_event(message: str, when: float | None = None) -> ErrorEvent:
    """The ``error`` event for ``message`` (whitespace collapsed to one line)."""
    event: ErrorEvent = {"event": "error", "message": " ".join(message.split())}
    if when is not None:
        event["time"] = when
    return event


class RunSummary(TypedDict):
    """What a run's ``progress.jsonl`` says about the whole run (:func:`read_progress`)."""

    wall_time_s: float | None
    epochs: int | None
    steps: int | None
    done_reason: str | None
    sessions: int
    device: str | None
    best_epoch: int | None
    best_val_dice: dict[str, float] | None


def read_progress(path: str | Path) -> RunSummary:
    """Summarise a run's ``progress.jsonl``.

    Returns:
        The :class:`RunSummary` (``None`` where the log does not say).

    Raises:
        BratsInputError: The file cannot be read or a line is not JSON.
    """
    events: list[dict[str, Any]] = []
    try:
        for line in Path(path).read_text(encoding="utf-8").splitlines():
            if line.strip():
                events.append(json.loads(line))
    except (OSError, ValueError) as exc:
        raise BratsInputError(f"cannot read the training log ({exc})", path) from None
    timed = [e for e in events if e.get("elapsed_s") is not None]
    epochs = [e for e in events if e.get("event") == "epoch"]
    best = [e for e in epochs if e.get("best")]
    done = [e for e in events if e.get("event") == "done"]
    return RunSummary(
        wall_time_s=float(timed[-1]["elapsed_s"]) if timed else None,
        epochs=int(epochs[-1]["epoch"]) if epochs else None,
        steps=int(max(e.get("step") or 0 for e in events)) if events else None,
        done_reason=done[-1].get("reason") if done else "running (no 'done' event yet)",
        sessions=sum(e.get("event") == "start" for e in events),
        device=next((e.get("device") for e in reversed(events) if e.get("device")), None),
        best_epoch=int(best[-1]["epoch"]) if best else None,
        best_val_dice=best[-1].get("val_dice") if best else None,
    )


__all__ = [
    "EVENT_KINDS",
    "DoneEvent",
    "EpochEvent",
    "ErrorEvent",
    "RunSummary",
    "StartEvent",
    "StepEvent",
    "TrainerEvent",
    "error_event",
    "read_progress",
]
