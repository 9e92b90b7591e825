"""Report dock: volumes and lesion counts, AI proposal versus corrected mask, CSV/JSON export.

For each tissue (NCR, ED, ET) and region (TC, WT) the table shows the AI proposal's volume, the
corrected volume, their difference (ΔmL), the Dice between the two, and the number of lesions
(26-connected components) in the corrected mask. When the case folder had a reference
segmentation, the Dice of the corrected mask against it is reported too.
"""

from __future__ import annotations

import csv
import json
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
from qtpy.QtCore import QTimer
from qtpy.QtWidgets import (
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from bratseg.labels import LABEL_VALUES, convert_labels, region_masks

from .._state import CaseSession, viewer_state
from ._common import VOLUME_ROWS, spacing_of

logger = logging.getLogger(__name__)

COLUMNS = ("ai_ml", "corrected_ml", "delta_ml", "dice_ai_vs_corrected", "lesions", "dice_vs_reference")
HEADERS = ("AI mL", "Corr. mL", "Δ mL", "Dice", "Lesions", "vs ref.")
TOOLTIPS = (
    "volume of the AI proposal",
    "volume of the corrected mask",
    "corrected minus AI volume",
    "Dice between the AI proposal and the corrected mask",
    "26-connected components in the corrected mask",
    "Dice of the corrected mask against the case's reference seg (when present)",
)


def _masks(labels: np.ndarray, convention: str) -> dict[str, np.ndarray]:
    values = LABEL_VALUES[convention]
    masks = {tissue: labels == values[tissue] for tissue in ("ncr", "ed", "et")}
    regions = region_masks(labels, convention)
    masks["tc"], masks["wt"] = regions["tc"], regions["wt"]
    return masks


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    total = int(a.sum()) + int(b.sum())
    return 1.0 if total == 0 else 2.0 * int(np.logical_and(a, b).sum()) / total


def count_lesions(mask: np.ndarray) -> int:
    """Number of 26-connected components of a boolean (X, Y, Z) mask."""
    from scipy import ndimage

    if not mask.any():
        return 0
    coords = np.nonzero(mask)
    box = tuple(slice(int(c.min()), int(c.max()) + 1) for c in coords)
    _, count = ndimage.label(mask[box], structure=np.ones((3, 3, 3), dtype=bool))
    return int(count)


def build_report(session: CaseSession) -> dict[str, Any]:
    """Report of one session as a JSON-able dict.

    Returns:
        ``{"case_id", "convention", "spacing_mm", "model", "postprocess", "generated",
        "rows": {tissue_or_region: {column: value}}}`` with the columns of :data:`COLUMNS`.
    """
    spacing = spacing_of(session)
    voxel_ml = float(np.prod(spacing)) / 1000.0
    session.record_edits()
    ai = _masks(session.proposal, session.convention)
    corrected = _masks(session.labels, session.convention)
    reference = None
    case = session.case
    if getattr(case, "seg", None) is not None and case.seg_convention:
        ref_labels = convert_labels(case.seg, case.seg_convention, session.convention)
        reference = _masks(ref_labels, session.convention)
    rows: dict[str, dict[str, Any]] = {}
    for key in VOLUME_ROWS:
        ai_ml = float(ai[key].sum()) * voxel_ml
        corr_ml = float(corrected[key].sum()) * voxel_ml
        rows[key] = {
            "ai_ml": round(ai_ml, 4),
            "corrected_ml": round(corr_ml, 4),
            "delta_ml": round(corr_ml - ai_ml, 4),
            "dice_ai_vs_corrected": round(_dice(ai[key], corrected[key]), 6),
            "lesions": count_lesions(corrected[key]),
            "dice_vs_reference": (
                round(_dice(corrected[key], reference[key]), 6) if reference is not None else None
            ),
        }
    config = session.config
    return {
        "case_id": case.case_id,
        "convention": session.convention,
        "spacing_mm": list(spacing),
        "model": {"names": session.model.names, "sha256": session.model.sha256},
        "postprocess": config.to_dict() if hasattr(config, "to_dict") else dict(config or {}),
        "edited_voxels": int(session.overrides.sum()),
        "generated": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "rows": rows,
    }


def write_report_json(report: dict[str, Any], path: str | Path) -> Path:
    """Write a report as JSON; returns the path."""
    path = Path(path)
    path.write_text(json.dumps(report, indent=2) + "\n")
    return path


def write_report_csv(report: dict[str, Any], path: str | Path) -> Path:
    """Write a report's table as CSV (one row per tissue/region); returns the path."""
    path = Path(path)
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["case_id", "structure", *COLUMNS])
        for key, row in report["rows"].items():
            writer.writerow([report["case_id"], key.upper(), *(row[c] for c in COLUMNS)])
    return path


