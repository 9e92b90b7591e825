"""The card of the bundled default ensemble (``weights/default-postprocess.json``).

The default is several bundled models whose probabilities are averaged. Each member has its own
model card; the ensemble's card says what only the ensemble can: its members, the postprocessing
chosen for it on cross-validation, and the cross-validation estimate of the whole recipe (each
case predicted by the fold model that held it out), per fold, pooled and per grade.
``napari-brats models default`` prints it.
"""

from __future__ import annotations

import json
from typing import Any

from bratseg.errors import BratsInputError
from bratseg.labels import REGIONS

#: The name under which ``napari-brats models`` shows the ensemble's card.
DEFAULT_CARD_NAME = "default"


def default_ensemble_card() -> dict[str, Any]:
    """The default ensemble's settings file as a dict.

    Raises:
        BratsInputError: No settings file is bundled, or it is not valid JSON.
    """
    from bratseg.zoo import DEFAULT_SETTINGS_FILE

    path = DEFAULT_SETTINGS_FILE
    if not path.is_file():
        raise BratsInputError("no default ensemble card is bundled", path)
    try:
        return dict(json.loads(path.read_text()))
    except ValueError as exc:
        raise BratsInputError(f"not valid JSON ({exc})", path) from exc


def _regions(values: dict[str, Any] | None, fmt: str = ".3f") -> str:
    if not values:
        return "-"
    return " / ".join(f"{float(values[r]):{fmt}}" for r in REGIONS if values.get(r) is not None)


def format_ensemble_card(card: dict[str, Any]) -> str:
    """The ensemble's card as readable text.

    Args:
        card: The settings file's content (see :func:`default_ensemble_card`).

    Returns:
        Multi-line text: members, postprocessing, data and protocol, cross-validation table
        (Dice and HD95 WT / TC / ET per group, ET false positives), training and speed.
    """
    cv = card.get("cv_estimate") or {}
    info = card.get("card") or {}
    lines = [
        f"default: the ensemble of {' + '.join(card.get('models') or ['?'])} "
        "(region probabilities averaged)",
        f"  postprocessing: {json.dumps(card.get('postprocess') or {}, sort_keys=True)}",
        f"  chosen on:      {card.get('chosen_on', '?')}",
    ]
    if info.get("data"):
        data = info["data"]
        lines.append(
            f"  data:           {len(data.get('cases') or [])} labelled cases "
            f"({', '.join(data.get('datasets') or [])}); protocol {info.get('protocol', '?')}"
        )
    lines.append(f"  estimate:       {cv.get('protocol', '?')}")
    groups = cv.get("groups") or {}
    if groups:
        lines.append(
            "  group                                  n   Dice WT / TC / ET      HD95 WT / TC / ET    ET FP"
        )
        for name, g in groups.items():
            lines.append(
                f"  {name:<36} {g.get('n', 0):>3}   {_regions(g.get('dice')):<22} "
                f"{_regions(g.get('hd95'), '.1f'):<20} {g.get('et_fp', '-')}"
            )
    else:
        lines.append(f"  Dice WT / TC / ET: {_regions(cv.get('dice'))}")
    for key, label in (
        ("training", "training"),
        ("device", "device"),
        ("cpu_seconds_per_case", "CPU s per case"),
        ("baseline", "compared with"),
    ):
        if info.get(key) is not None:
            lines.append(f"  {label + ':':<16}{info[key]}")
    if card.get("remark"):
        lines.append(f"  remark:         {card['remark']}")
    return "\n".join(lines)


__all__ = ["DEFAULT_CARD_NAME", "default_ensemble_card", "format_ensemble_card"]
