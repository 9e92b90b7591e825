"""magicgui form controls built from a config dataclass's declared settings.

Each field declared with :func:`bratseg.configdict.setting` becomes one control: a combo box for
choices, a check box for true/false, a spin box for whole numbers, a slider for fractions; its
range, step, label and one-line help (tooltip) come from the declaration. A new setting of the
config gets its control without any change here.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from magicgui import widgets
from magicgui.widgets.bases import ValueWidget

from bratseg.configdict import Setting

#: Upper end of a spin box whose setting has no declared maximum.
UNBOUNDED_MAX = 10_000_000


def setting_control(field: dataclasses.Field, spec: Setting, value: Any) -> ValueWidget:
    """The control of one declared setting, showing ``value``.

    Args:
        field: The dataclass field (its default gives the kind of value).
        spec: Its :class:`bratseg.configdict.Setting`.
        value: The value to show.
    """
    name, tip = field.name, spec.help
    if spec.choices is not None:
        return widgets.ComboBox(
            choices=spec.choices, value=value, label=spec.label, name=name, tooltip=tip
        )
    if isinstance(field.default, bool):
        return widgets.CheckBox(
            text=spec.label, value=bool(value), label="", name=name, tooltip=tip
        )
    low = spec.minimum if spec.minimum is not None else 0
    high = spec.maximum if spec.maximum is not None else UNBOUNDED_MAX
    if isinstance(field.default, int):
        return widgets.SpinBox(
            min=int(low), max=int(high), step=int(spec.step or 1), value=int(value),
            label=spec.label, name=name, tooltip=tip,
        )  # fmt: skip
    return widgets.FloatSlider(
        min=float(low), max=float(high), step=spec.step or 0.01, value=float(value),
        label=spec.label, name=name, tooltip=tip,
    )  # fmt: skip


def setting_forms(
    config: Any,
) -> tuple[dict[str, ValueWidget], dict[str, widgets.Container]]:
    """Controls for every declared setting of ``config``, and one form per group.

    Args:
        config: A dataclass instance declared with :func:`bratseg.configdict.setting`.

    Returns:
        ``(controls, forms)``: field name -> control, and group -> magicgui ``Container``
        holding that group's controls in field order.
    """
    from bratseg.configdict import declared_settings

    controls: dict[str, ValueWidget] = {}
    groups: dict[str, list[ValueWidget]] = {}
    for field, spec in declared_settings(config):
        control = setting_control(field, spec, getattr(config, field.name))
        controls[field.name] = control
        groups.setdefault(spec.group, []).append(control)
    forms = {group: widgets.Container(widgets=members) for group, members in groups.items()}
    for form in forms.values():
        form.margins = (0, 0, 0, 0)
    return controls, forms


def control_values(controls: dict[str, ValueWidget]) -> dict[str, Any]:
    """Field name -> the value its control shows (fractions rounded to 4 decimals, so that a
    slider's float steps give clean settings)."""
    out: dict[str, Any] = {}
    for name, control in controls.items():
        value = control.value
        out[name] = round(value, 4) if isinstance(value, float) else value
    return out
