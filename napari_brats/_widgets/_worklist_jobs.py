"""The Worklist dock's background jobs: *Segment all* and *Export approved…*.

Both run an engine function in a napari ``thread_worker`` thread so the viewer never blocks:
:func:`~bratseg.review.worklist.segment_all` (the ticked models on every new case, reusing the
networks the Segment dock loaded) and :func:`~bratseg.review.worklist.export_approved` (every
approved case into a dataset folder; existing exports of the same cases are replaced only after
a Yes). Their :class:`~bratseg.review.batch.BatchEvent` items drive the dock's progress bar and
status line through :class:`~napari_brats._widgets._worklist_batch.BatchStatus`; a finished case
refreshes its table row. Cancel sets the job's stop flag (it stops at its next step); when the job
ends the table is filled again and a review the batch made for the open case is shown.

:class:`BatchJobsMixin` holds these methods for
:class:`~napari_brats._widgets.worklist.WorklistWidget`.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from qtpy.QtWidgets import QFileDialog, QMessageBox, QWidget

from ._worklist_batch import BatchStatus

if TYPE_CHECKING:
    from qtpy.QtWidgets import QComboBox, QLabel, QProgressBar

    from bratseg.review.batch import BatchEvent

    from .._state import ViewerState
    from .model_list import ModelList

    _Dock = QWidget  # the mixin is only ever part of the Worklist dock, a QWidget
else:
    _Dock = object


class BatchJobsMixin(_Dock):
    """Methods of the Worklist dock behind its background jobs (see the module docstring)."""

    state: ViewerState
    worklist: Any  # bratseg.review.worklist.Worklist, None until a folder is open
    worker: Any  # the running napari worker, None when idle
    last_error: str | None
    last_export: list[Path]
    batch: BatchStatus
    _stop: threading.Event
    model_list: ModelList
    device_combo: QComboBox
    progress: QProgressBar
    status: QLabel

    if TYPE_CHECKING:  # the dock's own methods the jobs call

        def fill_table(self) -> None: ...

        def update_row(self, index: int) -> None: ...

        def _show_new_review(self) -> None: ...

        def _update_buttons(self) -> None: ...

        def _error(self, exc: BaseException) -> None: ...

        def _fail(self, message: str) -> None: ...

    def segment_all(self) -> Any:
        """Segment every new case in a background worker; returns the worker."""
        from napari.qt.threading import create_worker

        from bratseg.inference import InferenceOptions
        from bratseg.review.worklist import segment_all

        paths = self.model_list.selected_paths()
        if self.worklist is None or not paths:
            self._fail("open a folder and tick at least one model first")
            return None
        self._stop = threading.Event()
        options = InferenceOptions(device=self.device_combo.currentText())
        worker = create_worker(
            segment_all,
            self.worklist,
            paths,
            options,
            self._stop.is_set,
            cache=self.state.models,  # the networks the Segment dock loaded are reused
            _start_thread=False,
            _ignore_errors=True,
        )
        return self._start(worker, "segmenting…")

    def export_approved(
        self, folder: str | Path | None = None, overwrite: bool | None = None
    ) -> Any:
        """Export every approved case into ``folder`` (asked when None) in a background worker.

        Existing exports of the same cases are replaced only after a Yes (or ``overwrite``).
        """
        from napari.qt.threading import create_worker

        from bratseg.review.worklist import approved_rows, existing_exports, export_approved

        if self.worklist is None or not approved_rows(self.worklist):
            self._fail("no approved case to export")
            return None
        if folder is None:
            folder = QFileDialog.getExistingDirectory(self, "Dataset folder for the approved cases")
            if not folder:
                return None
        existing = existing_exports(self.worklist, folder)
        if existing and overwrite is None:
            answer = QMessageBox.question(
                self,
                "Replace exports?",
                f"{len(existing)} approved cases are already "
                f"in {folder} ({', '.join(existing[:3])}…). Replace them?",
            )
            overwrite = answer == QMessageBox.StandardButton.Yes
        self.last_export = []
        self._stop = threading.Event()
        worker = create_worker(
            export_approved,
            self.worklist,
            folder,
            overwrite=bool(overwrite),
            should_stop=self._stop.is_set,
            _start_thread=False,
            _ignore_errors=True,
        )
        worker.returned.connect(lambda paths: setattr(self, "last_export", list(paths or [])))
        return self._start(worker, f"exporting approved cases to {folder}…")

    def _start(self, worker: Any, message: str) -> Any:
        self.state.save_now()  # no autosave of the open case pending while the batch reads the store
        self.last_error = None
        self.batch = BatchStatus()
        worker.yielded.connect(self._on_event)
        worker.errored.connect(lambda exc: self._error(exc))
        worker.finished.connect(self._on_finished)
        self.worker = worker
        self.progress.setRange(0, 0)
        self.status.setText(message)
        self._update_buttons()
        worker.start()
        return worker

    def cancel(self) -> None:
        """Stop the batch at its next step (the case being segmented stays new)."""
        if self.worker is not None:
            self.status.setText("cancelling…")
            self._stop.set()
            self.worker.quit()

    def _on_event(self, event: BatchEvent) -> None:
        maximum, value = self.batch.progress(event)
        self.progress.setRange(0, maximum)
        self.progress.setValue(value)
        self.status.setText(self.batch.message(event))
        if self.batch.closes_case(event):
            self.update_row(event.index)

    def _on_finished(self) -> None:
        self.worker = None
        if self.worklist is not None:
            self.fill_table()
            self._show_new_review()
        if self._stop.is_set():
            self.status.setText(
                self.status.text() if "stopped" in self.status.text() else "cancelled"
            )
        self.progress.setRange(0, 1)
        self.progress.setValue(1)
        self._update_buttons()
