"""Checkable list of segmentation models: the zoo's bundled and user models plus added files.

Split from :mod:`napari_brats._widgets.segment`. Each item keeps its checkpoint path (tooltip
and ``UserRole``) and where it came from (``UserRole + 1``: "zoo", "file" or "default"); ticking
several models runs them as an ensemble. A bundled default ensemble is one entry, "Default:
5-model ensemble, CV Dice ...", ticked at first, with its members listed (indented, unticked)
under it: they can still be chosen alone or with other models.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

from qtpy.QtCore import Qt
from qtpy.QtWidgets import QListWidget, QListWidgetItem, QWidget

if TYPE_CHECKING:
    from bratseg.zoo import ModelEntry

logger = logging.getLogger(__name__)

_PATH_ROLE = Qt.ItemDataRole.UserRole
#: Path role of the default ensemble's entry (it stands for its members).
_DEFAULT_KEY = "<default ensemble>"
_KIND_ROLE = Qt.ItemDataRole.UserRole + 1
#: Indent of the default ensemble's members under its entry.
MEMBER_INDENT = "      "


def dice_text(val_dice: dict | None, kind: str = "val") -> str:
    """One-line validation Dice of a model, e.g. ``"val Dice WT 0.90 / TC 0.85 / ET 0.80"``.

    Args:
        val_dice: ``{"wt", "tc", "et"}`` Dice, or None.
        kind: ``"val"`` (held-out cases) or ``"CV"`` (cross-validation estimate).
    """
    if not val_dice:
        return f"{kind} Dice n/a"
    parts = [f"{k.upper()} {float(v):.2f}" for k, v in val_dice.items() if k in ("wt", "tc", "et")]
    return f"{kind} Dice " + " / ".join(parts) if parts else f"{kind} Dice n/a"


def _check_state(checked: bool) -> Qt.CheckState:
    return Qt.CheckState.Checked if checked else Qt.CheckState.Unchecked


class ModelList(QListWidget):
    """Models to run: tick one, or several for an ensemble (probabilities averaged)."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setToolTip("Tick one model, or several for an ensemble (probabilities averaged)")
        self.setMinimumHeight(70)
        self.setMaximumHeight(130)
        self.default_paths: list[str] = []

    def refresh(self) -> None:
        """(Re)list the bundled and user models, keeping ticks and added checkpoints.

        With nothing ticked yet, the zoo's default is ticked: one entry for a default ensemble
        (its members, in ``default.txt`` order, listed under it), so that it runs exactly as
        ``napari-brats predict`` runs it.
        """
        ticked = set(self._ticked_items())
        extra = [item.data(_PATH_ROLE) for item in self._items() if item.data(_KIND_ROLE) == "file"]
        self.clear()
        entries = []
        try:
            from bratseg.zoo import default_model_names, list_models

            entries = list_models()
            default = default_model_names()
        except Exception as exc:  # zoo missing or broken: the user can still add checkpoints
            logger.warning("cannot list models: %s", exc)
            default = []
        rank = {name: i for i, name in enumerate(default)}
        entries = sorted(
            entries, key=lambda e: rank.get(e.name, len(rank)) if e.bundled else len(rank)
        )
        members = [e for e in entries if e.bundled and e.name in rank]
        self.default_paths = [str(e.path) for e in members]
        ensemble = len(members) > 1
        if ensemble:
            text, tooltip = _default_entry_text(len(members))
            self._add_item(
                text, _DEFAULT_KEY, "default", _DEFAULT_KEY in ticked or not ticked, tooltip
            )
        for entry in entries:
            origin = "bundled" if entry.bundled else "user"
            text = f"{entry.name} [{entry.arch}, {origin}] — {dice_text(entry.val_dice, 'CV' if entry.cross_validated else 'val')}"
            path = str(entry.path)
            member = ensemble and path in self.default_paths
            checked = path in ticked if ticked else (path in self.default_paths and not ensemble)
            tooltip = _card_tooltip(entry, path)
            if member:
                text = MEMBER_INDENT + text
                tooltip = f"member of the default ensemble (tick it alone to run only this fold model)\n{tooltip}"
            self._add_item(text, path, "zoo", checked, tooltip=tooltip)
        for path in extra:
            self._add_item(f"{Path(path).name} [checkpoint file]", path, "file", path in ticked)

    def add_checkpoint(self, path: str | Path, checked: bool = True) -> None:
        """Add a checkpoint file (ticked by default); a listed one only gets its tick set."""
        path = str(Path(path))
        for item in self._items():
            if item.data(_PATH_ROLE) == path:
                item.setCheckState(_check_state(checked))
                return
        self._add_item(f"{Path(path).name} [checkpoint file]", path, "file", checked)

    def set_only_checked(self, paths: list[str | Path]) -> None:
        """Tick exactly ``paths`` (adding files not yet listed); the default ensemble's members,
        all of them in its order, tick its one entry."""
        wanted = [str(Path(p)) for p in paths]
        if len(wanted) > 1 and wanted == getattr(self, "default_paths", None):
            wanted = [_DEFAULT_KEY]
        for p in wanted:
            if p != _DEFAULT_KEY:
                self.add_checkpoint(p)
        for item in self._items():
            item.setCheckState(_check_state(item.data(_PATH_ROLE) in wanted))

    def selected_paths(self) -> list[str]:
        """Paths of the ticked models, in list order (the default entry: its members)."""
        out: list[str] = []
        for key in self._ticked_items():
            for path in self.default_paths if key == _DEFAULT_KEY else [key]:
                if path not in out:
                    out.append(path)
        return out

    def _items(self) -> list[QListWidgetItem]:
        """The list's rows, in order."""
        return [item for i in range(self.count()) if (item := self.item(i)) is not None]

    def _ticked_items(self) -> list[str]:
        return [
            item.data(_PATH_ROLE)
            for item in self._items()
            if item.checkState() == Qt.CheckState.Checked
        ]

    def _add_item(
        self, text: str, path: str, kind: str, checked: bool, tooltip: str | None = None
    ) -> None:
        item = QListWidgetItem(text)
        item.setData(_PATH_ROLE, path)
        item.setData(_KIND_ROLE, kind)
        item.setFlags(item.flags() | Qt.ItemFlag.ItemIsUserCheckable)
        item.setCheckState(_check_state(checked))
        item.setToolTip(tooltip or path)
        self.addItem(item)


def _default_entry_text(n_models: int) -> tuple[str, str]:
    """The default ensemble's entry: ``"Default: 5-model ensemble, CV Dice ..."`` and its card."""
    try:
        from bratseg.zoo.default_ensemble import default_ensemble_card, format_ensemble_card

        card = default_ensemble_card()
    except Exception as exc:  # no card bundled: the entry still runs the ensemble
        logger.warning("cannot read the default ensemble card: %s", exc)
        return f"Default: {n_models}-model ensemble", "the bundled default ensemble"
    dice = (card.get("cv_estimate") or {}).get("dice")
    return f"Default: {n_models}-model ensemble, {dice_text(dice, 'CV')}", format_ensemble_card(
        card
    )


def _card_tooltip(entry: ModelEntry, path: str) -> str:
    """The model card as hover text (data, split, training, scores, speed), else the path."""
    from bratseg.zoo import format_card

    card = entry.model_card
    return f"{format_card(card)}\n{path}" if card else path
