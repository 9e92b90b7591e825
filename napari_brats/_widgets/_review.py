"""The Segment dock's review notices: edits kept after a re-run, and a saved review to restore.

Both are non-blocking: a line of text with buttons inside the dock, never a modal dialog.
:class:`SavedReviewMixin` holds the dock's methods behind them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from qtpy.QtWidgets import QHBoxLayout, QLabel, QPushButton, QVBoxLayout, QWidget

if TYPE_CHECKING:
    from bratseg.io import Case
    from bratseg.review import ReviewSession

    from .._state import ViewerState


class ReviewNotice(QWidget):
    """One notice line with up to two buttons; hidden when there is nothing to say."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.text = QLabel("")
        self.text.setWordWrap(True)
        self.primary = QPushButton("")
        self.secondary = QPushButton("")
        self._actions: dict[QPushButton, Any] = {}
        self.primary.clicked.connect(lambda: self._run(self.primary))
        self.secondary.clicked.connect(lambda: self._run(self.secondary))
        row = QHBoxLayout()
        row.addWidget(self.primary)
        row.addWidget(self.secondary)
        row.addStretch()
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.text)
        layout.addLayout(row)
        self.clear()

    def show_notice(
        self,
        text: str,
        primary: tuple[str, Any] | None = None,
        secondary: tuple[str, Any] | None = None,
    ) -> None:
        """Show ``text`` with buttons ``(label, callback)``; a button's click hides the notice."""
        self.text.setText(text)
        for button, spec in ((self.primary, primary), (self.secondary, secondary)):
            button.setVisible(spec is not None)
            if spec is not None:
                button.setText(spec[0])
                self._actions[button] = spec[1]
        self.setVisible(True)

    def clear(self) -> None:
        """Hide the notice."""
        self.text.setText("")
        self._actions.clear()
        self.setVisible(False)

    def _run(self, button: QPushButton) -> None:
        action = self._actions.get(button)
        self.clear()
        if action is not None:
            action()


class SavedReviewMixin:
    """Segment-dock methods for autosaved reviews and discarding edits (needs ``state``,
    ``notice``, ``status``, ``viewer``, ``show_session`` and ``_fail`` on the dock)."""

    state: ViewerState
    notice: ReviewNotice
    status: QLabel
    _offered: str | None

    if TYPE_CHECKING:  # the dock's own methods

        def _fail(self, message: str) -> None: ...

        def show_session(self, session: ReviewSession) -> None: ...

    def offer_saved_review(self, case: Case) -> bool:
        """When ``case`` has an autosaved review with hand edits, offer to restore it (once)."""
        session = self.state.session
        if session is not None and session.case.case_id == case.case_id:
            return False
        saved = self.state.saved_session_of(case)
        if saved is None or saved.n_edited == 0 or self._offered == saved.key:
            return False
        self._offered = saved.key
        self.notice.show_notice(
            f"A saved review of {case.case_id} exists ({saved.n_edited} hand-edited voxels, "
            f"last change {saved.meta.get('last_change')}, models "
            f"{', '.join((saved.meta.get('model') or {}).get('names', [])) or '?'}).",
            ("Restore it", lambda: self.restore_saved_review(case)),
            ("Discard it", lambda: self.state.store.discard(saved.key)),
        )
        return True

    def restore_saved_review(self, case: Case) -> ReviewSession | None:
        """Open the autosaved review of ``case``: its labels and edits, no probabilities (a new
        run of the model keeps the edits)."""
        saved = self.state.saved_session_of(case)
        if saved is None:
            return None
        try:
            session = self.state.store.restore(saved, case)
        except Exception as exc:
            from ._common import show_input_error

            self._fail(show_input_error(exc))
            return None
        self.show_session(session)
        self.status.setText(
            f"restored {saved.n_edited} hand-edited voxels of {case.case_id}; run the "
            "segmentation again to tune settings (the edits are kept)"
        )
        return session

    def discard_edits(self) -> None:
        """Drop every hand edit of the open review: the labels become the AI proposal."""
        session = self.state.session
        if session is None:
            return
        session.clear_overrides()
        self.state.commit()
        self.status.setText("hand edits discarded: the labels are the AI proposal")
