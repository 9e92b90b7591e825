"""Fixtures of the napari GUI tests (the stand-in checkpoint, a private home folder)."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="module")
def checkpoint(standin, tmp_path_factory) -> Path:
    """The deterministic region stand-in model of ``tests/standin.py``, saved as a checkpoint."""
    return standin.save_standin(
        tmp_path_factory.mktemp("standin") / "standin-regions.pt", "regions"
    )


@pytest.fixture(scope="session")
def sample_case():
    """The BraTS case shipped in the package, loaded (the one the GUI tests open)."""
    from bratseg.io import load_case
    from bratseg.sample import PACKAGED_SAMPLE

    if not PACKAGED_SAMPLE.is_dir():
        pytest.skip("the packaged sample case is missing from this installation")
    return load_case(PACKAGED_SAMPLE)


@pytest.fixture
def own_home(monkeypatch, tmp_path):
    """Two torch threads; user models and sessions under ``tmp_path/home``, nothing shared."""
    import torch

    torch.set_num_threads(2)
    monkeypatch.setenv("BRATSEG_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("BRATSEG_SESSIONS", raising=False)
