"""What the Worklist dock shows of a batch job: progress bar position and status line per event.

:func:`~bratseg.review.worklist.segment_all` and :func:`~bratseg.review.worklist.export_approved`
yield :class:`~bratseg.review.batch.BatchEvent` items; :class:`BatchStatus` turns each into the
bar's range and value and the status text, and keeps the failures for the final line. No Qt here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bratseg.review.batch import BatchEvent

#: Event kinds that close one case of the batch.
CASE_DONE = ("done", "skipped", "failed")


@dataclass
class BatchStatus:
    """The running display state of one batch job."""

    failures: list[str] = field(default_factory=list)

    def progress(self, event: BatchEvent) -> tuple[int, int]:
        """``(maximum, value)`` of the progress bar: 100 units per case, steps within a case."""
        total = max(event.total, 1)
        within = event.step / event.steps if event.steps else float(event.kind in CASE_DONE)
        value = int(100 * (max(event.index, 0) + within)) if event.index >= 0 else 100 * total
        return 100 * total, value

    def message(self, event: BatchEvent) -> str:
        """The status line after ``event`` (the last failure is repeated at the end)."""
        if event.kind == "failed":
            self.failures.append(event.message)
        if self.failures and event.kind == "finished":
            return f"{event.message} ({len(self.failures)} failed: {self.failures[-1]})"
        return str(event.message)

    @staticmethod
    def closes_case(event: BatchEvent) -> bool:
        """True when ``event`` ends one case (its table row is to be refreshed)."""
        return event.index >= 0 and event.kind in CASE_DONE
