"""Report dock: the engine's clinical report of the case under review, CSV/JSON/PDF export.

The numbers are :func:`bratseg.report.build_report`'s (the ones ``napari-brats report`` prints):
for each tissue (NCR, ED, ET) and region (TC, WT) the AI proposal's volume, the corrected volume,
their difference (ΔmL), the Dice between the two, the number of lesions (26-connected
components) in the corrected mask and, when the case folder had a reference segmentation, the
Dice of the corrected mask against it. Below: the lesions (side, volume, RANO bidimensional
product of their enhancing part), the sum of products and the ET/TC ratio. The dock only shows
them and writes them out.
"""

from __future__ import annotations

import csv
import io
import json
import logging
from pathlib import Path
from typing import Any

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

from bratseg.atomic import atomic_write
from bratseg.io import MODALITIES
from bratseg.report import CaseReport, ReportInfo
from bratseg.report import build_report as build_case_report
from bratseg.report.table import lesion_table, summary_lines
from bratseg.review import ReviewSession
from bratseg.review.assessment import et_rule_note, report_notes
from bratseg.review.signoff import review_status

from .._state import viewer_state
from ._common import (
    VOLUME_ROWS,
    hide_row_numbers,
    set_column_tips,
    show_input_error,
    spacing_of,
)

logger = logging.getLogger(__name__)

COLUMNS = (
    "ai_ml",
    "corrected_ml",
    "delta_ml",
    "dice_ai_vs_corrected",
    "lesions",
    "dice_vs_reference",
)
HEADERS = ("AI mL", "Corr. mL", "Δ mL", "Dice", "Lesions", "vs ref.")
TOOLTIPS = (
    "volume of the AI proposal",
    "volume of the corrected mask",
    "corrected minus AI volume",
    "Dice between the AI proposal and the corrected mask",
    "26-connected components in the corrected mask",
    "Dice of the corrected mask against the case's reference seg (when present)",
)
#: Engine row keys behind the dock's columns.
_ENGINE_KEYS = {
    "ai_ml": "proposal_ml",
    "corrected_ml": "volume_ml",
    "delta_ml": "delta_ml",
    "dice_ai_vs_corrected": "dice_vs_proposal",
    "lesions": "lesions",
    "dice_vs_reference": "dice_vs_reference",
}


def session_info(session: ReviewSession) -> ReportInfo:
    """Case, model, reviewer and status of a review session."""
    last = session.signoffs[-1] if session.signoffs else None
    return ReportInfo(
        case_id=session.case.case_id,
        reviewer=last.reviewer if last is not None else None,
        status=review_status(session.signoffs, session.n_edited),
        model_names=list(session.model.names),
        model_sha256=list(session.model.sha256),
        notes=report_notes(session.assessment, et_rule_note(session)),
    )


def engine_report(session: ReviewSession) -> CaseReport:
    """:func:`bratseg.report.build_report` of a session: corrected labels against the proposal
    (and the case's reference seg when there is one)."""
    session.record_edits()
    case = session.case
    reference = getattr(case, "seg", None) if getattr(case, "seg_convention", None) else None
    return build_case_report(
        session.labels,
        session.convention,
        case.affine,
        spacing_of(session),
        images=case.image,
        proposal=session.proposal,
        reference=reference,
        reference_convention=case.seg_convention if reference is not None else None,
        info=session_info(session),
    )


def build_report(session: ReviewSession) -> dict[str, Any]:
    """Report of one session as a JSON-able dict.

    Returns:
        The engine report (:meth:`bratseg.report.CaseReport.to_dict`) plus ``"spacing_mm"``,
        ``"postprocess"``, ``"edited_voxels"`` and ``"rows": {tissue_or_region: {column: value}}``
        with the dock's columns (:data:`COLUMNS`).
    """
    report = engine_report(session).to_dict()
    rows = {}
    for key in VOLUME_ROWS:
        engine = report["regions"][key]
        rows[key] = {column: engine.get(_ENGINE_KEYS[column]) for column in COLUMNS}
    report.update(
        postprocess=session.config.to_dict(),
        edited_voxels=int(session.overrides.sum()),
        rows=rows,
    )
    return report


def write_report_json(report: dict[str, Any], path: str | Path) -> Path:
    """Write a report as JSON, atomically; returns the path."""
    path = Path(path)
    with atomic_write(path) as handle:
        handle.write((json.dumps(report, indent=2) + "\n").encode())
    return path


def write_report_csv(report: dict[str, Any], path: str | Path) -> Path:
    """Write a report's table as CSV (one row per tissue/region), atomically; returns the path."""
    text = io.StringIO()
    writer = csv.writer(text)
    writer.writerow(["case_id", "structure", *COLUMNS])
    for key, row in report["rows"].items():
        writer.writerow([report["case_id"], key.upper(), *(row[c] for c in COLUMNS)])
    path = Path(path)
    with atomic_write(path) as handle:
        handle.write(text.getvalue().encode())
    return path


