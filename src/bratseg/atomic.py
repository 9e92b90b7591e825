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
4. on any failure (including KeyboardInterrupt) the temporary file is removed and an existing
   destination is left untouched.
"""

from __future__ import annotations

import errno
import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

__all__ = ["atomic_write", "fsync_folder"]

#: Attempts at finding an unused temporary name (collisions are astronomically unlikely).
_TEMP_NAME_ATTEMPTS = 100


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
    replaced_mode = _existing_mode(path)
    tmp, handle = _open_temporary(path)
    try:
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
        tmp.unlink(missing_ok=True)
        raise
    fsync_folder(path.parent)


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


def _open_temporary(path: Path) -> tuple[Path, BinaryIO]:
    """Create ``.<name>.<random>.tmp`` next to ``path`` with mode 0666 (the kernel applies the umask).

    Unlike :func:`tempfile.mkstemp` (always 0600) the file gets the permissions of any new
    file, without reading the process umask (which is not thread-safe).
    """
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    for _ in range(_TEMP_NAME_ATTEMPTS):
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
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
