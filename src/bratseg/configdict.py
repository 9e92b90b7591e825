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
import math
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


# --------------------------------------------------------------------------- declared settings

#: Key of a :class:`Setting` in a dataclass field's ``metadata``.
SETTING_KEY = "bratseg.setting"


@dataclasses.dataclass(frozen=True)
class Setting:
    """What a front end needs to know about one config field, declared once beside it.

    The command line (flag, type, help), the range check of the config and the plugin's form
    controls are all derived from these values.

    Attributes:
        label: Short control label (a few words).
        help: One-line help text (CLI ``--help``, control tooltip).
        group: Section of the form, e.g. ``"thresholds"`` or ``"ET rules, advanced"``.
        minimum: Smallest accepted value (numbers), None for no lower bound.
        maximum: Largest accepted value (numbers), None for no upper bound.
        step: Step of a slider or spin box (numbers).
        choices: Accepted values (strings).
        flag: Command-line flag when it differs from ``--field-name``.
        metavar: Command-line placeholder of the value.
    """

    label: str
    help: str
    group: str
    minimum: float | None = None
    maximum: float | None = None
    step: float | None = None
    choices: tuple[str, ...] | None = None
    flag: str | None = None
    metavar: str | None = None


def setting(default: Any, **declared: Any) -> Any:
    """A dataclass field with ``default`` and its :class:`Setting` (keyword arguments)."""
    return dataclasses.field(default=default, metadata={SETTING_KEY: Setting(**declared)})


def declared_settings(cls: Any) -> list[tuple[dataclasses.Field, Setting]]:
    """The fields of the dataclass ``cls`` (or instance) that carry a :class:`Setting`, in order."""
    return [
        (f, f.metadata[SETTING_KEY]) for f in dataclasses.fields(cls) if SETTING_KEY in f.metadata
    ]


def _range_text(spec: Setting) -> str:
    if spec.minimum is not None and spec.maximum is not None:
        return f"be between {spec.minimum:g} and {spec.maximum:g}"
    if spec.minimum is not None:
        return f"be >= {spec.minimum:g}"
    return f"be <= {spec.maximum:g}"


def check_settings(config: Any, what: str) -> None:
    """Check and normalise, in place, every declared setting of the dataclass ``config``.

    Numbers take the kind of their field's default (int or float; a float must be finite),
    true/false settings become ``bool``, and each value must lie in its declared range or
    choices.

    Args:
        config: A dataclass instance whose fields were declared with :func:`setting`.
        what: How the error names the config, e.g. ``"postprocessing"``.

    Raises:
        BratsInputError: ``"<what> <field>=<value> must be between <min> and <max>"`` (or the
            choices), naming the first bad field.
    """
    for f, spec in declared_settings(config):
        value = getattr(config, f.name)
        if spec.choices is not None:
            if value not in spec.choices:
                raise BratsInputError(
                    f"unknown {what} {f.name} {value!r}; use one of {', '.join(spec.choices)}"
                )
            continue
        default = f.default
        if isinstance(default, bool):
            setattr(config, f.name, bool(value))
            continue
        try:
            number = int(value) if isinstance(default, int) else float(value)
        except (TypeError, ValueError):
            raise BratsInputError(f"{what} {f.name}={value!r} must be a number") from None
        low, high = spec.minimum, spec.maximum
        if (
            not math.isfinite(number)
            or (low is not None and number < low)
            or (high is not None and number > high)
        ):
            raise BratsInputError(f"{what} {f.name}={value} must {_range_text(spec)}")
        setattr(config, f.name, number)
