"""Where user data and caches go: $BRATSEG_HOME, an existing ~/.napari-brats, else platformdirs."""

from __future__ import annotations

from pathlib import Path

import pytest

from bratseg import user_folders as zoo
from bratseg.training.setup import default_cache_dir


def test_user_folders_follow_the_platform_unless_told(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import platformdirs

    monkeypatch.delenv("BRATSEG_HOME", raising=False)
    monkeypatch.delenv("BRATSEG_SESSIONS", raising=False)  # the tests' own sessions folder
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr(zoo, "LEGACY_HOME", tmp_path / ".napari-brats")
    assert zoo.bratseg_home() == Path(platformdirs.user_data_dir("napari-brats", appauthor=False))
    assert zoo.bratseg_home().is_relative_to(tmp_path / "data")
    assert (
        default_cache_dir()
        == Path(platformdirs.user_cache_dir("napari-brats", appauthor=False)) / "crops"
    )
    assert zoo.user_models_dir() == zoo.bratseg_home() / "models"
    assert zoo.sessions_dir() == zoo.bratseg_home() / "sessions"
    monkeypatch.setenv("BRATSEG_SESSIONS", str(tmp_path / "reviews"))  # sessions alone move
    assert zoo.sessions_dir() == tmp_path / "reviews"
    assert zoo.user_models_dir() == zoo.bratseg_home() / "models"
    monkeypatch.delenv("BRATSEG_SESSIONS")
    (tmp_path / ".napari-brats").mkdir()  # an earlier version's folder stays in use
    assert zoo.bratseg_home() == tmp_path / ".napari-brats"
    assert default_cache_dir() == tmp_path / ".napari-brats" / "cache" / "crops"
    monkeypatch.setenv("BRATSEG_HOME", str(tmp_path / "mine"))  # the override wins
    assert (
        zoo.bratseg_home() == tmp_path / "mine"
        and default_cache_dir() == tmp_path / "mine" / "cache" / "crops"
    )
