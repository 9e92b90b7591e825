"""Review hotspots dock: the needs-review flag, an uncertainty layer, and places to look at.

Thin over :func:`bratseg.review.assessment.assess_session` (the one needs-review assessment, which
it records on the session, so the autosave, the Worklist row and the report say the same): for the
viewer's current review session (:func:`napari_brats._state.viewer_state`) it shows the case-level
flag with its reasons, lists
the hotspots largest first (kind, region, mL) with a *Go to* button (or a double-click) that puts
the slice and the camera on the hotspot, and on request adds the per-voxel uncertainty as an image
layer named after its measure (e.g. ``uncertainty (entropy)``).

Engine voxels (X, Y, Z) become layer coordinates through :mod:`napari_brats._layers` (the view is
radiological, so axes are permuted and flipped), then world coordinates through the layer's
scale and translate.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import numpy as np
from qtpy.QtCore import QTimer
from qtpy.QtWidgets import (
    QCheckBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from bratseg.review.assessment import assess_session
from bratseg.review.uncertainty import Hotspot, ReviewAssessment

from .._layers import (
    AXIS_LABELS,
    META_KEY,
    UNITS,
    display_scale,
    geometry_meta,
    storage_index_to_display,
    to_display,
)
from .._state import viewer_state
from ._common import show_input_error

if TYPE_CHECKING:
    from bratseg.io import Case

logger = logging.getLogger(__name__)

HEADERS = ("Kind", "Region", "mL", "")
#: Quiet time after the last label change before the assessment is redone.
REFRESH_DELAY_MS = 600


def uncertainty_layer_name(measure: str) -> str:
    """Name of the uncertainty layer, saying its measure: ``"uncertainty (entropy)"``."""
    return f"uncertainty ({measure})"


def uncertainty_layer_data(
    values: np.ndarray, case: Case, measure: str
) -> tuple[np.ndarray, dict[str, Any], str]:
    """Image layer-data tuple of a (X, Y, Z) uncertainty map in [0, 1] of ``case``."""
    kwargs = {
        "name": uncertainty_layer_name(measure),
        "scale": display_scale(case.spacing, case.affine),
        "contrast_limits": (
            0.2,
            1.0,
        ),  # near-certain voxels black: additive blending leaves them as they are
        "colormap": "magma",
        "blending": "additive",
        "opacity": 0.4,
        "metadata": {META_KEY: {**geometry_meta(case), "role": "uncertainty", "measure": measure}},
        "axis_labels": AXIS_LABELS,
        "units": UNITS,
    }
    return to_display(values, case.affine), kwargs, "image"


def hotspot_world_point(
    hotspot: Hotspot, case: Case, layer: Any = None
) -> tuple[float, float, float]:
    """World coordinates (layer order) of a hotspot's centroid voxel.

    Args:
        hotspot: From the assessment (engine order X, Y, Z).
        case: Its :class:`bratseg.io.Case` (shape and affine of the storage).
        layer: The layer whose scale and translate place the voxel (None: the case's display
            scale, no translate).
    """
    index = storage_index_to_display(hotspot.centroid, case.shape, case.affine)
    if layer is not None:
        scale, translate = np.asarray(layer.scale, float), np.asarray(layer.translate, float)
    else:
        scale, translate = np.asarray(display_scale(case.spacing, case.affine)), np.zeros(3)
    return tuple(float(v) for v in np.asarray(index, float) * scale + translate)  # type: ignore[return-value]


class HotspotsWidget(QWidget):
    """Dock: needs-review flag and reasons, the hotspot list with *Go to*, the uncertainty layer."""

    def __init__(self, napari_viewer: Any, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.viewer = napari_viewer
        self.state = viewer_state(napari_viewer)
        self.assessment: ReviewAssessment | None = None

        self.flag = QLabel("No segmentation yet: run Segment first.")
        self.flag.setWordWrap(True)
        self.measure = QLabel("")
        self.layer_check = QCheckBox("Show uncertainty layer")
        self.layer_check.setToolTip(
            "add the per-voxel uncertainty as an image layer (magma, additive)"
        )
        self.layer_check.toggled.connect(self._layer_toggled)
        self.table = QTableWidget(0, len(HEADERS))
        self.table.setHorizontalHeaderLabels(list(HEADERS))
        self.table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.table.setSelectionBehavior(QTableWidget.SelectionBehavior.SelectRows)
        self.table.cellDoubleClicked.connect(lambda row, _col: self.go_to(row))
        self.table.setMinimumHeight(160)
        refresh = QPushButton("Refresh")
        refresh.setToolTip("assess the current labels again")
        refresh.clicked.connect(self.refresh)
        row = QHBoxLayout()
        row.addWidget(self.layer_check)
        row.addStretch()
        row.addWidget(refresh)

        layout = QVBoxLayout(self)
        layout.addWidget(self.flag)
        layout.addWidget(self.measure)
        layout.addLayout(row)
        layout.addWidget(self.table)

        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(REFRESH_DELAY_MS)
        self._timer.timeout.connect(self.refresh)
        self.state.session_changed.connect(lambda _s: self.refresh())
        self.state.labels_changed.connect(lambda: self._timer.start())
        self.refresh()

    # ------------------------------------------------------------------ assessment
    def refresh(self) -> ReviewAssessment | None:
        """Assess the current session and show the result; returns it (None without one)."""
        self._timer.stop()
        session = self.state.session
        self.assessment = None
        self.table.setRowCount(0)
        if session is None or session.region_probs is None:
            self.flag.setText(
                "No segmentation yet: run Segment first."
                if session is None
                else "This review has no probabilities (restored from disk): segment the case again."
            )
            self.measure.setText("")
            return None
        try:
            assessment = assess_session(session)
        except (ValueError, MemoryError) as exc:
            show_input_error(exc)
            return None
        if assessment is None:
            return None
        self.assessment = assessment
        self.state.assessed.emit(session)  # the Report dock shows the recorded reasons
        self.state.schedule_save()  # ... and the Worklist row, once saved
        if assessment.needs_review:
            items = "".join(f"<li>{reason}</li>" for reason in assessment.reasons)
            self.flag.setText(
                f"<b style='color:#e05050'>Needs review</b><ul style='margin:0'>{items}</ul>"
            )
        else:
            self.flag.setText("<b>No review flag</b>: none of the review rules fired.")
        self.measure.setText(
            f"Uncertainty: {assessment.measure}, {assessment.uncertain_ml:.1f} mL uncertain; "
            f"{len(assessment.hotspots)} hotspots"
        )
        self._fill(assessment.hotspots)
        if self.layer_check.isChecked():
            self.show_uncertainty_layer()
        return assessment

    def _fill(self, hotspots: list[Hotspot]) -> None:
        from bratseg.labels import REGION_NAMES

        self.table.setRowCount(len(hotspots))
        for r, spot in enumerate(hotspots):
            cells = (spot.kind, REGION_NAMES.get(spot.region, spot.region), f"{spot.volume_ml:.1f}")
            for c, text in enumerate(cells):
                item = QTableWidgetItem(text)
                item.setToolTip(
                    f"mean probability {spot.mean_probability:.2f}, mean uncertainty "
                    f"{spot.mean_uncertainty:.2f}, centre voxel {spot.centroid}"
                )
                self.table.setItem(r, c, item)
            button = QPushButton("Go to")
            button.clicked.connect(lambda _checked=False, row=r: self.go_to(row))
            self.table.setCellWidget(r, len(HEADERS) - 1, button)
        self.table.resizeColumnsToContents()

    # ------------------------------------------------------------------ navigation
    def go_to(self, row: int) -> tuple[float, float, float] | None:
        """Centre the camera on hotspot ``row`` and move the sliders to its slice.

        Returns:
            The world point (layer order) gone to, or None without such a hotspot.
        """
        session = self.state.session
        if session is None or self.assessment is None:
            return None
        if not 0 <= row < len(self.assessment.hotspots):
            return None
        point = hotspot_world_point(self.assessment.hotspots[row], session.case, self.state.layer)
        dims = self.viewer.dims
        dims.point = tuple(point[a] if a < len(point) else p for a, p in enumerate(dims.point))
        camera = getattr(getattr(self.viewer, "scene", None), "camera", None) or self.viewer.camera
        camera.center = tuple(point[a] for a in dims.displayed)
        self.table.selectRow(row)
        return point

    # ------------------------------------------------------------------ layer
    def _layer_toggled(self, checked: bool) -> None:
        if checked:
            if self.assessment is None:
                self.refresh()
            self.show_uncertainty_layer()
        elif self.assessment is not None:
            name = uncertainty_layer_name(self.assessment.measure)
            if name in self.viewer.layers:
                self.viewer.layers[name].visible = False

    def show_uncertainty_layer(self) -> Any:
        """Add (or update) the uncertainty image layer of the current assessment; returns it."""
        session = self.state.session
        if session is None or self.assessment is None or self.assessment.uncertainty is None:
            return None
        data, kwargs, _ = uncertainty_layer_data(
            self.assessment.uncertainty, session.case, self.assessment.measure
        )
        if kwargs["name"] in self.viewer.layers:
            layer = self.viewer.layers[kwargs["name"]]
            layer.data = data
            layer.visible = True
        else:
            layer = self.viewer.add_image(data, **kwargs)
        if self.state.layer is not None and self.state.layer in self.viewer.layers:
            self.viewer.layers.selection.active = self.state.layer  # keep painting on the labels
        return layer
