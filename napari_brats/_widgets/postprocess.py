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
from typing import Any

from qtpy.QtCore import QTimer
from qtpy.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFormLayout,
    QGroupBox,
    QLabel,
    QPushButton,
    QSpinBox,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)
from superqt import QLabeledDoubleSlider

from .._state import viewer_state
from ._common import VOLUME_ROWS, fmt_ml, show_input_error, spacing_of

logger = logging.getLogger(__name__)

THRESHOLDS = ("wt_threshold", "tc_threshold", "et_threshold")
#: Delay (ms) coalescing slider drags into one update.
DEBOUNCE_MS = 30


def _slider(value: float, maximum: float = 1.0) -> QLabeledDoubleSlider:
    from qtpy.QtCore import Qt

    slider = QLabeledDoubleSlider(Qt.Orientation.Horizontal)
    slider.setRange(0.0, maximum)
    slider.setSingleStep(0.01)
    slider.setDecimals(2)
    slider.setValue(value)
    return slider


class PostprocessWidget(QWidget):
    """Dock with the postprocessing parameters and live volumes."""

    def __init__(self, napari_viewer: Any, parent: QWidget | None = None) -> None:
        from bratseg.postprocess import MODES, PostprocessConfig
        from bratseg.postprocess.pipeline import MAX_ENHANCEMENT_MIN

        super().__init__(parent)
        self.viewer = napari_viewer
        self.state = viewer_state(napari_viewer)
        defaults = PostprocessConfig()
        self._updating = False

        self.mode_combo = QComboBox()
        self.mode_combo.addItems(list(MODES))
        self.sliders = {name: _slider(getattr(defaults, name)) for name in THRESHOLDS}
        self.et_min_volume = QSpinBox()
        self.et_min_volume.setRange(0, 100000)
        self.et_min_volume.setSuffix(" vox")
        self.et_min_volume.setToolTip(
            "All ET → NCR when total ET is smaller (Jiang et al. 2020); 0 = off"
        )
        self.ml_label = QLabel("")
        self.component_rule = QCheckBox("ET component rule (Futrega et al. 2021)")
        self.component_min = QSpinBox()
        self.component_min.setRange(0, 100000)
        self.component_min.setSuffix(" vox")
        self.component_prob = _slider(defaults.et_component_prob)
        self.total_min = QSpinBox()
        self.total_min.setRange(0, 1000000)
        self.total_min.setSuffix(" vox")
        self.total_prob = _slider(defaults.et_total_prob)
        self.case_prob = _slider(defaults.et_case_min_prob)
        self.case_prob.setToolTip(
            "No-enhancement decision: all ET → NCR when the mean ET probability over the ET "
            "voxels is below this (0 = off)"
        )
        self.sparse_fraction = _slider(defaults.et_sparse_fraction)
        self.sparse_fraction.setToolTip(
            "Mostly non-enhancing core: when ET is smaller than this fraction of the tumour "
            "core, only confident ET stays (0 = off)"
        )
        self.sparse_threshold = _slider(defaults.et_sparse_threshold)
        self.sparse_threshold.setToolTip("The ET threshold of such a core")
        self.island_fraction = _slider(defaults.min_island_fraction)
        self.island_fraction.setToolTip(
            "Remove tumour components smaller than this fraction of the largest one, with all "
            "their labels (0 = keep all, 1 = largest only)"
        )
        self.enhancement_min = _slider(defaults.et_enhancement_min, MAX_ENHANCEMENT_MIN)
        self.enhancement_min.setToolTip(
            "ET needs contrast uptake: all ET → NCR when T1Gd inside the predicted ET is less "
            "than this × what T1 predicts for it (1 = no uptake; 0 = off)"
        )
        self.et_rule_label = QLabel("")
        self.et_rule_label.setWordWrap(True)
        self.restore_et = QPushButton("Restore ET (rule off for this case)")
        self.restore_et.setToolTip("Turn the no-enhancement rule off and show the model's ET")
        self.restore_et.clicked.connect(self.restore_enhancing_tumour)
        self.restore_et.setEnabled(False)
        self.needs_core = QCheckBox("Drop tumour parts without a core")
        self.needs_core.setToolTip(
            "Remove tumour components that hold no necrosis or enhancing tumour (edema with no "
            "core: mostly FLAIR hyperintensities away from the tumour)"
        )
        reset = QPushButton("Reset to model defaults")
        reset.clicked.connect(self.reset_to_model_defaults)

        thresholds = QGroupBox("Hierarchical thresholds (WT → TC ⊂ WT → ET ⊂ TC)")
        tform = QFormLayout(thresholds)
        tform.addRow("Mode", self.mode_combo)
        for name, label in zip(THRESHOLDS, ("WT ≥", "TC ≥", "ET ≥"), strict=True):
            tform.addRow(label, self.sliders[name])
        tform.addRow("Drop islands < × largest", self.island_fraction)
        tform.addRow(self.needs_core)
        rules = QGroupBox("Enhancing-tumour rules")
        rform = QFormLayout(rules)
        rform.addRow("ET needs T1Gd/T1 ≥", self.enhancement_min)
        rform.addRow(self.et_rule_label)
        rform.addRow(self.restore_et)
        rform.addRow("ET → NCR below", self.et_min_volume)
        rform.addRow("", self.ml_label)
        rform.addRow(self.component_rule)
        rform.addRow("component <", self.component_min)
        rform.addRow("and mean p <", self.component_prob)
        rform.addRow("all ET if total <", self.total_min)
        rform.addRow("and mean p <", self.total_prob)
        rform.addRow("all ET if mean p <", self.case_prob)
        rform.addRow("if ET < × core", self.sparse_fraction)
        rform.addRow("keep ET with p ≥", self.sparse_threshold)

        self.volume_table = QTableWidget(len(VOLUME_ROWS), 1)
        self.volume_table.setHorizontalHeaderLabels(["Volume (mL)"])
        self.volume_table.setVerticalHeaderLabels([r.upper() for r in VOLUME_ROWS])
        self.volume_table.setMaximumHeight(175)
        self.volume_table.horizontalHeader().setStretchLastSection(True)
        self.timing_label = QLabel("Segment a case to enable the controls.")
        self.timing_label.setWordWrap(True)

        layout = QVBoxLayout(self)
        layout.addWidget(thresholds)
        layout.addWidget(rules)
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
        self._connect_controls()
        self.state.session_changed.connect(self._on_session)
        self.state.signoff_changed.connect(self._on_session)
        self.state.labels_changed.connect(self.refresh_volumes)
        self._on_session(self.state.session)

    # ------------------------------------------------------------------ config <-> controls
    def _connect_controls(self) -> None:
        self.mode_combo.currentTextChanged.connect(self.schedule_update)
        for slider in (
            *self.sliders.values(),
            self.component_prob,
            self.total_prob,
            self.case_prob,
            self.sparse_fraction,
            self.sparse_threshold,
            self.island_fraction,
            self.enhancement_min,
        ):
            slider.valueChanged.connect(self.schedule_update)
        for spin in (self.et_min_volume, self.component_min, self.total_min):
            spin.valueChanged.connect(self.schedule_update)
        self.component_rule.toggled.connect(self.schedule_update)
        self.needs_core.toggled.connect(self.schedule_update)

    def set_config(self, config: Any) -> None:
        """Show ``config`` in the controls without triggering an update."""
        self._updating = True
        try:
            self.mode_combo.setCurrentText(config.mode)
            for name, slider in self.sliders.items():
                slider.setValue(float(getattr(config, name)))
            self.et_min_volume.setValue(int(config.et_min_volume))
            self.component_rule.setChecked(bool(config.et_component_rule))
            self.component_min.setValue(int(config.et_component_min_voxels))
            self.component_prob.setValue(float(config.et_component_prob))
            self.total_min.setValue(int(config.et_total_min_voxels))
            self.total_prob.setValue(float(config.et_total_prob))
            self.case_prob.setValue(float(config.et_case_min_prob))
            self.sparse_fraction.setValue(float(config.et_sparse_fraction))
            self.sparse_threshold.setValue(float(config.et_sparse_threshold))
            self.island_fraction.setValue(float(config.min_island_fraction))
            self.needs_core.setChecked(bool(config.wt_needs_core))
            self.enhancement_min.setValue(float(config.et_enhancement_min))
        finally:
            self._updating = False
        self._update_ml_label()

    def config(self) -> Any:
        """The :class:`bratseg.postprocess.PostprocessConfig` the controls describe."""
        from bratseg.postprocess import PostprocessConfig

        session = self.state.session
        base = session.config if session is not None else PostprocessConfig()
        values = {name: round(float(s.value()), 4) for name, s in self.sliders.items()}
        values.update(
            mode=self.mode_combo.currentText(),
            et_min_volume=self.et_min_volume.value(),
            et_component_rule=self.component_rule.isChecked(),
            et_component_min_voxels=self.component_min.value(),
            et_component_prob=round(float(self.component_prob.value()), 4),
            et_total_min_voxels=self.total_min.value(),
            et_total_prob=round(float(self.total_prob.value()), 4),
            et_case_min_prob=round(float(self.case_prob.value()), 4),
            et_sparse_fraction=round(float(self.sparse_fraction.value()), 4),
            et_sparse_threshold=round(float(self.sparse_threshold.value()), 4),
            min_island_fraction=round(float(self.island_fraction.value()), 4),
            wt_needs_core=self.needs_core.isChecked(),
            et_enhancement_min=round(float(self.enhancement_min.value()), 4),
        )
        known = {f.name for f in dataclasses.fields(base)}
        return dataclasses.replace(base, **{k: v for k, v in values.items() if k in known})

    def _update_ml_label(self) -> None:
        session = self.state.session
        if session is None:
            self.ml_label.setText("")
            return
        sx, sy, sz = spacing_of(session)
        self.ml_label.setText(f"= {self.et_min_volume.value() * sx * sy * sz / 1000.0:.3f} mL")

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
            self.enhancement_min.setValue(0.0)
        finally:
            self._updating = False
        self.apply_now()

    def _show_et_evidence(self, session: Any) -> None:
        """What the no-enhancement rule decided, with its evidence ("ET removed: ...")."""
        evidence = getattr(session, "et_evidence", None) if session is not None else None
        if evidence is None:
            self.et_rule_label.setText("")
            self.restore_et.setEnabled(False)
            return
        sx, sy, sz = spacing_of(session)
        text = evidence.message(sx * sy * sz / 1000.0)
        style = "color: #d9822b; font-weight: bold" if evidence.removed else ""
        self.et_rule_label.setStyleSheet(style)
        self.et_rule_label.setText(text)
        self.restore_et.setEnabled(bool(evidence.removed) and not session.approved)

    def reset_to_model_defaults(self) -> None:
        """Controls back to the defaults of the model that produced the session."""
        from bratseg.postprocess import PostprocessConfig

        session = self.state.session
        config = session.initial_config if session is not None else PostprocessConfig()
        self.set_config(config)
        self.apply_now()

    def _on_session(self, session: Any) -> None:
        enabled = session is not None and not session.approved
        for child in self.findChildren(QGroupBox):
            child.setEnabled(enabled)
        if session is None:
            self.timing_label.setText("Segment a case to enable the controls.")
        elif session.approved:  # signed off: the settings are frozen until reopened
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
