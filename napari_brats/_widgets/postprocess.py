"""Postprocessing dock: live thresholds and ET rules on the cached probabilities.

Every control change (debounced by a few milliseconds) rebuilds the label map from the session's
cached probabilities with :func:`bratseg.postprocess.postprocess` — the model is not run again —
and merges it into the labels layer, keeping the user's hand-edited voxels (see
:meth:`bratseg.review.ReviewSession.apply_config`). The dock also shows the live tumour volumes
(mL) of NCR, ED, ET, TC and WT and how long the last update took.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import TYPE_CHECKING, Any

from qtpy.QtCore import QTimer
from qtpy.QtWidgets import (
    QGroupBox,
    QLabel,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)
from superqt import QCollapsible

from .._state import viewer_state
from ._common import VOLUME_ROWS, fmt_ml, show_input_error, spacing_of
from ._settings_form import control_values, setting_forms

if TYPE_CHECKING:
    from bratseg.postprocess import PostprocessConfig
    from bratseg.review import ReviewSession

logger = logging.getLogger(__name__)

#: Delay (ms) coalescing slider drags into one update.
DEBOUNCE_MS = 30


class PostprocessWidget(QWidget):
    """Dock with the postprocessing parameters and live volumes.

    The controls (``controls``: field name -> magicgui widget) are built from the settings
    declared on :class:`bratseg.postprocess.PostprocessConfig`: the thresholds and tumour-part
    rules up front, the enhancing-tumour rules under a collapsible *Advanced* section.
    """

    def __init__(self, napari_viewer: Any, parent: QWidget | None = None) -> None:
        from bratseg.postprocess import PostprocessConfig
        from bratseg.postprocess.config import ET_GROUP, MAIN_GROUP

        super().__init__(parent)
        self.viewer = napari_viewer
        self.state = viewer_state(napari_viewer)
        defaults = PostprocessConfig()
        self._updating = False

        self.controls, forms = setting_forms(defaults)
        self.mode_combo = self.controls["mode"].native  # its argmax item needs class probabilities
        self.ml_label = QLabel("")
        self.et_rule_label = QLabel("")
        self.et_rule_label.setWordWrap(True)
        self.restore_et = QPushButton("Restore ET (rule off for this case)")
        self.restore_et.setToolTip(
            "Turn the no-enhancement decision (both of its rules) off and show the model's ET"
        )
        self.restore_et.clicked.connect(self.restore_enhancing_tumour)
        self.restore_et.setEnabled(False)
        reset = QPushButton("Reset to model defaults")
        reset.clicked.connect(self.reset_to_model_defaults)

        main = QGroupBox("Thresholds (WT → TC ⊂ WT → ET ⊂ TC) and tumour parts")
        QVBoxLayout(main).addWidget(forms.pop(MAIN_GROUP).native)
        self.advanced = QCollapsible("Advanced: enhancing-tumour (ET) rules")
        self.advanced.addWidget(forms.pop(ET_GROUP).native)  # its last control: T1Gd/T1 rule
        self.advanced.addWidget(self.et_rule_label)  # ... so its decision and Restore follow
        self.advanced.addWidget(self.restore_et)
        for form in forms.values():  # a group added to the config lands here too
            self.advanced.addWidget(form.native)
        self.advanced.addWidget(self.ml_label)
        self._sections: tuple[QWidget, ...] = (main, self.advanced)

        self.volume_table = QTableWidget(len(VOLUME_ROWS), 1)
        self.volume_table.setHorizontalHeaderLabels(["Volume (mL)"])
        self.volume_table.setVerticalHeaderLabels([r.upper() for r in VOLUME_ROWS])
        self.volume_table.setMaximumHeight(175)
        header = self.volume_table.horizontalHeader()
        if header is not None:  # Qt's stubs type every header as optional
            header.setStretchLastSection(True)
        self.timing_label = QLabel("Segment a case to enable the controls.")
        self.timing_label.setWordWrap(True)

        layout = QVBoxLayout(self)
        layout.addWidget(main)
        layout.addWidget(self.advanced)
        layout.addWidget(reset)
        layout.addWidget(QLabel("Live volumes (current labels, edits included)"))
        layout.addWidget(self.volume_table)
        layout.addWidget(self.timing_label)
        layout.addStretch()

        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(DEBOUNCE_MS)
        self._timer.timeout.connect(self.apply_now)
        self.set_config(defaults)
        for control in self.controls.values():
            control.changed.connect(self.schedule_update)
        self.state.session_changed.connect(self._on_session)
        self.state.signoff_changed.connect(self._on_session)
        self.state.labels_changed.connect(self.refresh_volumes)
        self._on_session(self.state.session)

    # ------------------------------------------------------------------ config <-> controls
    def set_config(self, config: PostprocessConfig) -> None:
        """Show ``config`` in the controls without triggering an update."""
        self._updating = True
        try:
            for name, control in self.controls.items():
                control.value = getattr(config, name)
        finally:
            self._updating = False
        self._update_ml_label()

    def config(self) -> Any:
        """The :class:`bratseg.postprocess.PostprocessConfig` the controls describe."""
        from bratseg.postprocess import PostprocessConfig

        session = self.state.session
        base = session.config if session is not None else PostprocessConfig()
        return dataclasses.replace(base, **control_values(self.controls))

    def _update_ml_label(self) -> None:
        session = self.state.session
        if session is None:
            self.ml_label.setText("")
            return
        sx, sy, sz = spacing_of(session)
        voxels = int(self.controls["et_min_volume"].value)
        self.ml_label.setText(
            f"ET volume rule: {voxels} voxels = {voxels * sx * sy * sz / 1000:.3f} mL"
        )

    # ------------------------------------------------------------------ updates
    def schedule_update(self, *_: Any) -> None:
        """Queue a (debounced) recomputation from the cached probabilities."""
        if not self._updating:
            self._update_ml_label()
            self._timer.start()

    def apply_now(self) -> float | None:
        """Recompute the labels now; returns the update time in ms (None without a session)."""
        self._timer.stop()
        session = self.state.session
        if session is None or session.approved:  # approved: read-only until reopened
            return None
        if session.region_probs is None:  # a review restored from its autosave
            self.timing_label.setText(
                "restored review: run segmentation again to tune settings "
                "(your hand edits are kept)"
            )
            return None
        try:
            config = self.config()
            elapsed = session.apply_config(config)
        except Exception as exc:
            show_input_error(exc)
            self.timing_label.setText(f"not applied: {getattr(exc, 'reason', exc)}")
            return None
        n_edit = int(session.overrides.sum())
        self.timing_label.setText(
            f"updated in {elapsed:.0f} ms from cached probabilities; "
            f"{n_edit} hand-edited voxels kept"
        )
        self.state.commit()
        self._show_et_evidence(session)
        return elapsed

    def restore_enhancing_tumour(self) -> None:
        """Put the model's ET back: the no-enhancement rule off for this case."""
        self._updating = True
        try:
            self.controls["et_enhancement_min"].value = 0.0
            self.controls["et_core_fraction_min"].value = 0.0
        finally:
            self._updating = False
        self.apply_now()

    def _show_et_evidence(self, session: ReviewSession | None) -> None:
        """What the no-enhancement rule decided, with its evidence ("ET removed: ...")."""
        evidence = session.et_evidence if session is not None else None
        if session is None or evidence is None:
            self.et_rule_label.setText("")
            self.restore_et.setEnabled(False)
            return
        sx, sy, sz = spacing_of(session)
        text = evidence.message(sx * sy * sz / 1000.0)
        style = "color: #d9822b; font-weight: bold" if evidence.removed else ""
        self.et_rule_label.setStyleSheet(style)
        self.et_rule_label.setText(text)
        self.restore_et.setEnabled(bool(evidence.removed) and not session.approved)
        if evidence.removed:  # a removed ET is never hidden in a collapsed section
            self.advanced.expand(animate=False)

    def reset_to_model_defaults(self) -> None:
        """Controls back to the defaults of the model that produced the session."""
        from bratseg.postprocess import PostprocessConfig

        session = self.state.session
        config = (session.initial_config or session.config) if session is not None else None
        config = config or PostprocessConfig()
        self.set_config(config)
        self.apply_now()

    def _on_session(self, session: ReviewSession | None) -> None:
        enabled = session is not None and not session.approved
        for section in self._sections:
            section.setEnabled(enabled)
        if session is None:
            self.timing_label.setText("Segment a case to enable the controls.")
        elif session.approval is not None:  # signed off: the settings are frozen until reopened
            self.set_config(session.config)
            self.timing_label.setText(
                f"{session.case.case_id} is {session.approval.line()}: read-only "
                "(reopen it in the Worklist to change settings)."
            )
        else:
            argmax_ok = session.class_probs is not None
            index = self.mode_combo.findText("argmax")
            if index >= 0:
                item = self.mode_combo.model().item(index)
                if item is not None:
                    item.setEnabled(argmax_ok)
            self.set_config(session.config)
            self.timing_label.setText("Move a control: labels update from cached probabilities.")
        self._show_et_evidence(session)
        self.refresh_volumes()

    def refresh_volumes(self) -> None:
        """Show the tumour volumes of the current working labels."""
        from bratseg.metrics import tumour_volumes_ml

        session = self.state.session
        volumes = (
            tumour_volumes_ml(session.labels, session.convention, spacing_of(session))
            if session is not None
            else {}
        )
        for row, key in enumerate(VOLUME_ROWS):
            text = fmt_ml(volumes[key]) if key in volumes else "–"
            self.volume_table.setItem(row, 0, QTableWidgetItem(text))
        self.volumes = volumes
