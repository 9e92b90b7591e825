"""Command-line flags derived from a config dataclass's declared settings.

Each field declared with :func:`bratseg.configdict.setting` becomes one flag of an argparse
group: ``--field-name`` (or the declared ``flag``), typed by the field's default, with the
declared help and choices; true/false settings get ``--x`` / ``--no-x``. Every flag defaults to
None ("not given"), so that only what the user typed overrides the model's own settings.
"""

from __future__ import annotations

import argparse
from typing import Any

from bratseg.configdict import declared_settings
from bratseg.errors import BratsInputError


def flag_of(name: str, flag: str | None) -> str:
    """The command-line flag of the field ``name`` (its declared ``flag`` or ``--name``)."""
    return flag or "--" + name.replace("_", "-")


def _dest(flag: str) -> str:
    return flag.lstrip("-").replace("-", "_")


def add_setting_flags(group: Any, cls: type) -> None:
    """Add one flag per declared setting of the dataclass ``cls`` to ``group`` (a parser or
    argument group)."""
    for f, spec in declared_settings(cls):
        flag = flag_of(f.name, spec.flag)
        if spec.choices is not None:
            group.add_argument(flag, choices=spec.choices, help=spec.help)
        elif isinstance(f.default, bool):
            group.add_argument(
                flag, action=argparse.BooleanOptionalAction, default=None, help=spec.help
            )
        else:
            kind = int if isinstance(f.default, int) else float
            group.add_argument(flag, type=kind, metavar=spec.metavar, help=spec.help)


def setting_overrides(args: argparse.Namespace, cls: type) -> dict[str, Any]:
    """Field -> value of the setting flags given on the command line, range-checked.

    Raises:
        BratsInputError: A value is outside its declared range (the message names the flag).
    """
    changes: dict[str, Any] = {}
    for f, spec in declared_settings(cls):
        flag = flag_of(f.name, spec.flag)
        value = getattr(args, _dest(flag), None)
        if value is None:
            continue
        try:
            cls(**{f.name: value})  # the config's own range check, on this value alone
        except BratsInputError as exc:
            raise BratsInputError(f"{flag}: {exc.reason}") from None
        changes[f.name] = value
    return changes
