"""Correction dock: edit the AI labels with napari's own tools, safely.

Buttons pick the tissue to paint (values from :mod:`bratseg.labels` for the session's convention),
the brush size and 2D/3D brush; "Lock other labels" turns on napari's ``preserve_labels`` so
painting ET only fills background and never erases ED. Every edited voxel is an override that
postprocessing updates keep (see :class:`bratseg.review.ReviewSession`); undo/redo are napari's
own. "Revert all edits" goes back to the AI proposal after a confirmation.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from qtpy.QtWidgets import (
    QCheckBox,
    QFormLayout,
    QGridLayout,
    QLabel,
    QMessageBox,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from bratseg.labels import LABEL_COLORS, LABEL_VALUES

from .._state import viewer_state

if TYPE_CHECKING:
    from bratseg.review import ReviewSession

logger = logging.getLogger(__name__)

TISSUE_BUTTONS = (("ncr", "NCR"), ("ed", "ED"), ("et", "ET"), ("background", "Erase"))


class CorrectionWidget(QWidget):
    """Dock with painting shortcuts, the lock option, undo/redo and edit counts."""

    def __init__(self, napari_viewer: Any, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.viewer = napari_viewer
        self.state = viewer_state(napari_viewer)

        grid = QGridLayout()
        self.tissue_buttons: dict[str, QPushButton] = {}
        for index, (tissue, text) in enumerate(TISSUE_BUTTONS):
            button = QPushButton(f"Paint {text}" if tissue != "background" else text)
            if tissue in LABEL_COLORS:
                r, g, b, _ = (int(255 * c) for c in LABEL_COLORS[tissue])
                button.setStyleSheet(f"border-left: 8px solid rgb({r},{g},{b});")
            button.clicked.connect(lambda _=False, t=tissue: self.paint_tissue(t))
            grid.addWidget(button, index // 2, index % 2)
            self.tissue_buttons[tissue] = button

        self.brush = QSpinBox()
        self.brush.setRange(1, 100)
        self.brush.setValue(6)
        self.brush.valueChanged.connect(self._apply_brush)
        self.brush_3d = QCheckBox("3D brush (paint through slices)")
        self.brush_3d.toggled.connect(self._apply_brush)
        self.lock = QCheckBox("Lock other labels (paint only over background)")
        self.lock.setToolTip("napari's preserve_labels: painting ET does not erase ED")
        self.lock.toggled.connect(self.set_lock)

        undo = QPushButton("Undo")
        undo.clicked.connect(lambda: self._layer_call("undo"))
        redo = QPushButton("Redo")
        redo.clicked.connect(lambda: self._layer_call("redo"))
        revert = QPushButton("Revert all edits to AI proposal…")
        revert.clicked.connect(lambda: self.revert_edits())
        grid.addWidget(undo, 2, 0)
        grid.addWidget(redo, 2, 1)

        form = QFormLayout()
        form.addRow("Brush size", self.brush)
        self.edits_label = QLabel("No segmentation yet.")
        self.edits_label.setWordWrap(True)

        layout = QVBoxLayout(self)
        layout.addWidget(QLabel("Edit the segmentation with napari's label tools:"))
        layout.addLayout(grid)
        layout.addLayout(form)
        layout.addWidget(self.brush_3d)
        layout.addWidget(self.lock)
        layout.addWidget(revert)
        layout.addWidget(self.edits_label)
        layout.addStretch()

        self.state.session_changed.connect(self._on_session)
        self.state.signoff_changed.connect(self._on_session)
        self.state.labels_changed.connect(self.refresh)
        self._on_session(self.state.session)

    @property
    def layer(self) -> Any:
        """The labels layer of the current session (or None)."""
        return self.state.layer if self.state.session is not None else None

    def paint_tissue(self, tissue: str) -> None:
        """Select the layer, switch to paint mode with ``tissue``'s label value."""
        layer, session = self.layer, self.state.session
        if layer is None or session is None:
            return
        value = 0 if tissue == "background" else LABEL_VALUES[session.convention][tissue]
        self.viewer.layers.selection.active = layer
        layer.selected_label = value
        layer.mode = "erase" if value == 0 else "paint"
        self._apply_brush()

    def set_lock(self, locked: bool) -> None:
        """Turn napari's ``preserve_labels`` on or off."""
        if self.layer is not None:
            self.layer.preserve_labels = bool(locked)
        if self.lock.isChecked() != bool(locked):
            self.lock.setChecked(bool(locked))

    def _apply_brush(self, *_: Any) -> None:
        layer = self.layer
        if layer is not None:
            layer.brush_size = self.brush.value()
            layer.n_edit_dimensions = 3 if self.brush_3d.isChecked() else 2

    def _layer_call(self, method: str) -> None:
        layer = self.layer
        if layer is not None:
            getattr(layer, method)()
            if id(layer) not in self.state.trackers:  # a tracked layer's change is committed
                self.state.labels_changed.emit()  # (and announced once) by its EditTracker

    def revert_edits(self, confirm: bool | None = None) -> bool:
        """Discard every manual edit (after asking unless ``confirm`` is given)."""
        session = self.state.session
        if session is None:
            return False
        if confirm is None:
            answer = QMessageBox.question(
                self, "Revert edits", "Discard all manual edits and restore the AI proposal?"
            )
            confirm = answer == QMessageBox.StandardButton.Yes
        if not confirm:
            return False
        session.clear_overrides()
        self.state.commit()
        return True

    def _on_session(self, session: ReviewSession | None) -> None:
        self.setEnabled(session is not None and not session.approved)
        if session is not None and session.approval is not None:  # signed off: read-only
            self.edits_label.setText(
                f"{session.case.case_id} is {session.approval.line()}: read-only. "
                "Reopen it in the Worklist to edit."
            )
            return
        if session is not None and self.state.layer is not None:
            self.state.layer.preserve_labels = self.lock.isChecked()
            self._apply_brush()
        self.refresh()

    def refresh(self) -> None:
        """Update the count of edited voxels per tissue."""
        session = self.state.session
        if session is None:
            self.edits_label.setText("No segmentation yet: run Segment first.")
            return
        session.record_edits()
        edits = session.edited_voxels()
        parts = [
            f"{t.upper()} +{e['added']}/−{e['removed']}"
            for t, e in edits.items()
            if t != "background"
        ]
        self.edits_label.setText(
            f"Hand-edited voxels kept across slider moves: {int(session.overrides.sum())}\n"
            + ", ".join(parts)
        )
