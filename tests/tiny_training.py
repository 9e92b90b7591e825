"""Tiny real training runs for tests: real BraTS cases linked into a folder of their own, and the
smallest training configuration that still runs every stage of the trainer.

The configuration trains on a 3 mm grid with 32^3 patches and the ``tiny`` preset of the model, so
a step takes well under a second on one CPU thread while the data, augmentation, loss, validation
and checkpoint code are the real ones.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from bratseg.training import TrainConfig

#: Three BraTS 2018 cases of ``../shared/data/brats2018`` with all three tissues.
TRAINING_CASES = ("Brats18_2013_2_1", "Brats18_CBICA_ABM_1", "Brats18_TCIA01_201_1")

#: What every tiny run shares; a test overrides any of it by keyword.
TINY_SETTINGS: dict[str, Any] = {
    "model": "cascade-unet",
    "preset": "tiny",
    "epochs": 1,
    "steps_per_epoch": 2,
    "patch": [32, 32, 32],
    "target_spacing": 3.0,
    "num_workers": 0,
}


def link_cases(root: Path, source: Path, cases: Iterable[str]) -> Path:
    """Make ``root`` a dataset folder holding only ``cases`` of ``source`` (as symlinks).

    Returns ``root``. The case folders themselves are never copied or written.
    """
    root.mkdir(parents=True, exist_ok=True)
    for case in cases:
        (root / case).symlink_to((source / case).resolve(), target_is_directory=True)
    return root


def tiny_config(data: Path, out: Path, cache_dir: Path, **overrides: Any) -> TrainConfig:
    """A :class:`TrainConfig` of :data:`TINY_SETTINGS` on ``data``, writing to ``out``.

    Each config gets its own copy of the settings, so no two share the ``patch`` list."""
    settings = {**copy.deepcopy(TINY_SETTINGS), **overrides}
    return TrainConfig(data=[str(data)], out=str(out), cache_dir=str(cache_dir), **settings)
