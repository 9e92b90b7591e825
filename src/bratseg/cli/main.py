"""Entry point of the ``napari-brats`` command line.

Each command lives in its own module listed in :data:`COMMAND_MODULES`; a module defines
``register(subparsers) -> None`` (adds its parser, sets ``func=run``) and ``run(args) -> int``.
Other installed packages add commands through the :data:`COMMAND_ENTRY_POINTS` entry-point
group (the plugin's ``view``).

Exit codes: 0 success, 1 unexpected error, 2 bad input (one line on stderr naming the file and
the problem; no traceback), 130 interrupted or cancelled, 143 terminated (SIGTERM, cleaned up
like Ctrl-C).
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
import traceback
from collections.abc import Sequence
from typing import NoReturn

from bratseg import __version__
from bratseg.cli._signals import EXIT_TERMINATED, Terminated, sigterm_as_interrupt
from bratseg.errors import BratsInputError, Cancelled

logger = logging.getLogger(__name__)

PROG = "napari-brats"

#: Modules providing the sub-commands, in the order shown by ``--help``.
COMMAND_MODULES: tuple[str, ...] = (
    "bratseg.cli.info",
    "bratseg.cli.evaluate",
    "bratseg.cli.report",
    "bratseg.cli.export_dicom",
    "bratseg.cli.compare",
    "bratseg.cli.convert",
    "bratseg.cli.convert_dataset",
    "bratseg.cli.prepare",
    "bratseg.cli.predict",
    "bratseg.cli.models",
    "bratseg.cli.train",
    "bratseg.cli.cvsplit",
    "bratseg.cli.sessions",
    "bratseg.cli.worklist",
    "bratseg.cli.sample",
)

#: Entry-point group of commands that other packages add (the plugin adds ``view``: the engine
#: itself never imports napari or Qt).
COMMAND_ENTRY_POINTS = "bratseg.commands"

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130


class OneLineArgumentParser(argparse.ArgumentParser):
    """Argument parser whose usage errors are one stderr line and exit code 2."""

    def error(self, message: str) -> NoReturn:  # noqa: D102
        self.exit(EXIT_BAD_INPUT, f"{PROG}: error: {message} (see {self.prog} --help)\n")


def command_modules() -> list:
    """The engine's command modules, then those that installed packages register as entry points.

    A registered module that cannot be imported (a broken install) is logged and left out, so
    the engine's own commands keep working.
    """
    from importlib.metadata import entry_points

    modules = [importlib.import_module(name) for name in COMMAND_MODULES]
    for point in sorted(entry_points(group=COMMAND_ENTRY_POINTS), key=lambda p: p.name):
        try:
            modules.append(importlib.import_module(point.value))
        except ImportError as exc:
            logger.warning("command %r (%s) is not available: %s", point.name, point.value, exc)
    return modules


def build_parser() -> argparse.ArgumentParser:
    """The full parser with every available sub-command."""
    parser = OneLineArgumentParser(
        prog=PROG,
        description="BraTS brain-tumour MRI segmentation: inspect cases, evaluate and convert "
        "label maps, predict, train and view.",
    )
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    parser.add_argument(
        "-v", "--verbose", action="store_true", help="log progress and show tracebacks"
    )
    sub = parser.add_subparsers(
        dest="command", metavar="COMMAND", parser_class=OneLineArgumentParser
    )
    for module in command_modules():
        module.register(sub)
    seen: set[int] = set()
    for subparser in sub.choices.values():  # also accept `napari-brats COMMAND ... -v`
        if id(subparser) in seen:
            continue
        seen.add(id(subparser))
        try:
            subparser.add_argument(
                "-v",
                "--verbose",
                action="store_true",
                default=argparse.SUPPRESS,
                help="log progress and show tracebacks",
            )
        except argparse.ArgumentError:
            pass  # the command defines its own
    return parser


def configure_logging(verbose: bool) -> None:
    """Log to stderr: INFO with ``--verbose``, else WARNING."""
    level = logging.INFO if verbose else logging.WARNING
    # basicConfig does nothing when the host (e.g. a test runner) already set up logging.
    logging.basicConfig(
        level=level, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )
    logging.getLogger("bratseg").setLevel(level)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line.

    Args:
        argv: Arguments without the program name (default ``sys.argv[1:]``).

    Returns:
        The exit code.
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    verbose = bool(getattr(args, "verbose", False))
    configure_logging(verbose)
    func = getattr(args, "func", None)
    if func is None:
        parser.print_help()
        return EXIT_BAD_INPUT
    try:
        with sigterm_as_interrupt():
            return int(func(args) or 0)
    except BratsInputError as exc:
        if verbose:
            traceback.print_exc()
        _error_line(str(exc))
        return EXIT_BAD_INPUT
    except Terminated:
        _error_line("terminated (SIGTERM)")
        return EXIT_TERMINATED
    except (KeyboardInterrupt, Cancelled):
        _error_line("interrupted")
        return EXIT_INTERRUPTED
    except MemoryError as exc:
        if verbose:
            traceback.print_exc()
        _error_line(_too_large(args, exc))
        return EXIT_BAD_INPUT
    except BrokenPipeError:  # e.g. `napari-brats info ... | head`
        sys.stderr.close()
        return EXIT_OK
    except Exception as exc:  # noqa: BLE001 - the CLI must never dump a raw traceback
        if verbose:
            traceback.print_exc()
            _error_line(f"unexpected {type(exc).__name__}: {_one_line(exc)}")
        else:
            _error_line(
                f"unexpected {type(exc).__name__}: {_one_line(exc)} "
                "(run with --verbose for details)"
            )
        return EXIT_ERROR


def _too_large(args: argparse.Namespace, exc: MemoryError) -> str:
    """The line for a MemoryError: the work does not fit this machine's memory."""
    source = next(
        (getattr(args, a) for a in ("input", "case", "folder") if getattr(args, a, None)), None
    )
    where = f"{source}: " if source else ""
    return (
        f"{where}case too large for this machine's memory ({_one_line(exc)}); free memory, "
        "use a machine with more memory, or a smaller volume"
    )


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text or type(exc).__name__


def _error_line(message: str) -> None:
    from bratseg.text import one_line

    sys.stderr.write(f"{PROG}: error: {one_line(' '.join(message.split()))}\n")
    sys.stderr.flush()


if __name__ == "__main__":
    sys.exit(main())
