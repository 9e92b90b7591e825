"""Atomic file writing: the destination is either the old file or the complete new one.

Every writer in the project (checkpoints, resume state, run JSON, NIfTI exports, the training
cache, installed user models) goes through :func:`atomic_write`:

1. the bytes go to a hidden temporary file in the destination folder (same file system, so the
   final rename is atomic), created with the permissions a normal new file gets (0666 minus the
   umask) or, when replacing, those of the file being replaced;
2. the file is flushed and fsync'ed, then renamed over the destination with :func:`os.replace`;
   without ``overwrite`` it is instead hard-linked to the destination name, which fails if that
   name exists (even one created a moment ago by another process), then the temporary name is
   unlinked; where hard links are unsupported (some network and FAT file systems) an
   ``O_CREAT | O_EXCL`` placeholder reserves the name and the rename replaces only it;
3. the folder is fsync'ed so the rename itself survives a crash (best effort);
4. on any failure (including KeyboardInterrupt, and SIGTERM, which the CLI turns into one) the
   temporary file is removed and an existing destination is left untouched.

Only SIGKILL or a power cut can leave a temporary file behind. Its name carries the writing
process's id (``.<name>.<pid>-<random>.tmp``), so the next write to the same destination removes
it once that process is gone (:func:`remove_stale_temporaries`, also used for the hidden
``.partial-`` folders of dataset exports). :func:`atomic_write_all` writes several files all or
nothing. Whole output folders are built and swapped in by :mod:`bratseg.atomic_folders`.
"""

from __future__ import annotations

import errno
import glob
import logging
import os
import re
import secrets
import shutil
import time
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import BinaryIO

__all__ = [
    "atomic_write",
    "atomic_write_all",
    "fsync_folder",
    "remove_stale_temporaries",
    "temporary_prefix",
]

logger = logging.getLogger(__name__)

#: Attempts at finding an unused temporary name (collisions are astronomically unlikely).
_TEMP_NAME_ATTEMPTS = 100

#: A leftover whose writing process is gone is removed only when older than this (seconds): a
#: grace period for a file system shared with other machines, whose process ids mean nothing here.
STALE_GRACE_S = 60.0

#: A leftover without a process id in its name (older versions) is removed when older than this.
STALE_UNKNOWN_OWNER_S = 24 * 3600.0


@contextmanager
def atomic_write(path: str | Path, *, overwrite: bool = True) -> Iterator[BinaryIO]:
    """Open a temporary file for writing that replaces ``path`` when the block ends cleanly.

    Example::

        with atomic_write(out / "state.pt") as handle:
            torch.save(state, handle)

    The destination folder must exist (callers create it when that is their policy).

    Args:
        path: Destination file.
        overwrite: Replace an existing ``path``; when False an existing file is refused before
            anything is written (and again just before the rename).

    Yields:
        A binary file handle open on the temporary file (do not close it).

    Raises:
        FileExistsError: ``path`` exists and ``overwrite`` is False.
        OSError: Anything the file system refuses (the temporary file is removed).
    """
    path = Path(path)
    if not overwrite and path.exists():
        raise FileExistsError(errno.EEXIST, "file exists; refusing to overwrite", str(path))
    remove_stale_temporaries(path.parent, f".{path.name}.", ".tmp")
    replaced_mode = _existing_mode(path)
    try:
        tmp, handle = _open_temporary(path)
        with handle:
            yield handle
            handle.flush()
            if replaced_mode is not None:
                os.chmod(tmp, replaced_mode)
            os.fsync(handle.fileno())
        if overwrite:
            os.replace(tmp, path)
        else:
            _place_without_clobbering(tmp, path)
    except BaseException:
        # by name, not by ``tmp``: an interrupt (SIGTERM) can land between the file's creation
        # and the assignment, and then only this process's prefix finds it
        _remove_own_temporaries(path)
        raise
    fsync_folder(path.parent)


@contextmanager
def atomic_write_all(
    paths: Sequence[str | Path], *, overwrite: bool = True
) -> Iterator[list[BinaryIO]]:
    """:func:`atomic_write` for several files at once: all of them are put in place, or none.

    Every file is written completely to its temporary file before the first rename. When a
    rename fails (e.g. another process created one of the names meanwhile), the files already
    put in place by this call that did not exist before are removed again.

    Yields:
        One binary handle per path, in order.

    Raises:
        FileExistsError: A path exists and ``overwrite`` is False.
        OSError: Anything the file system refuses.
    """
    targets = [Path(p) for p in paths]
    new = [not p.exists() and not p.is_symlink() for p in targets]
    placed: list[Path] = []
    try:
        with ExitStack() as stack:
            handles = [
                stack.enter_context(_recording(atomic_write(p, overwrite=overwrite), p, placed))
                for p in targets
            ]
            yield handles
    except BaseException as exc:
        # Files this call put in place go again. After a name clash only those recorded as
        # placed (the clashing name is another writer's); after an interrupt every new name,
        # since one may land between a rename and its record.
        clash = isinstance(exc, FileExistsError)
        for path, was_new in zip(targets, new):
            if was_new and (path in placed or not clash):
                path.unlink(missing_ok=True)
        raise


@contextmanager
def _recording(writer, path: Path, placed: list[Path]) -> Iterator[BinaryIO]:
    """Enter ``writer`` (an :func:`atomic_write`) and note ``path`` once it is in place."""
    with writer as handle:
        yield handle
    placed.append(path)


