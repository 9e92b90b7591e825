"""Ask before unexported hand edits leave the screen: closing the viewer or opening another case.

The edits are autosaved after every stroke, so nothing is lost either way; the question lets the
user decide what happens to them now: export them as a label file, keep the autosave (offered
again when the case is opened), or discard them. Closing can also be cancelled.
"""

from __future__ import annotations

import logging
import weakref
from pathlib import Path
from typing import Any

from qtpy.QtCore import QEvent, QObject
from qtpy.QtWidgets import QFileDialog, QMessageBox, QWidget

from ._state import ViewerState

logger = logging.getLogger(__name__)

#: Choices of :func:`ask_about_edits`.
CHOICES = ("export", "keep", "discard", "cancel")


def ask_about_edits(parent: QWidget | None, state: ViewerState, action: str) -> str:
    """Ask what to do with the open case's unexported edits before ``action``.

    Returns:
        One of :data:`CHOICES` (``"keep"`` at once when there is nothing to ask about).
    """
    session = state.session
    if session is None or not state.has_unexported_edits():
        return "keep"
    box = QMessageBox(parent)
    box.setIcon(QMessageBox.Icon.Question)
    box.setWindowTitle("Unexported hand edits")
    box.setText(
        f"{session.case.case_id} has {session.n_edited} hand-edited voxels that were not exported."
    )
    box.setInformativeText(
        f"Before {action}: export them, keep the autosave (offered again when the "
        "case is opened), or discard them?"
    )
    buttons = {
        "export": box.addButton("Export…", QMessageBox.ButtonRole.AcceptRole),
        "keep": box.addButton("Keep autosave", QMessageBox.ButtonRole.AcceptRole),
        "discard": box.addButton("Discard edits", QMessageBox.ButtonRole.DestructiveRole),
        "cancel": box.addButton(QMessageBox.StandardButton.Cancel),
    }
    box.setDefaultButton(buttons["keep"])
    box.setObjectName("napari-brats-unexported-edits")
    box.exec()
    clicked = box.clickedButton()
    return next((name for name, button in buttons.items() if button is clicked), "cancel")


def settle_edits(parent: QWidget | None, state: ViewerState, choice: str) -> bool:
    """Carry out ``choice``; returns False when the action must not go on."""
    if choice == "cancel":
        return False
    if state.session is not None:  # asked once: the same edits are not asked about again
        state.settled_edits = state.session.n_edited
    if choice == "discard":
        if state.key:
            state.store.discard(state.key)
        if state.session is not None:  # the labels become the AI proposal again
            state.session.clear_overrides()
            state.settled_edits = 0
            state.commit(save=False)  # its saved review was just discarded
        return True
    if choice == "export":
        return export_labels_dialog(parent, state)
    state.save_now()
    return True


def export_labels_dialog(parent: QWidget | None, state: ViewerState) -> bool:
    """Ask for a file name and write the working labels there in the source geometry."""
    from bratseg.io import save_label_map

    session = state.session
    if session is None:
        return False
    name, _ = QFileDialog.getSaveFileName(
        parent, "Export labels", f"{session.case.case_id}_seg.nii.gz", "NIfTI (*.nii.gz *.nii)"
    )
    if not name:
        return False
    try:
        save_label_map(
            session.labels,
            Path(name),
            affine=session.case.affine,
            header=session.case.header,
            convention=session.convention,
            src_convention=session.convention,
            overwrite=True,
        )
    except Exception as exc:
        from ._widgets._common import show_input_error

        show_input_error(exc)
        return False
    state.save_now(exported=True)
    return True


class CloseGuard(QObject):
    """Event filter on the viewer's main window: asks before closing with unexported edits."""

    def __init__(self, window: QWidget, state: ViewerState) -> None:
        super().__init__(window)
        self._window = weakref.ref(window)  # no reference cycle keeping a closed viewer alive
        self.state = state
        self.last_choice: str | None = None
        window.installEventFilter(self)

    def eventFilter(self, obj: Any, event: Any) -> bool:  # noqa: N802 (Qt's name)
        window = self._window()
        if window is not None and obj is window and event.type() == QEvent.Type.Close:
            # a window never shown (a script, a test) has nobody to ask: the autosave is kept
            visible = window.isVisible()
            choice = (
                ask_about_edits(window, self.state, "closing the viewer") if visible else "keep"
            )
            self.last_choice = choice
            if not settle_edits(window, self.state, choice):
                event.ignore()
                return True
        return False


def install_close_guard(viewer: Any, state: ViewerState) -> CloseGuard | None:
    """Guard ``viewer``'s main window once (None when it has no Qt window)."""
    viewer = getattr(viewer, "__wrapped__", viewer)  # docks made by napari get a public-only proxy
    window = getattr(getattr(viewer, "window", None), "_qt_window", None)
    if window is None or not isinstance(window, QWidget):
        return None
    guard = _GUARDS.get(id(window))
    if guard is None or guard._window() is not window:
        guard = CloseGuard(window, state)
        _GUARDS[id(window)] = guard
    return guard


_GUARDS: weakref.WeakValueDictionary[int, CloseGuard] = weakref.WeakValueDictionary()
