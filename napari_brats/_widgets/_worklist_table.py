"""The Worklist dock's table: one row per case of a :class:`~bratseg.review.worklist.Worklist`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from qtpy.QtWidgets import QAbstractItemView, QTableWidget, QTableWidgetItem, QWidget

from bratseg.text import one_line

from ._common import fmt_ml, hide_row_numbers, set_column_tips

if TYPE_CHECKING:
    from bratseg.review.worklist import WorklistRow

#: Table columns (header, tooltip).
COLUMNS = (
    ("Case", "case id (folder name)"),
    ("Status", "new, segmented, edited, approved (or error)"),
    ("Model", "model(s) behind the AI proposal"),
    ("Edited", "hand-edited voxels"),
    ("WT mL", "whole tumour volume"),
    ("TC mL", "tumour core volume"),
    ("ET mL", "enhancing tumour volume"),
    ("Review", "flagged for review by the uncertainty assessment"),
    ("Note", "sign-off, why it is flagged, or why the case cannot be used"),
)
#: Column of the note (the error's tooltip).
NOTE_COLUMN = len(COLUMNS) - 1


def row_cells(row: WorklistRow) -> list[str]:
    """The table texts of one :class:`~bratseg.review.worklist.WorklistRow`."""
    volumes = row.volumes_ml or {}
    flag = "" if row.needs_review is None else ("⚑ yes" if row.needs_review else "no")
    note = row.error or "; ".join(row.reasons)
    if row.approval is not None:
        note = f"{row.approval.line()}" + (f"; {note}" if note else "")
    return [
        row.case_id,
        row.status,
        " + ".join(row.models),
        str(row.n_edited) if row.status != "new" else "",
        *(fmt_ml(volumes[k]) if k in volumes else "" for k in ("wt", "tc", "et")),
        flag,
        note,
    ]


class WorklistTable(QTableWidget):
    """Read-only, single-row-selection table of worklist rows (columns: :data:`COLUMNS`)."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(0, len(COLUMNS), parent)
        self.setHorizontalHeaderLabels([c[0] for c in COLUMNS])
        set_column_tips(self, [tip for _, tip in COLUMNS])
        self.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        hide_row_numbers(self)

    def show_rows(self, rows: Sequence[WorklistRow]) -> None:
        """Show every row (replacing what was shown)."""
        self.setRowCount(len(rows))
        for index, row in enumerate(rows):
            self.show_row(index, row)
        self.resizeColumnsToContents()

    def show_row(self, index: int, row: WorklistRow) -> None:
        """Show ``row`` (a worklist row) at ``index``; an error's full text is the note's tooltip."""
        for column, text in enumerate(row_cells(row)):
            item = QTableWidgetItem(one_line(text))  # a case or reviewer name never splits a row
            if row.error and column == NOTE_COLUMN:
                item.setToolTip(row.error)
            self.setItem(index, column, item)

    def selected_index(self) -> int | None:
        """Index of the selected row, None when nothing is selected."""
        model = self.selectionModel()
        rows = model.selectedRows() if model is not None else []
        return rows[0].row() if rows else None
