"""Worklist dock: a folder of cases, their review status, batch segmentation and sign-off.

The rules live in the engine (:mod:`bratseg.review.worklist`, :mod:`bratseg.review.signoff`):
this dock shows a :class:`~bratseg.review.worklist.Worklist` as a table
(:mod:`napari_brats._widgets._worklist_table`), opens a case into the viewer exactly as the reader
and the Segment dock do (with its saved review restored), runs *Segment all* and *Export
approved…* in the background (progress bar, Cancel; the viewer never blocks:
:mod:`napari_brats._widgets._worklist_jobs`), and approves or reopens the open case. Every status
comes from the saved review sessions, so it survives a restart.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any

from qtpy.QtWidgets import (
    QComboBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from bratseg.devices import DEVICE_CHOICES

from .._state import viewer_state
from ._common import show_input_error
from ._worklist_batch import BatchStatus
from ._worklist_jobs import BatchJobsMixin
from ._worklist_table import WorklistTable
from .model_list import ModelList

logger = logging.getLogger(__name__)


class WorklistWidget(BatchJobsMixin, QWidget):
    """Dock listing a folder's cases for review."""

    def __init__(self, napari_viewer: Any, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        from bratseg.review import default_reviewer

        self.viewer = napari_viewer
        self.state = viewer_state(napari_viewer)
        self.worklist: Any = None
        self.worker: Any = None
        self.current: int | None = None
        self.last_error: str | None = None
        self.last_export: list[Path] = []
        self.batch = BatchStatus()
        self._stop = threading.Event()
        self._case_layers: list[Any] = []

        self.folder_edit = QLineEdit()
        self.folder_edit.setPlaceholderText("folder of case folders")
        self.folder_edit.returnPressed.connect(lambda: self.set_folder(self.folder_edit.text()))
        browse = QPushButton("Open folder…")
        browse.clicked.connect(self._browse)
        self.table = WorklistTable()
        self.table.cellDoubleClicked.connect(lambda r, _c: self.open_row(r))

        self.open_button = QPushButton("Open")
        self.open_button.clicked.connect(lambda: self.open_row(self.selected_row()))
        self.prev_button = QPushButton("◀ Previous")
        self.prev_button.clicked.connect(lambda: self.step(-1))
        self.next_button = QPushButton("Next ▶")
        self.next_button.clicked.connect(lambda: self.step(1))

        self.model_list = ModelList()
        self.model_list.setMaximumHeight(110)  # the table gets the room
        self.device_combo = QComboBox()
        self.device_combo.addItems(list(DEVICE_CHOICES))
        self.segment_button = QPushButton("Segment all")
        self.segment_button.setToolTip(
            "Segment every new case in the background (done cases are skipped)"
        )
        self.segment_button.clicked.connect(lambda: self.segment_all())
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        self.cancel_button.clicked.connect(self.cancel)
        self.progress = QProgressBar()
        self.progress.setRange(0, 1)
        self.progress.setValue(0)

        self.reviewer_edit = QLineEdit(default_reviewer())
        self.reviewer_edit.setToolTip("Who signs off (default: your user name)")
        self.approve_button = QPushButton("Approve")
        self.approve_button.clicked.connect(lambda: self.approve())
        self.reopen_button = QPushButton("Reopen")
        self.reopen_button.clicked.connect(lambda: self.reopen())
        self.export_button = QPushButton("Export approved…")
        self.export_button.setToolTip("Write every approved case into a training dataset folder")
        self.export_button.clicked.connect(lambda: self.export_approved())
        self.status = QLabel("Open a folder of case folders.")
        self.status.setWordWrap(True)

        folder_row = QHBoxLayout()
        folder_row.addWidget(self.folder_edit)
        folder_row.addWidget(browse)
        nav = QHBoxLayout()
        for button in (self.prev_button, self.open_button, self.next_button):
            nav.addWidget(button)
        batch = QHBoxLayout()
        batch.addWidget(self.segment_button)
        batch.addWidget(self.cancel_button)
        sign = QFormLayout()
        sign.addRow("Reviewer", self.reviewer_edit)
        sign_buttons = QHBoxLayout()
        for button in (self.approve_button, self.reopen_button, self.export_button):
            sign_buttons.addWidget(button)
        layout = QVBoxLayout(self)
        layout.addLayout(folder_row)
        layout.addWidget(self.table, stretch=1)
        layout.addLayout(nav)
        layout.addWidget(QLabel("Models for Segment all (tick ≥ 1)"))
        layout.addWidget(self.model_list)
        form = QFormLayout()
        form.addRow("Device", self.device_combo)
        layout.addLayout(form)
        layout.addLayout(batch)
        layout.addWidget(self.progress)
        layout.addLayout(sign)
        layout.addLayout(sign_buttons)
        layout.addWidget(self.status)

        self.model_list.refresh()
        self.state.models_changed.connect(self.model_list.refresh)
        self.state.signoff_changed.connect(lambda _s: self._refresh_current())
        self.state.autosaved.connect(lambda _s: self._refresh_current())
        self._update_buttons()

    # ------------------------------------------------------------------ folder and table
    def _browse(self) -> None:
        folder = QFileDialog.getExistingDirectory(
            self, "Folder of case folders", self.folder_edit.text()
        )
        if folder:
            self.set_folder(folder)

    def set_folder(self, folder: str | Path) -> bool:
        """List the cases of ``folder``; errors go to a dialog. Returns success."""
        from bratseg.review.worklist import Worklist

        self.folder_edit.setText(str(folder))
        try:
            self.worklist = Worklist(folder, self.state.store)
        except Exception as exc:
            self._error(exc)
            return False
        self.current = None
        self.fill_table()
        n_err = sum(r.status == "error" for r in self.worklist.rows)
        self.status.setText(
            f"{len(self.worklist.rows)} cases" + (f", {n_err} unusable" if n_err else "")
        )
        return True

    def fill_table(self) -> None:
        """Show every row of the worklist."""
        self.table.show_rows(self.worklist.rows if self.worklist is not None else [])
        self._update_buttons()

    def update_row(self, index: int) -> None:
        """Show row ``index`` as the worklist has it now."""
        self.table.show_row(index, self.worklist.rows[index])

    def selected_row(self) -> int | None:
        """Index of the selected row (None when nothing is selected)."""
        selected = self.table.selected_index()
        return selected if selected is not None else self.current

    def _refresh_current(self) -> None:
        if self.worklist is not None and self.current is not None and self.worker is None:
            self.worklist.refresh_row(self.current)
            self.update_row(self.current)
        self._update_buttons()

    # ------------------------------------------------------------------ open
    def step(self, offset: int) -> bool:
        """Open the next (``offset`` 1) or previous (-1) case."""
        if self.worklist is None:
            return False
        target = self.worklist.step(self.current, offset)
        return target is not None and self.open_row(target)

    def open_row(self, index: int | None) -> bool:
        """Load row ``index``'s case into the viewer (as the reader does) with its saved review.

        The open case's edits are already autosaved; its layers are replaced by the new case's.
        """
        from .._reader import read_case
        from .._show import show_session

        if self.worklist is None or index is None:
            return False
        row = self.worklist.rows[index]
        if row.key is None:
            self._fail(f"{row.case_id}: {row.error}")
            return False
        self.state.save_now()
        try:
            layer_data = read_case(str(row.folder))
            case = self.state.adopt(layer_data)
            if case is None:
                raise RuntimeError(f"{row.case_id}: the reader returned no case")
            saved = self.state.store.get(row.key)
            if saved is not None and saved.problem:  # the row's note says why; open the images
                saved = None
            session = self.state.store.restore(saved, case) if saved is not None else None
        except Exception as exc:
            self._error(exc)
            return False
        self._close_case_layers()
        self.state.set_session(None)
        self._case_layers = [
            getattr(self.viewer, f"add_{kind}")(data, **kwargs) for data, kwargs, kind in layer_data
        ]
        if session is not None:
            self._case_layers.append(show_session(self.viewer, session))
        self.current = index
        self.table.selectRow(index)
        self.worklist.refresh_row(index)
        self.update_row(index)
        self.status.setText(
            f"{row.case_id}: {self.worklist.rows[index].status}"
            + (" (read-only until reopened)" if session is not None and session.approved else "")
        )
        self._update_buttons()
        return True

    def _show_new_review(self) -> None:
        """The open case had no review and the batch made one: show it."""
        from .._show import show_session

        if self.current is None or self.state.session is not None or not self._case_layers:
            return
        row = self.worklist.rows[self.current]
        saved = self.state.store.get(row.key) if row.key else None
        case = self.state.case_of(self._case_layers[0])
        if saved is None or case is None or self._case_layers[0] not in self.viewer.layers:
            return
        try:
            self._case_layers.append(
                show_session(self.viewer, self.state.store.restore(saved, case))
            )
        except Exception as exc:
            self._error(exc)

    def _close_case_layers(self) -> None:
        """Remove the layers of the case this dock opened before (probability layers too)."""
        names = {layer.name for layer in self._case_layers}
        case_id = self.state.session.case.case_id if self.state.session is not None else None
        for layer in list(self.viewer.layers):
            meta = layer.metadata.get("bratseg", {}) if hasattr(layer, "metadata") else {}
            if layer.name in names or (case_id is not None and meta.get("case_id") == case_id):
                self.viewer.layers.remove(layer)
        self._case_layers = []

    # ------------------------------------------------------------------ sign-off
    def approve(self) -> Any:
        """Approve the case open in the viewer (its labels layer becomes read-only)."""
        return self._sign("approve")

    def reopen(self) -> Any:
        """Reopen the approved case open in the viewer (recorded; editable again)."""
        return self._sign("reopen")

    def _sign(self, action: str) -> Any:
        if self.state.session is None or self.current is None:
            self._fail("open a segmented case first")
            return None
        try:
            entry = getattr(self.state, action)(self.reviewer_edit.text())
        except Exception as exc:
            self._error(exc)
            return None
        self.status.setText(
            f"{self.state.session.case.case_id} {entry.line()}"
            + ("; read-only until reopened" if action == "approve" else "")
        )
        return entry

    def _update_buttons(self) -> None:
        busy = self.worker is not None
        has = self.worklist is not None and bool(self.worklist.rows)
        for button in (
            self.open_button,
            self.prev_button,
            self.next_button,
            self.segment_button,
            self.export_button,
        ):
            button.setEnabled(has and not busy)
        self.cancel_button.setEnabled(busy)
        open_case = self.state.session is not None and self.current is not None
        self.approve_button.setEnabled(open_case and not self.state.approved and not busy)
        self.reopen_button.setEnabled(open_case and self.state.approved and not busy)

    def _error(self, exc: BaseException) -> None:
        self.last_error = show_input_error(exc)  # shown as a notification
        self.status.setText(self.last_error)

    def _fail(self, message: str) -> None:
        from napari.utils.notifications import show_error

        self.last_error = message
        self.status.setText(message)
        show_error(message)
