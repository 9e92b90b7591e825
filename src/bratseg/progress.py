"""Progress reports of the engine's long jobs, and draining a job without a progress display.

Long work in the engine (inference, aligning a case's series, training) is a generator that
yields :class:`Progress` between steps and returns its result; the CLI drives it with a progress
bar, the plugin inside a worker thread (closing the generator at a yield cancels the job
cleanly), tests with :func:`run_to_end`.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import TypeVar

T = TypeVar("T")


@dataclass
class Progress:
    """One progress report: ``step`` of ``total`` steps done, and what happens now."""

    step: int
    total: int
    message: str


def run_to_end(
    job: Generator[Progress, None, T], on_progress: Callable[[Progress], None] | None = None
) -> T:
    """Run a job generator to its end, passing each report to ``on_progress``; its result."""
    while True:
        try:
            report = next(job)
        except StopIteration as done:
            return done.value
        if on_progress is not None:
            on_progress(report)
