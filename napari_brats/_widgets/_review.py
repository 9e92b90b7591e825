"""The Segment dock's review notices: edits kept after a re-run, and a saved review to restore.

Both are non-blocking: a line of text with buttons inside the dock, never a modal dialog.
"""

from __future__ import annotations

from typing import Any

from qtpy.QtWidgets import QHBoxLayout, QLabel, QPushButton, QVBoxLayout, QWidget


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

    def show_notice(self, text: str, primary: tuple[str, Any] | None = None,
                    secondary: tuple[str, Any] | None = None) -> None:
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
