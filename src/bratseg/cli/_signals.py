"""SIGTERM handled like Ctrl-C: the command stops, its cleanup runs, nothing partial is left.

``kill PID`` (a scheduler's time limit, a closed session, ``systemctl stop``) sends SIGTERM, whose
default action ends the process at once, before the ``finally`` and ``except BaseException``
blocks that remove temporary files and staging folders can run. :func:`sigterm_as_interrupt`
turns it into :class:`Terminated`, a :class:`KeyboardInterrupt`, so every path that cleans up
after Ctrl-C cleans up after SIGTERM too. Commands with their own handler (``train`` stops after
the current step) install it on top and restore this one when they end.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

#: Exit code of a command stopped by SIGTERM (128 + the signal's number, as shells report it).
EXIT_TERMINATED = 128 + int(signal.SIGTERM)


class Terminated(KeyboardInterrupt):
    """The process received SIGTERM (handled like Ctrl-C)."""


@contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """Within the block, SIGTERM raises :class:`Terminated` in the main thread.

    Further SIGTERMs are ignored while the cleanup runs; the previous handler is restored at the
    end. Outside the main thread (where Python cannot install handlers) this does nothing.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: FrameType | None) -> None:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # let the cleanup finish
        raise Terminated()

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
