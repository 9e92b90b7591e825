"""GUI-free helpers of the Training dock: run folders, the trainer's JSON lines, status texts.

Split from :mod:`napari_brats._widgets.training`, which keeps the widget and the
:class:`QProcess` handling.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

#: Seconds to wait for a clean stop (STOP file) before terminating the trainer.
STOP_TIMEOUT_S = 120.0
#: Seconds between SIGTERM and SIGKILL when the trainer ignores the STOP file.
KILL_TIMEOUT_S = 10.0


def runs_dir() -> Path:
    """``$BRATSEG_HOME/runs`` (:func:`bratseg.user_folders.runs_dir`)."""
    from bratseg.user_folders import runs_dir as user_runs_dir

    return user_runs_dir()


def install_checkpoint(checkpoint: str | Path, name: str, *, overwrite: bool = False) -> Path:
    """Copy a trained checkpoint into the user model folder (atomically) as ``<name>.pt``.

    The engine checks the name and refuses to replace an existing model unless ``overwrite``
    (:func:`bratseg.zoo.user_models.install_user_model`; ask the user first).
    """
    from bratseg.zoo.user_models import install_user_model

    return install_user_model(checkpoint, name, overwrite=overwrite)


def request_stop(run_dir: Path, note: str) -> None:
    """Write the run folder's STOP file (the trainer stops cleanly after the current step)."""
    from bratseg.training.rundir import STOP_FILE

    (run_dir / STOP_FILE).write_text(note + "\n")


class EventLineBuffer:
    """Collects the trainer's stdout and returns complete JSON event lines as dicts."""

    def __init__(self) -> None:
        self._pending = ""

    def feed(self, text: str) -> list[dict[str, Any]]:
        """Add a chunk of output; return the events of the lines it completes.

        Lines that are not JSON objects (log output) are skipped; a partial last line is kept
        for the next chunk.
        """
        self._pending += text
        *lines, self._pending = self._pending.split("\n")
        events = []
        for line in lines:
            line = line.strip()
            if not line.startswith("{"):
                continue
            try:
                events.append(json.loads(line))
            except json.JSONDecodeError:
                continue
        return events


def start_text(event: dict[str, Any]) -> str:
    """Status line of a ``start`` event."""
    return (
        f"training {event.get('arch')} on {len(event.get('train_cases') or [])} case(s), "
        f"validating on {len(event.get('val_cases') or [])}"
    )


def step_text(event: dict[str, Any]) -> str:
    """Status line of a ``step`` or ``epoch`` event: position, loss, validation Dice, ETA."""
    text = f"epoch {event.get('epoch')} step {event.get('step')}"
    if event.get("loss") is not None:
        text += f" — loss {float(event['loss']):.4f}"
    if event.get("val_dice"):
        text += " — val Dice " + " / ".join(
            f"{k.upper()} {float(v):.3f}" for k, v in event["val_dice"].items()
        )
    eta = event.get("eta_s")
    if eta is not None:
        text += f" — ETA {float(eta):.0f} s"
    return text


def exit_error_text(stderr_tail: str, exit_code: int) -> str:
    """One-line error of a trainer that exited non-zero: its last 3 stderr lines, or the code."""
    tail = [line for line in stderr_tail.strip().splitlines() if line.strip()][-3:]
    return " | ".join(tail) or f"trainer exited with code {exit_code}"
