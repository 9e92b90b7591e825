"""The Worklist dock's batch display (no Qt): bar position and status line per engine event."""

from __future__ import annotations

import pytest

pytest.importorskip("qtpy")

from bratseg.review.batch import BatchEvent  # noqa: E402


def test_bar_moves_case_by_case_and_the_last_line_repeats_the_last_failure():
    from napari_brats._widgets._worklist_batch import BatchStatus

    status = BatchStatus()
    events = [
        BatchEvent("case", 0, 3, "a", "case 1/3: a"),
        BatchEvent("progress", 0, 3, "a", "a: network", step=1, steps=4),
        BatchEvent("done", 0, 3, "a", "a: done"),
        BatchEvent("failed", 1, 3, "b", "b: bad T2"),
        BatchEvent("skipped", 2, 3, "c", "c: approved"),
        BatchEvent("finished", -1, 3, "", "3 cases: 1 done"),
    ]
    seen = [(status.progress(e), status.message(e), status.closes_case(e)) for e in events]
    assert [p for p, _, _ in seen] == [
        (300, 0),
        (300, 25),
        (300, 100),
        (300, 200),
        (300, 300),
        (300, 300),
    ]
    assert [c for _, _, c in seen] == [False, False, True, True, True, False]
    assert seen[-1][1] == "3 cases: 1 done (1 failed: b: bad T2)"
    assert status.failures == ["b: bad T2"]
