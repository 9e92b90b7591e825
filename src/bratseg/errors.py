"""Exceptions the engine raises for bad user input.

Every problem with a user's file or argument is a :class:`BratsInputError` whose message is one
line naming the file and what is wrong. The CLI prints it to stderr and exits with code 2; the
plugin shows it in a dialog.
"""

from __future__ import annotations

from pathlib import Path


class BratsInputError(ValueError):
    """A user-supplied file or argument cannot be used.

    Args:
        message: What is wrong, in one line.
        path: The offending file or folder, if any; it is prefixed to the message.
    """

    def __init__(self, message: str, path: str | Path | None = None) -> None:
        self.path = Path(path) if path is not None else None
        self.reason = message
        text = f"{self.path}: {message}" if self.path is not None else message
        super().__init__(text)


class CheckpointError(BratsInputError):
    """A model checkpoint is unsafe, corrupt, or does not fit the requested architecture."""


class Cancelled(Exception):
    """Long work (inference, training) was stopped by the user between two steps.

    A plain :class:`Exception`, not a :class:`RuntimeError`: a cancel is not a failure, and
    ``except RuntimeError`` handlers (torch errors; Qt worker threads, which treat a
    RuntimeError as "worker deleted" and drop it silently) must not catch it.
    """