def temporary_prefix(name: str) -> str:
    """Start of a hidden leftover's name for ``name``, written by this process: ``.<name>.<pid>-``."""
    return f".{name}.{os.getpid()}-"


def remove_stale_temporaries(folder: str | Path, prefix: str, suffix: str = "") -> list[Path]:
    """Remove hidden leftovers of interrupted writes in ``folder`` (best effort).

    A leftover is an entry named ``<prefix><pid>-<anything><suffix>`` or
    ``<prefix><pid><suffix>`` whose process no longer runs (and older than
    :data:`STALE_GRACE_S`), or one without a process id older than :data:`STALE_UNKNOWN_OWNER_S`. Files and folders (a dataset export's ``.partial-`` folder)
    alike; each removal is logged as a warning.

    Args:
        folder: Where to look.
        prefix: Start of the names, e.g. ``".out.nii.gz."``.
        suffix: End of the names, e.g. ``".tmp"``.

    Returns:
        The entries removed.
    """
    removed: list[Path] = []
    try:
        entries = [e for e in os.scandir(folder) if e.name.startswith(prefix)]
    except OSError:
        return removed
    now = time.time()
    for entry in entries:
        if not entry.name.endswith(suffix):
            continue
        middle = entry.name[len(prefix) : len(entry.name) - len(suffix)]
        try:
            age = now - entry.stat(follow_symlinks=False).st_mtime
        except OSError:
            continue
        owner = re.fullmatch(r"(\d+)(-\w+)?", middle)  # <pid>-<random>, or <pid> alone
        if owner is not None:
            stale = age > STALE_GRACE_S and not _process_alive(int(owner.group(1)))
        else:
            stale = re.fullmatch(r"\w+", middle) is not None and age > STALE_UNKNOWN_OWNER_S
        if not stale:
            continue
        path = Path(entry.path)
        try:
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(path)
            else:
                path.unlink()
        except OSError as exc:
            logger.warning("%s: cannot remove leftover of an interrupted run (%s)", path, exc)
            continue
        logger.warning("%s: removed the leftover of an interrupted run", path)
        removed.append(path)
    return removed


def _process_alive(pid: int) -> bool:
    """Whether a process with this id runs on this machine (ours counts as running)."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True  # exists, owned by someone else (or cannot tell: keep the file)
    return True


def _place_without_clobbering(tmp: Path, path: Path) -> None:
    """Give ``tmp`` the name ``path`` atomically, failing if ``path`` exists at that moment.

    Raises:
        FileExistsError: ``path`` exists (the temporary file is left for the caller to remove).
    """
    try:
        os.link(tmp, path)
    except FileExistsError:
        raise FileExistsError(
            errno.EEXIST, "file exists; refusing to overwrite", str(path)
        ) from None
    except OSError as exc:
        if exc.errno not in _NO_LINK_ERRNOS:
            raise
        _place_by_placeholder(tmp, path)
        return
    tmp.unlink()


#: errno values meaning "this file system has no hard links".
_NO_LINK_ERRNOS = {
    errno.EPERM,
    errno.EOPNOTSUPP,
    errno.ENOTSUP,
    errno.EXDEV,
    getattr(errno, "EMLINK", -1),
}


def _place_by_placeholder(tmp: Path, path: Path) -> None:
    """Fallback of :func:`_place_without_clobbering`: reserve ``path`` with an exclusive create."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    except FileExistsError:
        raise FileExistsError(
            errno.EEXIST, "file exists; refusing to overwrite", str(path)
        ) from None
    os.close(fd)
    try:
        os.replace(tmp, path)  # replaces only our own empty placeholder
    except BaseException:
        path.unlink(missing_ok=True)
        raise


def fsync_folder(folder: str | Path) -> None:
    """Persist renames in ``folder`` (best effort; not possible on every platform)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _existing_mode(path: Path) -> int | None:
    """Permission bits of the file about to be replaced, or None when there is none."""
    try:
        return path.stat().st_mode & 0o777
    except OSError:
        return None


def _remove_own_temporaries(path: Path) -> None:
    """Remove this process's temporary files for ``path`` (``.<name>.<pid>-*.tmp``)."""
    for leftover in path.parent.glob(f"{glob.escape(temporary_prefix(path.name))}*.tmp"):
        leftover.unlink(missing_ok=True)


def _open_temporary(path: Path) -> tuple[Path, BinaryIO]:
    """Create ``.<name>.<pid>-<random>.tmp`` next to ``path`` with mode 0666 (the kernel applies
    the umask).

    Unlike :func:`tempfile.mkstemp` (always 0600) the file gets the permissions of any new
    file, without reading the process umask (which is not thread-safe).
    """
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    for _ in range(_TEMP_NAME_ATTEMPTS):
        tmp = path.with_name(f"{temporary_prefix(path.name)}{secrets.token_hex(4)}.tmp")
        try:
            fd = os.open(tmp, flags, 0o666)
        except FileExistsError:
            continue
        try:
            return tmp, os.fdopen(fd, "wb")
        except BaseException:
            os.close(fd)
            tmp.unlink(missing_ok=True)
            raise
    raise FileExistsError(errno.EEXIST, "no free temporary file name", str(path.parent))
