"""Atomic file writing: the destination is either the old file or the complete new one.

Every writer in the project (checkpoints, resume state, run JSON, NIfTI exports, the training
cache, installed user models) goes through :func:`atomic_write`:

1. the bytes go to a hidden temporary file in the destination folder (same file system, so the
   final rename is atomic), created with the permissions a normal new file gets (0666 minus the
   umask) or, when replacing, those of the file being replaced;
2. the file is flushed and fsync'ed, then renamed over the destination with :func:`os.replace`;
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
        if not overwrite and path.exists():
            raise FileExistsError(errno.EEXIST, "file exists; refusing to overwrite", str(path))
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_folder(path.parent)


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
