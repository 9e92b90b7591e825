"""The Segment dock's way of opening a case: the folder dialog, reading (or registering, in a
worker with progress and Cancel), the layers, and what the opened case needs said.

:func:`napari_brats._reader.read_case` reads a case at once; with *Align series: register*
(seconds per series) :func:`napari_brats._reader.iter_read_case` runs in a worker through the
dock's own progress bar and Cancel. A folder the reader refuses gets the error dialog and, for raw
scans, the offer to prepare them (:mod:`napari_brats._widgets._prepare_flow`). Once the layers are
in, the status line says what the case needs: input-check findings, a missing series and its
stand-in, or the registration lines (poor ones as an error).

:class:`OpenCaseMixin` holds these methods for :class:`~napari_brats._widgets.segment.SegmentWidget`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from qtpy.QtWidgets import QFileDialog, QWidget

from ._common import show_input_error

if TYPE_CHECKING:
    from qtpy.QtWidgets import QComboBox, QLabel

    from .._layers import LayerDataTuple
    from .._state import ViewerState

    _Dock = QWidget  # the mixin is only ever part of the Segment dock, a QWidget
else:
    _Dock = object


class OpenCaseMixin(_Dock):
    """Methods of the Segment dock behind *Open case…* (see the module docstring)."""

    viewer: Any  # napari.Viewer
    state: ViewerState
    status: QLabel
    align_combo: QComboBox
    last_error: str | None
    _stop: threading.Event

    if TYPE_CHECKING:  # the dock's own methods the flow calls

        def _set_busy(self, busy: bool) -> None: ...

        def _fail(self, message: str) -> None: ...

        def _start_worker(self, worker: Any, on_returned: Callable[..., Any]) -> Any: ...

        def offer_prepare_folder(self, folder: str | Path, message: str) -> Any: ...

    def _open_case_dialog(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "BraTS case folder")
        if folder:
            self.open_case(folder)

    def open_case(self, folder: str | Path) -> bool:
        """Load a case folder into the viewer (asking first about unexported edits of the open
        case); errors go to a dialog. Returns success."""
        from .._closeguard import ask_about_edits, settle_edits
        from .._reader import read_case

        if not settle_edits(
            self, self.state, ask_about_edits(self, self.state, "opening another case")
        ):
            return False

        align = self.align_combo.currentText()
        if align == "register":  # seconds per series: in a worker, with progress and Cancel
            self._open_in_background(folder, align)
            return True
        try:
            layer_data = read_case(str(folder), align=align)
        except Exception as exc:
            self.last_error = show_input_error(exc)
            self.status.setText(self.last_error)
            self.offer_prepare_folder(folder, self.last_error)  # raw series: the way out
            return False
        self._show_case(layer_data)
        return True

    def _open_in_background(self, folder: str | Path, align: str) -> Any:
        """Load (and register) a case in a worker thread; the layers appear when it is done."""
        from napari.qt.threading import create_worker

        from .._reader import iter_read_case

        self.last_error = None
        self._set_busy(True)
        self.status.setText(f"opening {Path(folder).name}…")
        self._stop = threading.Event()
        worker = create_worker(
            iter_read_case, str(folder), align, _start_thread=False, _ignore_errors=True
        )
        return self._start_worker(worker, self._show_case)

    def _show_case(self, layer_data: list[LayerDataTuple]) -> None:
        case = self.state.adopt(layer_data)
        for data, kwargs, kind in layer_data:
            getattr(self.viewer, f"add_{kind}")(data, **kwargs)
        if case is None:
            return
        self.status.setText(f"opened {case.case_id}")
        if getattr(case, "findings", None):
            from bratseg.io.readiness import readiness_line

            self._fail(f"{case.case_id}: {readiness_line(case.findings)}")
            return
        notes = case.missing_sequence_notes()
        if notes:  # segmented with a stand-in series: said once, and kept in the status line
            from napari.utils.notifications import show_warning

            self.status.setText(f"{case.case_id}: " + "; ".join(notes))
            show_warning(self.status.text())
            return
        if case.alignment:
            self.status.setText("; ".join(r.line() for r in case.alignment))
            if any(r.poor for r in case.alignment):
                self._fail(
                    "poor registration: " + "; ".join(r.line() for r in case.alignment if r.poor)
                )