def _cell(column: str, value: Any) -> str:
    if value is None:
        return "–"
    if column == "lesions":
        return str(value)
    if column.startswith("dice"):
        return f"{value:.3f}"
    return f"{value:+.2f}" if column == "delta_ml" else f"{value:.2f}"


class ReportWidget(QWidget):
    """Dock showing the report tables, refreshed after every change."""

    def __init__(self, napari_viewer: Any, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.viewer = napari_viewer
        self.state = viewer_state(napari_viewer)
        self.report: dict[str, Any] | None = None

        self.title = QLabel("No segmentation yet.")
        self.title.setWordWrap(True)
        self.table = QTableWidget(len(VOLUME_ROWS), len(COLUMNS))
        self.table.setHorizontalHeaderLabels(list(HEADERS))
        set_column_tips(self.table, TOOLTIPS)
        self.table.setMinimumHeight(190)
        self.table.setVerticalHeaderLabels([r.upper() for r in VOLUME_ROWS])
        self.table.resizeColumnsToContents()
        self.summary = QLabel("")
        self.summary.setWordWrap(True)
        header, _rows = lesion_table({"lesions": [], "enhancing_lesions": []})
        self.lesions = QTableWidget(0, len(header))
        self.lesions.setHorizontalHeaderLabels(header)
        hide_row_numbers(self.lesions)
        self.lesions.setToolTip(
            "26-connected tumour lesions, largest first: the patient's side of the "
            "brain's mid-sagittal plane, volume, and the RANO diameters of the "
            "largest measurable enhancing part (both >= 10 mm)"
        )
        self.lesions.setMinimumHeight(120)
        buttons = QHBoxLayout()
        for text, slot in (
            ("Refresh", self.refresh),
            ("Export CSV…", lambda: self._export_dialog("csv")),
            ("Export JSON…", lambda: self._export_dialog("json")),
            ("Save PDF…", lambda: self._export_dialog("pdf")),
        ):
            button = QPushButton(text)
            button.clicked.connect(slot)
            buttons.addWidget(button)

        layout = QVBoxLayout(self)
        for widget in (self.title, self.table, self.summary, self.lesions):
            layout.addWidget(widget)
        layout.addLayout(buttons)
        layout.addStretch()

        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(250)
        self._timer.timeout.connect(self.refresh)
        self.state.session_changed.connect(lambda _s: self.refresh())
        self.state.labels_changed.connect(self._timer.start)
        self.state.assessed.connect(lambda _a: self._timer.start())
        self.refresh()

    def refresh(self) -> dict[str, Any] | None:
        """Recompute and show the report; returns it (None without a session)."""
        self._timer.stop()
        session = self.state.session
        if session is None:
            self.report = None
            self.title.setText("No segmentation yet: run Segment first.")
            self.summary.setText("")
            self.lesions.setRowCount(0)
            return None
        report = build_report(session)
        self.report = report
        who = f"; reviewer {report['reviewer']}" if report.get("reviewer") else ""
        self.title.setText(
            f"<b>{report['case_id']}</b> — {', '.join(report['model']['names']) or 'model'}; "
            f"{report['edited_voxels']} voxels edited by hand; {report['status']}{who}"
        )
        for r, key in enumerate(VOLUME_ROWS):
            row = report["rows"][key]
            for c, column in enumerate(COLUMNS):
                self.table.setItem(r, c, QTableWidgetItem(_cell(column, row[column])))
        self.table.resizeColumnsToContents()
        self.summary.setText("<br>".join(summary_lines(report)))
        _header, rows = lesion_table(report)
        self.lesions.setRowCount(len(rows))
        for r, cells in enumerate(rows):
            for c, text in enumerate(cells):
                self.lesions.setItem(r, c, QTableWidgetItem(text))
        self.lesions.resizeColumnsToContents()
        return report

    def export(self, path: str | Path) -> Path:
        """Write the current report to ``path`` (``.csv``, ``.json`` or ``.pdf``), replacing it."""
        report = self.refresh()
        if report is None:
            raise RuntimeError("no report: segment a case first")
        path = Path(path)
        suffix = path.suffix.lower()
        if suffix == ".csv":
            return write_report_csv(report, path)
        if suffix == ".pdf":
            from bratseg.report.pdf import write_report_pdf

            session = self.state.session
            if session is None:
                raise RuntimeError("no report: segment a case first")
            case = session.case
            return write_report_pdf(
                report,
                path,
                session.labels,
                case.affine,
                spacing_of(session),
                case.image[MODALITIES.index("t1ce")],
                overwrite=True,
            )
        return write_report_json(report, path)

    def _export_dialog(self, kind: str) -> None:
        if self.state.session is None:
            return
        default = f"{self.state.session.case.case_id}_report.{kind}"
        path, _ = QFileDialog.getSaveFileName(
            self, "Save report" if kind == "pdf" else "Export report", default, f"*.{kind}"
        )
        if path:
            try:
                self.export(path)
            except Exception as exc:  # noqa: BLE001 - shown to the user, never a silent failure
                show_input_error(exc)