class ReportWidget(QWidget):
    """Dock showing the report table, refreshed after every change."""

    def __init__(self, napari_viewer: Any, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.viewer = napari_viewer
        self.state = viewer_state(napari_viewer)
        self.report: dict[str, Any] | None = None

        self.title = QLabel("No segmentation yet.")
        self.title.setWordWrap(True)
        self.table = QTableWidget(len(VOLUME_ROWS), len(COLUMNS))
        self.table.setHorizontalHeaderLabels(list(HEADERS))
        for column, tip in enumerate(TOOLTIPS):
            self.table.horizontalHeaderItem(column).setToolTip(tip)
        self.table.setMinimumHeight(190)
        self.table.setVerticalHeaderLabels([r.upper() for r in VOLUME_ROWS])
        self.table.resizeColumnsToContents()
        refresh = QPushButton("Refresh")
        refresh.clicked.connect(self.refresh)
        to_csv = QPushButton("Export CSV…")
        to_csv.clicked.connect(lambda: self._export_dialog("csv"))
        to_json = QPushButton("Export JSON…")
        to_json.clicked.connect(lambda: self._export_dialog("json"))
        buttons = QHBoxLayout()
        for button in (refresh, to_csv, to_json):
            buttons.addWidget(button)

        layout = QVBoxLayout(self)
        layout.addWidget(self.title)
        layout.addWidget(self.table)
        layout.addLayout(buttons)
        layout.addStretch()

        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(250)
        self._timer.timeout.connect(self.refresh)
        self.state.session_changed.connect(lambda _s: self.refresh())
        self.state.labels_changed.connect(self._timer.start)
        self.refresh()

    def refresh(self) -> dict[str, Any] | None:
        """Recompute and show the report; returns it (None without a session)."""
        self._timer.stop()
        session = self.state.session
        if session is None:
            self.report = None
            self.title.setText("No segmentation yet: run Segment first.")
            return None
        report = build_report(session)
        self.report = report
        self.title.setText(
            f"<b>{report['case_id']}</b> — {', '.join(report['model']['names']) or 'model'}; "
            f"{report['edited_voxels']} voxels edited by hand"
        )
        for r, key in enumerate(VOLUME_ROWS):
            row = report["rows"][key]
            for c, column in enumerate(COLUMNS):
                value = row[column]
                if value is None:
                    text = "–"
                elif column == "lesions":
                    text = str(value)
                elif column.startswith("dice"):
                    text = f"{value:.3f}"
                else:
                    text = f"{value:+.2f}" if column == "delta_ml" else f"{value:.2f}"
                self.table.setItem(r, c, QTableWidgetItem(text))
        self.table.resizeColumnsToContents()
        return report

    def export(self, path: str | Path) -> Path:
        """Write the current report to ``path`` (``.csv`` or ``.json``)."""
        report = self.refresh()
        if report is None:
            raise RuntimeError("no report: segment a case first")
        path = Path(path)
        if path.suffix.lower() == ".csv":
            return write_report_csv(report, path)
        return write_report_json(report, path)

    def _export_dialog(self, kind: str) -> None:
        if self.state.session is None:
            return
        default = f"{self.state.session.case.case_id}_report.{kind}"
        path, _ = QFileDialog.getSaveFileName(self, "Export report", default, f"*.{kind}")
        if path:
            self.export(path)
