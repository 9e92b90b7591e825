"""Segment dock: pick model(s), device and TTA, run inference in a background thread.

The run drives :meth:`bratseg.predictor.Predictor.run` (a generator yielding
:class:`~bratseg.inference.Progress`) inside a napari ``thread_worker``; the networks stay loaded
in the viewer's model cache (:attr:`napari_brats._state.ViewerState.models`) between runs: each
yield moves the progress bar, Cancel asks the worker to quit (the generator is closed at its next
yield), and the viewer never freezes. The result becomes an editable uint8 labels layer with
NCR/ED/ET names and colours (and optional WT/TC/ET probability layers), and a
:class:`~bratseg.review.ReviewSession` shared with the other docks. Opening a case with *Align
series: register* (seconds per series) runs the same way: :func:`napari_brats._reader.iter_read_case`
in a worker, Cancel before the next series (:mod:`napari_brats._widgets._open_case_flow`). Raw
scans (a case the input check refuses, or a folder of series with the scanner's names) get a
dialog offering *Prepare raw scans…*: the series picker, then :func:`bratseg.prepare.iter_prepare`
in the same worker machinery, and the prepared case with its QC
(:mod:`napari_brats._widgets._prepare_flow`).
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from qtpy.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from bratseg.components import busiest_slice
from bratseg.devices import DEVICE_CHOICES
from bratseg.io.align import ALIGN_MODES
from bratseg.labels import BRATS_CONVENTIONS
from bratseg.review import ReviewSession

from .._state import ModelInfo, viewer_state
from ._common import show_input_error
from ._open_case_flow import OpenCaseMixin
from ._prepare_flow import PrepareRawMixin
from ._review import ReviewNotice, SavedReviewMixin
from ._segment_job import segment_job
from .model_list import ModelList

if TYPE_CHECKING:
    from bratseg.inference import InferenceOptions
    from bratseg.io import Case
    from bratseg.predictor import Predictor

    from ._segment_job import SegmentResult

logger = logging.getLogger(__name__)

#: The "Bias field" choices: (shown text, name in ``bratseg.bias_field.BIAS_CORRECTION_CHOICES``).
BIAS_FIELD_ITEMS = (
    ("As each model was trained", "model"),
    ("Correct (N4) before every model", "on"),
    ("Do not correct", "off"),
)


class SegmentWidget(SavedReviewMixin, PrepareRawMixin, OpenCaseMixin, QWidget):
    """Dock running a segmentation model on the loaded case."""

    def __init__(self, napari_viewer: Any, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.viewer = napari_viewer
        self.state = viewer_state(napari_viewer)
        self.worker: Any = None
        self._stop = threading.Event()
        self.last_error: str | None = None
        self.notice = ReviewNotice()
        self._offered: str | None = None

        self.case_label = QLabel("No case loaded")
        self.case_label.setWordWrap(True)
        self.open_button = QPushButton("Open case folder…")
        self.open_button.clicked.connect(self._open_case_dialog)
        self.init_prepare()
        self.align_combo = QComboBox()
        self.align_combo.addItems(list(ALIGN_MODES))
        self.align_combo.setToolTip(
            "Series on other grids: resample them into the T1Gd grid, or register "
            "them rigidly to T1Gd first (when opening a case here)"
        )

        self.model_list = ModelList()
        add_button = QPushButton("Add checkpoint…")
        add_button.clicked.connect(self._add_checkpoint_dialog)

        self.device_combo = QComboBox()
        self.device_combo.addItems(list(DEVICE_CHOICES))
        self.device_label = QLabel("")
        self.device_combo.currentTextChanged.connect(self._update_device_label)
        self.tta_check = QCheckBox("Test-time augmentation (8 flips, slower)")
        self.prob_check = QCheckBox("Add WT/TC/ET probability layers (uncertainty)")
        self.prob_check.setChecked(True)
        self.bias_combo = QComboBox()
        for text, name in BIAS_FIELD_ITEMS:
            self.bias_combo.addItem(text, name)
        self.bias_combo.setToolTip(
            "N4 bias-field correction of each series before the network. 'As trained' does what "
            "each model's training did; forcing it on or off gives a model input it was not "
            "trained on."
        )
        self.convention_combo = QComboBox()
        self.convention_combo.addItems(list(BRATS_CONVENTIONS))
        self.convention_combo.setToolTip("Label values of the result: 2021 (ET=4) or 2023 (ET=3)")

        self.run_button = QPushButton("Run segmentation")
        self.run_button.clicked.connect(self.run)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        self.cancel_button.clicked.connect(self.cancel)
        self.progress = QProgressBar()
        self.progress.setRange(0, 1)
        self.progress.setValue(0)
        self.status = QLabel("")
        self.status.setWordWrap(True)

        form = QFormLayout()
        form.addRow("Align series", self.align_combo)
        form.addRow("Device", self.device_combo)
        form.addRow("", self.device_label)
        form.addRow("Labels", self.convention_combo)
        form.addRow("Bias field", self.bias_combo)
        buttons = QHBoxLayout()
        buttons.addWidget(self.run_button)
        buttons.addWidget(self.cancel_button)
        models_row = QHBoxLayout()
        models_row.addWidget(QLabel("Models (tick ≥ 1)"))
        models_row.addStretch()
        models_row.addWidget(add_button)

        layout = QVBoxLayout(self)
        layout.addWidget(self.case_label)
        open_row = QHBoxLayout()
        open_row.addWidget(self.open_button)
        open_row.addWidget(self.prepare_button)
        layout.addLayout(open_row)
        layout.addLayout(models_row)
        layout.addWidget(self.model_list)
        layout.addLayout(form)
        layout.addWidget(self.tta_check)
        layout.addWidget(self.prob_check)
        layout.addLayout(buttons)
        layout.addWidget(self.progress)
        layout.addWidget(self.status)
        layout.addWidget(self.qc_label)
        layout.addWidget(self.notice)
        layout.addStretch()

        self.refresh_models()
        self._update_device_label(self.device_combo.currentText())
        self.state.models_changed.connect(self.refresh_models)
        self.state.session_changed.connect(self._on_session_changed)
        from .._closeguard import install_close_guard

        self.close_guard = install_close_guard(self.viewer, self.state)
        self.viewer.layers.events.inserted.connect(self._update_case_label)
        self.viewer.layers.events.removed.connect(self._update_case_label)
        self._update_case_label()

    # ------------------------------------------------------------------ models and device
    def refresh_models(self) -> None:
        """(Re)list the bundled and user models, keeping ticks and added checkpoints."""
        self.model_list.refresh()

    def add_checkpoint(self, path: str | Path, checked: bool = True) -> None:
        """Add a checkpoint file to the list (ticked by default)."""
        self.model_list.add_checkpoint(path, checked)

    def set_only_checked(self, paths: list[str | Path]) -> None:
        """Tick exactly ``paths`` (adding files not yet listed)."""
        self.model_list.set_only_checked(paths)

    def selected_model_paths(self) -> list[str]:
        """Paths of the ticked models."""
        return self.model_list.selected_paths()

    def _add_checkpoint_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(
            self, "Model checkpoint", "", "Checkpoints (*.pt *.pth)"
        )
        if path:
            self.add_checkpoint(path)

    def _update_device_label(self, request: str) -> None:
        try:
            from bratseg.inference import select_device

            _, description = select_device(request)
            self.device_label.setText(f"will run on: {description}")
        except Exception as exc:
            self.device_label.setText(f"unavailable: {getattr(exc, 'reason', exc)}")

    # ------------------------------------------------------------------ case
    def _update_case_label(self, *_: Any) -> None:
        case = self.state.find_case(self.viewer.layers)
        if case is None:
            self.case_label.setText("No case loaded: open a case folder (or File ▸ Open).")
            return
        self.case_label.setText(
            f"Case <b>{case.case_id}</b> — {case.shape[0]}×{case.shape[1]}×{case.shape[2]}, "
            f"{'/'.join(f'{s:g}' for s in case.spacing)} mm"
        )
        if case.seg_convention in BRATS_CONVENTIONS:
            self.convention_combo.setCurrentText(str(case.seg_convention))
        self.offer_saved_review(case)
        self.offer_prepare(case)  # not BraTS-ready: a dialog with the way out

    def _on_session_changed(self, session: Any) -> None:
        if session is not None and self._offered is not None and self._offered == self.state.key:
            self.notice.clear()  # the offered review was opened (e.g. from the Worklist)

    def _start_worker(self, worker: Any, on_returned: Any) -> Any:
        """Connect a job's worker to the dock's progress, error and cancel handling; start it."""
        worker.yielded.connect(self._on_progress)
        worker.returned.connect(on_returned)
        worker.errored.connect(self._on_error)
        worker.aborted.connect(self._on_aborted)
        worker.finished.connect(self._on_finished)
        self.worker = worker
        worker.start()
        return worker

    def _set_busy(self, busy: bool) -> None:
        self.run_button.setEnabled(not busy)
        self.open_button.setEnabled(not busy)
        self.prepare_button.setEnabled(not busy)
        self.cancel_button.setEnabled(busy)
        if busy:
            self.progress.setRange(0, 0)

    # ------------------------------------------------------------------ run
    def build_options(self) -> InferenceOptions:
        """:class:`bratseg.inference.InferenceOptions` from the controls."""
        from bratseg.bias_field import bias_correction_choice
        from bratseg.inference import InferenceOptions
        from bratseg.labels import check_convention

        return InferenceOptions(
            bias_correction=bias_correction_choice(self.bias_combo.currentData()),
            device=self.device_combo.currentText(),
            tta=8 if self.tta_check.isChecked() else 0,
            convention=check_convention(self.convention_combo.currentText()),
            keep_class_probs=True,  # a class model's argmax mode (Postprocessing dock) needs them
        )

    def run(self) -> Any:
        """Start segmentation of the current case in a background worker; returns the worker."""
        from napari.qt.threading import create_worker

        case = self.state.find_case(self.viewer.layers)
        paths = [Path(p) for p in self.selected_model_paths()]
        if case is None:
            self._fail("no case loaded: open a BraTS case folder first")
            return None
        if getattr(case, "findings", None):  # the engine's input check: raw scans are refused
            from bratseg.io.readiness import readiness_line

            self._fail(f"{case.case_id}: {readiness_line(case.findings)}")
            return None
        if not paths:
            self._fail("no model ticked: tick at least one model (several = ensemble)")
            return None
        current = self.state.session
        approval = current.approval if current is not None else None
        if current is not None and approval is not None and current.case.case_id == case.case_id:
            self._fail(
                f"{case.case_id} is {approval.line()}: reopen it (Worklist) before a new run"
            )
            return None
        try:
            options = self.build_options()
        except Exception as exc:
            self._fail(show_input_error(exc))
            return None
        self.last_error = None
        self._set_busy(True)
        self.status.setText(f"segmenting {case.case_id} with {len(paths)} model(s)…")
        self._stop = threading.Event()
        predictor = self.predictor(paths, options)
        worker = create_worker(
            segment_job,
            case,
            predictor,
            self._stop,
            _start_thread=False,
            _ignore_errors=True,
        )
        return self._start_worker(
            worker, lambda result: self._on_result(case, paths, options, result)
        )

    def predictor(self, paths: list[Path], options: InferenceOptions) -> Predictor:
        """A :class:`bratseg.predictor.Predictor` for ``paths`` that reuses the networks this
        viewer loaded before (a second run does not load them again)."""
        from bratseg.predictor import Predictor

        return Predictor(paths, options, cache=self.state.models)

    def cancel(self) -> None:
        """Ask the running worker to stop at its next progress step."""
        if self.worker is not None:
            self.status.setText("cancelling…")
            self._stop.set()
            self.worker.quit()

    def _fail(self, message: str) -> None:
        from napari.utils.notifications import show_error

        self.last_error = message
        self.status.setText(message)
        show_error(message)

    def _on_progress(self, progress: Any) -> None:
        total = max(int(getattr(progress, "total", 1)), 1)
        self.progress.setRange(0, total)
        self.progress.setValue(min(int(getattr(progress, "step", 0)), total))
        self.status.setText(str(getattr(progress, "message", "")))

    def _on_error(self, exc: BaseException) -> None:
        from bratseg.errors import Cancelled

        if isinstance(exc, Cancelled):
            self._on_aborted()
            return
        self.last_error = show_input_error(exc)
        self.status.setText(f"failed: {self.last_error}")

    def _on_aborted(self) -> None:
        self.status.setText("cancelled — nothing changed")

    def _on_finished(self) -> None:
        if self._stop.is_set() and self.status.text().startswith("cancelling"):
            self._on_aborted()
        self._set_busy(False)
        if self.progress.maximum() == 0:
            self.progress.setRange(0, 1)
            self.progress.setValue(0)
        self.worker = None

    def _on_result(
        self, case: Case, paths: list[Path], options: InferenceOptions, result: SegmentResult
    ) -> None:
        prediction, models, assessment = result
        self.notice.clear()
        info = ModelInfo.from_run(models, paths, prediction, options.tta)
        current = self.state.session
        if (
            current is not None
            and current.case.case_id == case.case_id
            and current.labels.shape == prediction.labels.shape
            and self.state.layer in self.viewer.layers
        ):
            kept = current.replace_prediction(
                prediction, info, keep_edits=True, assessment=assessment
            )
            self.show_session(current)
            if kept:
                self.notice.show_notice(
                    f"Your {kept} hand-edited voxels were kept on the new proposal.",
                    ("Discard my edits", self.discard_edits),
                )
        else:
            self.show_session(ReviewSession.from_prediction(case, prediction, info, assessment))
            self.show_most_tumour()
        self.progress.setRange(0, 1)
        self.progress.setValue(1)
        self.status.setText(
            f"done in {prediction.seconds:.1f} s on {prediction.device}; "
            "tune thresholds in Postprocessing, correct with the brush"
        )

    def show_most_tumour(self) -> int | None:
        """Move the slider to the slice (of the axis being sliced) that holds the most predicted
        tumour, so a new result is seen at once; returns that slice index, None without tumour."""
        layer = self.state.layer
        dims = self.viewer.dims
        if layer is None or not dims.not_displayed:
            return None
        axis = dims.not_displayed[0]
        index = busiest_slice(np.asarray(layer.data) > 0, axis)
        if index is None:
            return None
        world = index * float(layer.scale[axis]) + float(layer.translate[axis])
        dims.point = tuple(world if a == axis else p for a, p in enumerate(dims.point))
        return index

    def show_session(self, session: ReviewSession) -> None:
        """Show a session's labels (and probabilities) in the viewer and publish it to the docks
        (see :func:`napari_brats._show.show_session`)."""
        from .._show import show_session

        show_session(self.viewer, session, probabilities=self.prob_check.isChecked())
