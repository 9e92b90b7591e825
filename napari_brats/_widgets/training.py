"""Training dock: fine-tune a model (or train an architecture) in a separate process.

Start launches ``python -m bratseg.cli.main train ... --json`` with :class:`QProcess` — never in the
GUI thread — and streams its JSON-lines events (``start``, ``step``, ``epoch``, ``done``, ``error``)
into a progress bar and a live plot of loss and validation Dice. Stop writes the run folder's
``STOP`` file so the trainer finishes the current step and saves a usable checkpoint; only if it
has not exited after :data:`STOP_TIMEOUT_S` is it terminated, then killed. Trainer errors (an
``error`` event or stderr) are shown in the dock. When a run ends with a checkpoint it is copied
into the user model folder and appears in the Segment dock's list. The form (start-from models,
dataset folders) and the trainer command it makes are in :mod:`napari_brats._widgets._trainform`.
"""

from __future__ import annotations

import logging
import shlex
import sys
import time
from pathlib import Path
from typing import Any

from qtpy.QtCore import QProcess, QProcessEnvironment, QTimer
from qtpy.QtWidgets import (
    QApplication,
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QMessageBox,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from bratseg.devices import DEVICE_CHOICES
from bratseg.errors import BratsInputError

from .._state import viewer_state
from ._trainform import TrainFormMixin
from ._trainplot import TrainingPlot
from ._trainrun import (
    KILL_TIMEOUT_S,
    STOP_TIMEOUT_S,
    EventLineBuffer,
    exit_error_text,
    install_checkpoint,
    request_stop,
    runs_dir,
    start_text,
    step_text,
)

logger = logging.getLogger(__name__)


class TrainingWidget(TrainFormMixin, QWidget):
    """Dock configuring, running, following and stopping a training run."""

    def __init__(self, napari_viewer: Any, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.viewer = napari_viewer
        self.state = viewer_state(napari_viewer)
        self.process: QProcess | None = None
        self.run_dir: Path | None = None
        self.events: list[dict[str, Any]] = []
        self.error_text = ""
        self.installed: Path | None = None
        self._stdout_lines = EventLineBuffer()
        self._start_info: dict[str, Any] = {}
        self._stop_timer = QTimer(self)
        self._stop_timer.setSingleShot(True)
        self._stop_timer.timeout.connect(self._escalate_stop)

        self.data_list = QListWidget()
        self.data_list.setMaximumHeight(70)
        add_data = QPushButton("Add dataset folder…")
        add_data.clicked.connect(self._add_data_dialog)
        remove_data = QPushButton("Remove")
        remove_data.clicked.connect(lambda: self.data_list.takeItem(self.data_list.currentRow()))
        self.model_combo = QComboBox()
        self.preset_combo = QComboBox()
        self.preset_combo.addItems(["small", "tiny", "paper"])
        self.preset_combo.setToolTip("Size preset when training an architecture from scratch")
        self.model_combo.currentIndexChanged.connect(self._update_preset_enabled)
        self.epochs = QSpinBox()
        self.epochs.setRange(0, 100000)
        self.epochs.setValue(5)
        self.epochs.setSpecialValueText("time budget")
        self.budget = QDoubleSpinBox()
        self.budget.setRange(0.0, 100000.0)
        self.budget.setSuffix(" min")
        self.budget.setSpecialValueText("none")
        self.device_combo = QComboBox()
        self.device_combo.addItems(list(DEVICE_CHOICES))
        self.name_edit = QLineEdit("")
        self.name_edit.setPlaceholderText("name of the new model (default: from the run)")
        self.extra_edit = QLineEdit("")
        self.extra_edit.setPlaceholderText("extra trainer options, e.g. --batch-size 1")

        self.start_button = QPushButton("Start training")
        self.start_button.clicked.connect(lambda: self.start())
        self.stop_button = QPushButton("Stop (save checkpoint)")
        self.stop_button.setEnabled(False)
        self.stop_button.clicked.connect(self.stop)
        self.progress = QProgressBar()
        self.progress.setRange(0, 1)
        self.progress.setValue(0)
        self.status = QLabel("Idle.")
        self.status.setWordWrap(True)
        self.plot = TrainingPlot()
        self.plot.setMinimumHeight(220)
        self.errors = QPlainTextEdit()
        self.errors.setReadOnly(True)
        self.errors.setMaximumHeight(70)
        self.errors.setPlaceholderText("Trainer errors appear here.")

        data_buttons = QHBoxLayout()
        data_buttons.addWidget(add_data)
        data_buttons.addWidget(remove_data)
        form = QFormLayout()
        form.addRow("Start from", self.model_combo)
        form.addRow("Preset", self.preset_combo)
        form.addRow("Epochs", self.epochs)
        form.addRow("or time budget", self.budget)
        form.addRow("Device", self.device_combo)
        form.addRow("New model", self.name_edit)
        form.addRow("Options", self.extra_edit)
        buttons = QHBoxLayout()
        buttons.addWidget(self.start_button)
        buttons.addWidget(self.stop_button)

        layout = QVBoxLayout(self)
        layout.addWidget(QLabel("Dataset folders (e.g. your exported corrections)"))
        layout.addWidget(self.data_list)
        layout.addLayout(data_buttons)
        layout.addLayout(form)
        layout.addLayout(buttons)
        layout.addWidget(self.progress)
        layout.addWidget(self.status)
        layout.addWidget(self.plot)
        layout.addWidget(self.errors)

        self.refresh_models()
        self.state.models_changed.connect(self.refresh_models)
        app = QApplication.instance()
        if app is not None:
            app.aboutToQuit.connect(self._on_quit)
        from .export import default_dataset_dir

        if default_dataset_dir().is_dir():
            self.add_dataset(default_dataset_dir())

    # ------------------------------------------------------------------ run
    def start(self, run_dir: str | Path | None = None) -> bool:
        """Launch the trainer process; returns whether it started."""
        if self.process is not None:
            return False
        if not self.datasets():
            self._show_error("add at least one dataset folder")
            return False
        if not self.model_combo.currentData():
            self._show_error("choose a model to fine-tune or an architecture")
            return False
        if self.name_edit.text().strip():
            from bratseg.zoo.user_models import check_user_model_name

            try:
                check_user_model_name(self.name_edit.text())
            except BratsInputError as exc:
                self._show_error(str(exc))
                return False
        stamp = time.strftime("%Y%m%d-%H%M%S")
        self.run_dir = Path(run_dir) if run_dir else runs_dir() / f"run-{stamp}"
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.events, self.error_text, self.installed = [], "", None
        self._stdout_lines = EventLineBuffer()
        self._start_info = {}
        self.errors.clear()
        self.plot.clear()
        process = QProcess(self)
        env = QProcessEnvironment.systemEnvironment()
        env.insert("PYTHONUNBUFFERED", "1")
        process.setProcessEnvironment(env)
        process.readyReadStandardOutput.connect(self._read_stdout)
        process.readyReadStandardError.connect(self._read_stderr)
        process.finished.connect(self._on_finished)
        process.errorOccurred.connect(self._on_process_error)
        self.process = process
        args = self.command(self.run_dir)
        logger.info("starting trainer: %s %s", sys.executable, shlex.join(args))
        process.start(sys.executable, args)
        self.start_button.setEnabled(False)
        self.stop_button.setEnabled(True)
        self.progress.setRange(0, 0)
        self.status.setText(f"starting trainer in {self.run_dir} …")
        return True

    def stop(self) -> None:
        """Ask the trainer to stop cleanly (STOP file); escalate only after a timeout."""
        if self.process is None or self.run_dir is None:
            return
        request_stop(self.run_dir, "stop requested from the napari Training dock")
        self.status.setText("stopping after the current step (saving a checkpoint)…")
        self.stop_button.setEnabled(False)
        self._stop_timer.start(int(STOP_TIMEOUT_S * 1000))

    def _escalate_stop(self) -> None:
        if self.process is None:
            return
        if self.process.state() != QProcess.ProcessState.NotRunning:
            logger.warning("trainer ignored the STOP file; terminating it")
            self.status.setText("trainer did not stop in time; terminating")
            self.process.terminate()
            QTimer.singleShot(int(KILL_TIMEOUT_S * 1000), self._kill)

    def _kill(self) -> None:
        if self.process is not None and self.process.state() != QProcess.ProcessState.NotRunning:
            self.process.kill()

    # ------------------------------------------------------------------ streaming
    def _read_stdout(self) -> None:
        if self.process is None:
            return
        text = self.process.readAllStandardOutput().data().decode("utf-8", "replace")
        for event in self._stdout_lines.feed(text):
            self.handle_event(event)

    def _read_stderr(self) -> None:
        if self.process is None:
            return
        text = self.process.readAllStandardError().data().decode("utf-8", "replace")
        self.error_text = (self.error_text + text)[-4000:]

    def handle_event(self, event: dict[str, Any]) -> None:
        """Apply one trainer event to the progress bar, status, plot and error box."""
        self.events.append(event)
        kind = event.get("event")
        if kind == "start":
            self._start_info = event
            epochs, per_epoch = event.get("epochs"), event.get("steps_per_epoch")
            if epochs and per_epoch:
                self.progress.setRange(0, int(epochs) * int(per_epoch))
            else:
                self.progress.setRange(0, 1000)
            self.status.setText(start_text(event))
        elif kind in ("step", "epoch"):
            self._update_progress(event)
            self.plot.add_event(event)
            self.status.setText(step_text(event))
        elif kind == "done":
            self.progress.setRange(0, 1)
            self.progress.setValue(1)
            self.status.setText(
                f"finished ({event.get('reason')}); checkpoint {event.get('checkpoint')}"
            )
        elif kind == "error":
            self._show_error(str(event.get("message", "trainer error")))

    def _update_progress(self, event: dict[str, Any]) -> None:
        info = self._start_info
        if info.get("epochs") and info.get("steps_per_epoch"):
            self.progress.setValue(min(int(event.get("step", 0)), self.progress.maximum()))
        elif info.get("time_budget_s") and event.get("elapsed_s") is not None:
            fraction = float(event["elapsed_s"]) / max(float(info["time_budget_s"]), 1e-6)
            self.progress.setValue(int(min(fraction, 1.0) * 1000))

    def _show_error(self, message: str) -> None:
        from napari.utils.notifications import show_error

        self.errors.appendPlainText(message)
        self.status.setText(f"error: {message}")
        show_error(f"training: {message}")

    def _on_process_error(self, error: Any) -> None:
        if self.process is not None and error == QProcess.ProcessError.FailedToStart:
            self._show_error(f"could not start {sys.executable}")

    def _on_finished(self, exit_code: int, _status: Any = None) -> None:
        self._read_stdout()
        self._read_stderr()
        self._stop_timer.stop()
        done = next((e for e in reversed(self.events) if e.get("event") == "done"), None)
        if exit_code != 0 and not any(e.get("event") == "error" for e in self.events):
            self._show_error(exit_error_text(self.error_text, exit_code))
        checkpoint = done.get("checkpoint") if done else None
        if checkpoint and Path(checkpoint).is_file():
            run = self.run_dir.name if self.run_dir is not None else "run"
            name = self.name_edit.text().strip() or f"finetuned-{run}"
            self.install_model(checkpoint, name)
        self.process = None
        self.start_button.setEnabled(True)
        self.stop_button.setEnabled(False)
        if self.progress.maximum() == 0:
            self.progress.setRange(0, 1)

    def install_model(
        self, checkpoint: str | Path, name: str, overwrite: bool | None = None
    ) -> Path | None:
        """Add a run's checkpoint to the user's models as ``name``; returns the file (None if not).

        An existing model of that name is replaced only when ``overwrite`` is true, or, with
        ``overwrite=None``, when the user says so in a dialog; otherwise it is kept and the new
        checkpoint stays in its run folder.
        """
        from bratseg.zoo.user_models import user_model_path

        try:
            target = user_model_path(name)
        except BratsInputError as exc:
            self._show_error(
                f"could not add the model: {exc} (the checkpoint stays at {checkpoint})"
            )
            return None
        if target.exists() and overwrite is None:
            answer = QMessageBox.question(
                self,
                "Replace model?",
                f"A model named “{name}” exists already. Replace it with this run's checkpoint? "
                f"(No keeps it; the new checkpoint stays at {checkpoint})",
            )
            overwrite = answer == QMessageBox.StandardButton.Yes
        if target.exists() and not overwrite:
            self.status.setText(
                f"{self.status.text()}\nkept your model “{name}”; the new checkpoint is {checkpoint}"
            )
            return None
        try:
            self.installed = install_checkpoint(checkpoint, name, overwrite=bool(overwrite))
        except (BratsInputError, OSError) as exc:
            self._show_error(f"could not add the model: {exc}")
            return None
        self.status.setText(
            f"{self.status.text()}\nadded to your models as “{name}” (see the Segment dock)"
        )
        self.state.models_changed.emit()
        return self.installed

    def _on_quit(self) -> None:
        """napari is closing: ask a running trainer to stop cleanly and give it a moment."""
        process = self.process
        if process is None or self.run_dir is None:
            return
        request_stop(self.run_dir, "napari closed")
        if not process.waitForFinished(int(STOP_TIMEOUT_S * 1000)):
            process.terminate()
            if not process.waitForFinished(int(KILL_TIMEOUT_S * 1000)):
                process.kill()

    @property
    def running(self) -> bool:
        """Whether a trainer process is running."""
        return self.process is not None
