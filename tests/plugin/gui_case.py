"""What the napari GUI tests share: the real cases they open and how long they wait for a worker."""

from __future__ import annotations

from pathlib import Path

import pytest

from bratseg.sample import PACKAGED_SAMPLE

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / ".." / "shared" / "data"
BRATS2018 = DATA / "brats2018"
#: A case of the shared data, for the tests that need its folder of cases (datasets, worklists).
CASE = BRATS2018 / "Brats18_2013_2_1"
#: Skip a test when the shared data is absent.
NEEDS_CASE = pytest.mark.skipif(
    not CASE.is_dir(), reason="shared BraTS data (../shared/data) absent"
)
#: The case the docks open where any real case will do: the BraTS 2018 case shipped in the package
#: (with its reference label map), so those tests need no shared data.
SAMPLE_CASE = PACKAGED_SAMPLE
#: Skip a test when this installation lacks the packaged case.
NEEDS_SAMPLE = pytest.mark.skipif(
    not SAMPLE_CASE.is_dir(), reason="the packaged sample case is missing from this installation"
)
#: Generous: CI machines are often busy (``qtbot.waitUntil`` polls, so a fast run stays fast).
WORKER_TIMEOUT_MS = 600_000
