"""Output folders built aside and swapped into place: an export, a prepared case or a DICOM
folder is either the old one or the complete new one.

:func:`staging_folder` makes a hidden folder beside the output (same file system) and removes it
if the build fails or is interrupted; :func:`swap_in_folder` gives the finished folder its name,
keeping an old folder until the new one is in place; :func:`restore_replaced` puts back an old
folder that a killed process left aside. Files inside are written with
:func:`bratseg.atomic.atomic_write`.
"""

from __future__ import annotations

import errno
import glob
import logging
import os
import re
import secrets
import shutil
import stat
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from bratseg.atomic import _TEMP_NAME_ATTEMPTS, _process_alive

__all__ = ["restore_replaced", "staging_folder", "swap_in_folder"]

logger = logging.getLogger(__name__)


@contextmanager
def staging_folder(parent: str | Path, prefix: str) -> Iterator[Path]:
    """A new hidden folder ``<prefix><pid>-<random>`` in ``parent`` to build an output in; the
    block moves it into place. If the block raises or is interrupted, the folder and everything
    in it are removed, found by this process's name prefix, not by the returned path: a SIGTERM
    can land between the folder's creation and the assignment of its name.

    Args:
        parent: Where the folder is made (beside the final output, same file system).
        prefix: Start of its name, e.g. ``".CASE.partial-"`` (:func:`bratseg.atomic.remove_stale_temporaries`
            finds the leftovers of killed processes by it).
    """
    own = f"{prefix}{os.getpid()}-"
    try:
        yield _new_folder(Path(parent), own)
    except BaseException:
        for leftover in Path(parent).glob(f"{glob.escape(own)}*"):
            shutil.rmtree(leftover, ignore_errors=True)
        raise


def _new_folder(parent: Path, prefix: str) -> Path:
    """Create ``parent/<prefix><random>`` with mode 0777 less the umask (as :func:`_open_temporary`;
    :func:`tempfile.mkdtemp` would make it 0700, unreadable to the user's group)."""
    for _ in range(_TEMP_NAME_ATTEMPTS):
        path = parent / f"{prefix}{secrets.token_hex(4)}"
        try:
            path.mkdir(mode=0o777)
        except FileExistsError:
            continue
        return path
    raise FileExistsError(errno.EEXIST, "no free staging folder name", str(parent))


def swap_in_folder(stage: str | Path, final: str | Path) -> None:
    """Give the finished folder ``stage`` the name ``final``, replacing a folder already there
    (whose permissions it takes).

    The old folder is renamed aside (``.<name>.replaced-<pid>-<ns>``) and removed only once the
    new one is in place; an exception or interrupt between the two renames puts it back. A
    process killed outright leaves the aside folder, which the next swap into ``final`` returns
    to its place (or removes, when ``final`` exists): :func:`restore_replaced`.
    """
    stage, final = Path(stage), Path(final)
    restore_replaced(final)
    aside = final.parent / f"{_aside_prefix(final)}{os.getpid()}-{time.time_ns()}"
    if final.is_dir():  # a replaced folder keeps its permissions, as a replaced file does
        os.chmod(stage, stat.S_IMODE(final.stat().st_mode))
    try:
        if final.exists():
            os.replace(final, aside)
        os.replace(stage, final)
    except BaseException:
        if aside.exists() and not final.exists():
            os.replace(aside, final)
        raise
    shutil.rmtree(aside, ignore_errors=True)


def restore_replaced(final: str | Path) -> list[Path]:
    """Deal with the folders that killed processes left aside while replacing ``final``
    (:func:`swap_in_folder`): the newest goes back to ``final`` when ``final`` is missing, the
    others are removed; each action is logged as a warning.

    Returns:
        The aside folders removed or put back.
    """
    final = Path(final)
    prefix = _aside_prefix(final)
    found = []
    for path in final.parent.glob(f"{glob.escape(prefix)}*"):
        owner = re.fullmatch(r"(\d+)-(\d+)", path.name[len(prefix) :])
        if owner is not None and not _process_alive(int(owner.group(1))):
            found.append((int(owner.group(2)), path))
    handled = []
    for _, path in sorted(found, reverse=True):
        if not final.exists():
            os.replace(path, final)
            logger.warning(
                "%s: put back in place of %s (its replacement was interrupted)", path, final
            )
        else:
            shutil.rmtree(path, ignore_errors=True)
            logger.warning("%s: removed the old copy of %s left by an interrupted run", path, final)
        handled.append(path)
    return handled


def _aside_prefix(final: Path) -> str:
    return f".{final.name}.replaced-"
