"""Two writers of one saved review: a lock per case and the error the second writer gets.

Two viewers (or two processes, or two copies of the same case folder: the key is a hash of the
images) can hold the same case's review. Each save of :class:`bratseg.review.SessionStore` runs
under :func:`case_lock` (one writer at a time, across processes) and checks that the saved
review is still the generation its session was loaded from or last saved as. When another writer
saved in between, the save is refused with :class:`SessionConflictError` instead of silently
replacing the other writer's edits; the caller shows it (a dialog, one CLI line) and decides:
reload the newer review, or save again with ``replace=True`` to keep its own edits instead.

The lock is an OS advisory lock (``flock`` on POSIX, ``msvcrt.locking`` on Windows) on a small
hidden file next to the session folders; the OS releases it when its process dies, so a crash
never leaves a stale lock.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from bratseg.errors import BratsInputError
from bratseg.review.saved_check import SavedSession

#: How long a save waits for another writer of the same case before giving up.
LOCK_TIMEOUT_S = 15.0
_POLL_S = 0.02


class SessionConflictError(BratsInputError):
    """The saved review changed since this session loaded or saved it (another writer saved).

    Attributes:
        case_id: The case.
        mine: The generation this session was based on.
        theirs: The generation now on disk (None when it is unreadable).
    """

    def __init__(
        self, case_id: str, mine: int, theirs: int | None, folder: Path, when: str | None
    ) -> None:
        self.case_id, self.mine, self.theirs = case_id, mine, theirs
        what = f"saved again (save {theirs}, {when or 'time unknown'})" if theirs else "damaged"
        super().__init__(
            f"the review of case {case_id} was {what} by another viewer or process after this "
            f"one loaded save {mine}; these edits were NOT saved: reopen the case to load the "
            "newer review, or save these edits over it",
            folder,
        )


def generation_of(version: str | None) -> int:
    """The generation number in a save id (``"7-<hex>"``, ``"generation-7"``), 0 if none."""
    digits = [part for part in str(version or "").split("-") if part.isdigit()]
    return int(digits[0]) if digits else 0


def refuse_stale(case_id: str, mine: str | None, on_disk: SavedSession | None) -> None:
    """Refuse a save based on save ``mine`` when ``on_disk`` is another (or damaged) save.

    A session never saved nor loaded (``mine`` None: a fresh model run) replaces anything, and
    anything may be saved where nothing is.

    Raises:
        SessionConflictError: Another writer saved since (nothing must be written).
    """
    if mine is None or on_disk is None:
        return
    if on_disk.problem or on_disk.version != mine:
        raise SessionConflictError(
            case_id,
            generation_of(mine),
            None if on_disk.problem else int(on_disk.meta.get("generation", 0)),
            on_disk.folder,
            None if on_disk.problem else on_disk.meta.get("last_change"),
        )


def lock_path(root: Path, key: str) -> Path:
    """The lock file of case ``key``'s session folder (beside it, hidden)."""
    return root / f".{key}.lock"


@contextmanager
def case_lock(path: Path, timeout_s: float = LOCK_TIMEOUT_S) -> Iterator[None]:
    """Hold the exclusive lock ``path`` (created when missing) for the ``with`` block.

    Raises:
        BratsInputError: Another writer held it for ``timeout_s`` seconds.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+b") as handle:
        deadline = time.monotonic() + timeout_s
        while not _try_lock(handle.fileno()):
            if time.monotonic() > deadline:
                raise BratsInputError(
                    f"another viewer or process kept this review locked for {timeout_s:g} s; "
                    "try again",
                    path.parent,
                )
            time.sleep(_POLL_S)
        try:
            yield
        finally:
            _unlock(handle.fileno())


if sys.platform == "win32":
    import msvcrt

    def _try_lock(fd: int) -> bool:
        try:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        except OSError:
            return False
        return True

    def _unlock(fd: int) -> None:
        msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)

else:
    import fcntl

    def _try_lock(fd: int) -> bool:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True

    def _unlock(fd: int) -> None:
        fcntl.flock(fd, fcntl.LOCK_UN)
