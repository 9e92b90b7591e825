"""What the napari GUI tests share: the real case they open and how long they wait for a worker."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / ".." / "shared" / "data"
BRATS2018 = DATA / "brats2018"
#: The case the docks open (a BraTS 2018 case with a reference label map).
CASE = BRATS2018 / "Brats18_2013_2_1"
#: Skip a test when the shared data is absent.
NEEDS_CASE = pytest.mark.skipif(
    not CASE.is_dir(), reason="shared BraTS data (../shared/data) absent"
)
#: Generous: CI machines are often busy (``qtbot.waitUntil`` polls, so a fast run stays fast).
WORKER_TIMEOUT_MS = 600_000
