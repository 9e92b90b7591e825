"""Run-folder machinery: progress log, stop requests, resume state and RNG snapshots.

A run folder holds::

    config.json      the TrainConfig of the run (used by --resume)
    progress.jsonl   one JSON event per line (step, epoch, done, error)
    last.pt          latest weights (bratseg.checkpoint format), written atomically
    best.pt          weights with the best validation mean Dice so far
    state.pt         resume state: weights, optimiser, schedule, RNG, counters
                     (plain tensors / numbers: loads with torch.load(weights_only=True))
    STOP             create this file to stop the run cleanly after the current step
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
import signal
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from bratseg.atomic import atomic_write
from bratseg.errors import BratsInputError

logger = logging.getLogger(__name__)

STOP_FILE = "STOP"
PROGRESS_FILE = "progress.jsonl"
STATE_FILE = "state.pt"


def rank_rng_file(rank: int) -> str:
    """File of the RNG state of DDP rank ``rank`` > 0 (rank 0's is inside :data:`STATE_FILE`)."""
    return f"rng.rank{rank}.pt"


CONFIG_FILE = "config.json"
LAST_CHECKPOINT = "last.pt"
BEST_CHECKPOINT = "best.pt"


#: Files that mark a folder as holding a run (a fresh run there would mix two runs' logs).
RUN_FILES = (CONFIG_FILE, PROGRESS_FILE, STATE_FILE)


def check_run_folder(out: str | Path, resume: bool) -> None:
    """Refuse a run folder a run cannot start in, before anything is written to it.

    Args:
        out: The run folder.
        resume: Whether the run continues the one in ``out``.

    Raises:
        BratsInputError: ``resume`` without a saved state; a fresh run into a folder that already
            holds a run (:data:`RUN_FILES`); ``out`` is a file.
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise BratsInputError("the run folder is a file", out)
    if resume:
        if not (out / STATE_FILE).is_file():
            raise BratsInputError(f"nothing to resume: no {STATE_FILE} in the run folder", out)
        return
    found = [name for name in RUN_FILES if (out / name).exists()]
    if found:
        raise BratsInputError(
            f"the run folder already holds a run ({', '.join(found)}): use --resume to "
            "continue it, or give a new --out",
            out,
        )


class ProgressLog:
    """Append-only JSON-lines event log (flushed per event so a GUI can tail it)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)

    def write(self, event: Mapping[str, Any]) -> None:
        """Append one event as a JSON line."""
        with open(self.path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(event, default=_json_default) + "\n")


def _json_default(value: Any) -> Any:
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    if isinstance(value, (Path, tuple)):
        return str(value) if isinstance(value, Path) else list(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


class StopRequest:
    """Tells the training loop to stop: STOP file in the run folder, SIGINT or SIGTERM.

    Use as a context manager; signal handlers are installed only in the main thread and the
    previous handlers are restored on exit.
    """

    def __init__(self, run_dir: str | Path) -> None:
        self.stop_file = Path(run_dir) / STOP_FILE
        self.reason: str | None = None
        self._previous: dict[int, Any] = {}

    def clear_stale(self) -> None:
        """Remove a STOP file left by an earlier (stopped) run."""
        if self.stop_file.exists():
            logger.info("removing old stop file %s", self.stop_file)
            self.stop_file.unlink(missing_ok=True)

    def _handler(self, signum: int, frame: Any) -> None:  # noqa: ARG002
        name = signal.Signals(signum).name
        if self.reason is not None and name == "SIGINT" and self.reason.startswith("signal"):
            raise KeyboardInterrupt  # second Ctrl-C: give up at once
        self.reason = f"signal {name}"
        logger.warning("%s received: stopping after the current step", name)

    def __enter__(self) -> StopRequest:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._previous[sig] = signal.signal(sig, self._handler)
        return self

    def __exit__(self, *exc: Any) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()

    @property
    def requested(self) -> bool:
        """Whether a stop was asked for (checks the STOP file)."""
        if self.reason is None and self.stop_file.exists():
            self.reason = "stop-file"
        return self.reason is not None


def capture_rng() -> dict[str, Any]:
    """Python, NumPy and torch RNG states as tensors / plain lists (weights_only-safe)."""
    py_version, py_state, py_gauss = random.getstate()
    np_state = np.random.get_state(legacy=False)  # the legacy tuple's values, by name
    state: dict[str, Any] = {
        "python": [int(py_version), list(py_state), py_gauss],
        "numpy": {
            "key": torch.from_numpy(np_state["state"]["key"].astype(np.int64)),
            "pos": int(np_state["state"]["pos"]),
            "has_gauss": int(np_state["has_gauss"]),
            "cached_gaussian": float(np_state["gauss"]),
        },
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = [s for s in torch.cuda.get_rng_state_all()]
    return state


def restore_rng(state: dict[str, Any]) -> None:
    """Inverse of :func:`capture_rng`."""
    version, py_state, gauss = state["python"]
    random.setstate((int(version), tuple(int(v) for v in py_state), gauss))
    n = state["numpy"]
    np.random.set_state(
        (
            "MT19937",
            n["key"].numpy().astype(np.uint32),
            int(n["pos"]),
            int(n["has_gauss"]),
            float(n["cached_gaussian"]),
        )
    )
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def weights_digest(tensors: dict[str, torch.Tensor]) -> str:
    """SHA-256 of named tensors (names, dtypes, shapes and bytes, in name order).

    DDP ranks store the digest of their parameters beside their RNG state: equal digests show
    that gradient synchronisation kept every rank's weights identical.
    """
    digest = hashlib.sha256()
    for name in sorted(tensors):
        t = tensors[name].detach().cpu().contiguous()
        digest.update(f"{name}:{t.dtype}:{tuple(t.shape)}".encode())
        digest.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def save_atomic(obj: Any, path: str | Path) -> Path:
    """``torch.save`` ``obj`` to ``path`` atomically (see :func:`bratseg.atomic.atomic_write`)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(path) as handle:
        torch.save(obj, handle)
    return path


def load_state(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a resume state written by :func:`save_atomic` (``weights_only=True``)."""
    return torch.load(path, map_location=map_location, weights_only=True)


def write_json_atomic(data: dict[str, Any], path: str | Path) -> None:
    """Write ``data`` as indented JSON to ``path`` atomically."""
    text = json.dumps(data, indent=2, default=_json_default)
    with atomic_write(path) as handle:
        handle.write(text.encode("utf-8"))


class Timer:
    """Wall-clock seconds of training, carried over a resume (``offset``)."""

    def __init__(self, offset: float = 0.0) -> None:
        self.offset = float(offset)
        self.start = time.monotonic()

    @property
    def elapsed(self) -> float:  # noqa: D102
        return self.offset + time.monotonic() - self.start
