"""The user's folders, in one place: data home, cache, own models, training runs, corrected
datasets and review sessions.

``$BRATSEG_HOME`` moves them all; ``$BRATSEG_SESSIONS`` moves the review sessions alone. Without
it, an existing ``~/.napari-brats`` (earlier versions) keeps being used, else the platform's user
data and cache folders (platformdirs).
"""

from __future__ import annotations

import os
from pathlib import Path

#: Folder of earlier versions, still used when it exists (models and sessions stay where they are).
LEGACY_HOME = Path("~/.napari-brats")


def bratseg_home() -> Path:
    """The user data folder: ``$BRATSEG_HOME``; else ``~/.napari-brats`` when it exists (earlier
    versions); else the platform's user data folder (platformdirs: ``~/.local/share/napari-brats``
    on Linux, ``~/Library/Application Support/napari-brats`` on macOS, ``%LOCALAPPDATA%`` on
    Windows)."""
    env = os.environ.get("BRATSEG_HOME")
    if env:
        return Path(env).expanduser()
    legacy = LEGACY_HOME.expanduser()
    if legacy.is_dir():
        return legacy
    import platformdirs

    return Path(platformdirs.user_data_dir("napari-brats", appauthor=False))


def bratseg_cache() -> Path:
    """The cache folder: ``$BRATSEG_HOME/cache`` when set, ``~/.napari-brats/cache`` when that
    exists, else the platform's user cache folder (platformdirs)."""
    env = os.environ.get("BRATSEG_HOME")
    if env:
        return Path(env).expanduser() / "cache"
    legacy = LEGACY_HOME.expanduser()
    if legacy.is_dir():
        return legacy / "cache"
    import platformdirs

    return Path(platformdirs.user_cache_dir("napari-brats", appauthor=False))


def user_models_dir() -> Path:
    """Folder of the user's checkpoints (may not exist yet)."""
    return bratseg_home() / "models"


def runs_dir() -> Path:
    """Training runs started from the Training dock: ``$BRATSEG_HOME/runs``."""
    return bratseg_home() / "runs"


def corrected_datasets_dir() -> Path:
    """Where the Export dock writes corrected cases by default:
    ``$BRATSEG_HOME/datasets/corrected``."""
    return bratseg_home() / "datasets" / "corrected"


def sessions_dir() -> Path:
    """``$BRATSEG_SESSIONS``, else ``$BRATSEG_HOME/sessions`` (see :func:`bratseg_home`)."""
    override = os.environ.get("BRATSEG_SESSIONS")
    return Path(override).expanduser() if override else bratseg_home() / "sessions"
