"""Checkable list of segmentation models: the zoo's bundled and user models plus added files.

Split from :mod:`napari_brats._widgets.segment`. Each item keeps its checkpoint path (tooltip
and ``UserRole``) and where it came from (``UserRole + 1``: "zoo" or "file"); ticking several
models runs them as an ensemble.
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
_KIND_ROLE = Qt.ItemDataRole.UserRole + 1


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

    def refresh(self) -> None:
        """(Re)list the bundled and user models, keeping ticks and added checkpoints.

        With nothing ticked yet, the zoo's default model(s) are ticked. The bundled defaults are
        listed first, in ``default.txt`` order, so that a default ensemble runs exactly as
        ``napari-brats predict`` runs it (an ensemble takes its postprocessing from the first
        ticked model).
        """
        ticked = set(self.selected_paths())
        extra = [
            self.item(i).data(_PATH_ROLE)
            for i in range(self.count())
            if self.item(i).data(_KIND_ROLE) == "file"
        ]
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
        for entry in entries:
            origin = "bundled" if entry.bundled else "user"
            text = f"{entry.name} [{entry.arch}, {origin}] — {dice_text(entry.val_dice, 'CV' if entry.cross_validated else 'val')}"
            path = str(entry.path)
            checked = path in ticked if ticked else (entry.bundled and entry.name in default)
            self._add_item(text, path, "zoo", checked, tooltip=_card_tooltip(entry, path))
        for path in extra:
            self._add_item(f"{Path(path).name} [checkpoint file]", path, "file", path in ticked)

    def add_checkpoint(self, path: str | Path, checked: bool = True) -> None:
        """Add a checkpoint file (ticked by default); a listed one only gets its tick set."""
        path = str(Path(path))
        for i in range(self.count()):
            item = self.item(i)
            if item.data(_PATH_ROLE) == path:
                item.setCheckState(_check_state(checked))
                return
        self._add_item(f"{Path(path).name} [checkpoint file]", path, "file", checked)

    def set_only_checked(self, paths: list[str | Path]) -> None:
        """Tick exactly ``paths`` (adding files not yet listed)."""
        wanted = {str(Path(p)) for p in paths}
        for p in wanted:
            self.add_checkpoint(p)
        for i in range(self.count()):
            item = self.item(i)
            item.setCheckState(_check_state(item.data(_PATH_ROLE) in wanted))

    def selected_paths(self) -> list[str]:
        """Paths of the ticked models, in list order."""
        return [
            self.item(i).data(_PATH_ROLE)
            for i in range(self.count())
            if self.item(i).checkState() == Qt.CheckState.Checked
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


def _card_tooltip(entry: ModelEntry, path: str) -> str:
    """The model card as hover text (data, split, training, scores, speed), else the path."""
    from bratseg.zoo import format_card

    card = entry.model_card
    return f"{format_card(card)}\n{path}" if card else path
