"""One policy for turning plain dicts (JSON, checkpoints, command lines) into config dataclasses.

Every config dataclass of the engine (preprocessing, postprocessing, network, augmentation,
recipe, training run) is rebuilt from a dict by :func:`config_from_dict`:

- an unknown key is an error that names it, the config, and the closest known key (a typo in
  ``--recipe`` or a hand-edited JSON never vanishes silently);
- a value of the wrong kind (a string where the default is a number, a number where it is a
  list of numbers, ...) is an error naming the key and the kind expected; ``None`` is a value
  only for fields typed ``X | None``;
- lists become tuples where the field's default is a tuple (JSON has no tuples);
- missing keys take the field's default.

Errors are :class:`bratseg.errors.BratsInputError`: one line, exit code 2 from the CLI.
"""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Mapping
from typing import Any, TypeVar

from bratseg.errors import BratsInputError

T = TypeVar("T")


def value_kind_error(value: Any, default: Any) -> str | None:
    """Why ``value`` cannot replace a field whose default is ``default`` (``None`` when it can).

    The kind is read off the default: true/false, an integer, a number, a string, or a list of
    numbers for a tuple. A field whose default is ``None`` or another object accepts anything.
    """
    if isinstance(default, bool):
        return None if isinstance(value, bool) else "true or false"
    if isinstance(default, int):
        return None if isinstance(value, int) and not isinstance(value, bool) else "an integer"
    if isinstance(default, float):
        return (
            None if isinstance(value, (int, float)) and not isinstance(value, bool) else "a number"
        )
    if isinstance(default, str):
        return None if isinstance(value, str) else "a string"
    if isinstance(default, tuple):
        ok = (
            isinstance(value, (list, tuple))
            and len(value) >= 1
            and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)
        )
        return None if ok else "a list of numbers"
    return None


def field_defaults(cls: type) -> dict[str, Any]:
    """Field name -> default value (``dataclasses.MISSING`` for a required field)."""
    out: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        if f.default is not dataclasses.MISSING:
            out[f.name] = f.default
        elif f.default_factory is not dataclasses.MISSING:
            out[f.name] = f.default_factory()
        else:
            out[f.name] = dataclasses.MISSING
    return out


def check_config_dict(cls: type, data: Mapping[str, Any], what: str | None = None) -> None:
    """Refuse unknown keys and values of the wrong kind for the dataclass ``cls``.

    Args:
        cls: The config dataclass.
        data: Its dict form (possibly partial).
        what: How the error names the config (default: the class name).

    Raises:
        BratsInputError: Naming the first bad key and what it should be.
    """
    label = what or cls.__name__
    if not isinstance(data, Mapping):
        raise BratsInputError(f"{label} must be an object of settings, got {type(data).__name__}")
    defaults = field_defaults(cls)
    optional = {
        f.name
        for f in dataclasses.fields(cls)
        if "None" in str(f.type) or "Optional" in str(f.type)
    }
    for key, value in data.items():
        if key not in defaults:
            close = difflib.get_close_matches(str(key), list(defaults), n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise BratsInputError(
                f"unknown {label} key {key!r} ({hint}known: {', '.join(sorted(defaults))})"
            )
        default = defaults[key]
        if default is dataclasses.MISSING or (value is None and key in optional):
            continue
        need = value_kind_error(value, default)
        if need:
            raise BratsInputError(f"{label} key {key!r} must be {need}, got {value!r}")


def config_from_dict(
    cls: type[T], data: Mapping[str, Any] | None, what: str | None = None, **nested: Any
) -> T:
    """Build the config dataclass ``cls`` from ``data`` under the strict policy above.

    Args:
        cls: The config dataclass.
        data: Its dict form; missing keys take the defaults; ``None`` means all defaults.
        what: How errors name the config (default: the class name).
        **nested: Already-built values for fields holding another config (e.g. a recipe's
            ``augment``), passed through unchecked.

    Returns:
        The config.

    Raises:
        BratsInputError: An unknown key or a value of the wrong kind.
    """
    data = dict(data or {})
    plain = {k: v for k, v in data.items() if k not in nested}
    check_config_dict(cls, plain, what)
    defaults = field_defaults(cls)
    kwargs = {
        k: (tuple(v) if isinstance(v, list) and isinstance(defaults[k], tuple) else v)
        for k, v in plain.items()
    }
    return cls(**kwargs, **nested)
