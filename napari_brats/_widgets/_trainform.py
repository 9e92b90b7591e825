"""The Training dock's form: what a run starts from, on which data, and the trainer command.

*Start from* lists the zoo's models (fine-tune; the default model(s) first) and then the
architectures (``arch:<name>``, trained new with the chosen size preset, which is enabled only
for them). The dataset list holds each folder once. :meth:`TrainFormMixin.command` turns the
form into the arguments of ``python -m bratseg.cli.main train ... --json``; the dock
(:mod:`napari_brats._widgets.training`) starts, follows and stops that process.

:class:`TrainFormMixin` holds these methods for
:class:`~napari_brats._widgets.training.TrainingWidget`.
"""

from __future__ import annotations

import logging
import shlex
from pathlib import Path
from typing import TYPE_CHECKING, Any

from qtpy.QtWidgets import QFileDialog, QWidget

if TYPE_CHECKING:
    from qtpy.QtWidgets import QComboBox, QDoubleSpinBox, QLineEdit, QListWidget, QSpinBox

    _Dock = QWidget  # the mixin is only ever part of the Training dock, a QWidget
else:
    _Dock = object

logger = logging.getLogger(__name__)


class TrainFormMixin(_Dock):
    """Methods of the Training dock that read and fill its form (see the module docstring)."""

    data_list: QListWidget
    model_combo: QComboBox
    preset_combo: QComboBox
    epochs: QSpinBox
    budget: QDoubleSpinBox
    device_combo: QComboBox
    extra_edit: QLineEdit

    # ------------------------------------------------------------------ choices
    def refresh_models(self) -> None:
        """Fill "Start from" with the zoo's models (fine-tune) and the architectures (new)."""
        current = self.model_combo.currentData()
        self.model_combo.clear()
        try:
            from bratseg.zoo import default_model_names, list_models

            rank = {name: i for i, name in enumerate(default_model_names())}
            entries = sorted(  # the default model(s) first: the natural start for fine-tuning
                list_models(), key=lambda e: rank.get(e.name, len(rank)) if e.bundled else len(rank)
            )
            for entry in entries:
                self.model_combo.addItem(f"fine-tune {entry.name}", str(entry.path))
        except Exception as exc:
            logger.warning("cannot list models: %s", exc)
        from bratseg.models import list_architectures

        for spec in list_architectures():
            self.model_combo.addItem(f"new {spec.name}", f"arch:{spec.name}")
        if current is not None:
            index = self.model_combo.findData(current)
            if index >= 0:
                self.model_combo.setCurrentIndex(index)
        self._update_preset_enabled()

    def _update_preset_enabled(self, *_: Any) -> None:
        data = self.model_combo.currentData() or ""
        self.preset_combo.setEnabled(str(data).startswith("arch:"))

    def set_start_from(self, value: str | Path) -> None:
        """Select a checkpoint path or ``arch:<name>`` (a path not listed is added)."""
        value = str(value)
        index = self.model_combo.findData(value)
        if index < 0:
            self.model_combo.addItem(f"fine-tune {Path(value).name}", value)
            index = self.model_combo.count() - 1
        self.model_combo.setCurrentIndex(index)

    def add_dataset(self, folder: str | Path) -> None:
        """Add a dataset folder (once)."""
        folder = str(Path(folder))
        if folder not in self.datasets():
            self.data_list.addItem(folder)

    def _add_data_dialog(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Dataset folder")
        if folder:
            self.add_dataset(folder)

    def datasets(self) -> list[str]:
        """The dataset folders listed."""
        items = (self.data_list.item(i) for i in range(self.data_list.count()))
        return [item.text() for item in items if item is not None]

    # ------------------------------------------------------------------ command
    def command(self, run_dir: Path) -> list[str]:
        """Arguments after ``python`` for the trainer process."""
        args = ["-m", "bratseg.cli.main", "train"]
        for folder in self.datasets():
            args += ["--data", folder]
        start = str(self.model_combo.currentData() or "")
        if start.startswith("arch:"):
            args += ["--model", start[5:], "--preset", self.preset_combo.currentText()]
        else:
            args += ["--model", start]
        if self.budget.value() > 0:
            args += ["--time-budget", f"{self.budget.value():g}"]
        if self.epochs.value() > 0:
            args += ["--epochs", str(self.epochs.value())]
        args += ["--device", self.device_combo.currentText(), "--out", str(run_dir), "--json"]
        args += shlex.split(self.extra_edit.text())
        return args
