"""The series picker: which series of a raw study is T1, T1Gd, T2 and FLAIR.

A table lists every candidate series (:func:`bratseg.prepare.list_series`: a NIfTI file or a DICOM
series folder) with a thumbnail of its middle slice, its description, image count, slice thickness
and acquisition time; one drop-down per channel holds the engine's pre-selection
(:func:`bratseg.prepare.guess_channels`). A channel that several series suggest, or none, starts
on "choose…" with a line in red naming the candidates: nothing is guessed silently, and *Prepare*
stays disabled until the four channels are four different series and an output folder is named.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from qtpy.QtCore import Qt
from qtpy.QtGui import QImage, QPixmap
from qtpy.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from bratseg.io import MODALITIES, MODALITY_NAMES

from ._common import hide_row_numbers

#: Thumbnail side in pixels.
THUMB_PX = 72
#: Table columns after the thumbnail.
COLUMNS = ("", "Series", "Description", "Images", "Slice (mm)", "Time", "Suggests")
#: The drop-down entry of a channel not chosen yet.
CHOOSE = "choose…"


def thumbnail_pixmap(plane: Any) -> QPixmap:
    """A QPixmap of a uint8 (rows, cols) array."""
    import numpy as np

    data = np.ascontiguousarray(plane, dtype=np.uint8)
    rows, cols = data.shape
    image = QImage(data.tobytes(), cols, rows, cols, QImage.Format.Format_Grayscale8).copy()
    return QPixmap.fromImage(image)


class SeriesPickerDialog(QDialog):
    """Choose the four series of a raw study and the output folder.

    Args:
        candidates: :class:`bratseg.prepare.SeriesCandidate` of the study.
        guess: :class:`bratseg.prepare.ChannelGuess` (the pre-selection).
        output: Proposed output folder (a new folder beside the study).
    """

    def __init__(
        self, candidates: list, guess: Any, output: Path, parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle("Prepare raw scans: choose the four series")
        self.candidates = candidates
        self.guess = guess
        self.table = self._build_table(candidates)
        self.combos: dict[str, QComboBox] = {}
        self.notes: dict[str, QLabel] = {}
        form = QFormLayout()
        for key in MODALITIES:
            combo = QComboBox()
            combo.addItem(CHOOSE, None)
            for cand in candidates:
                combo.addItem(f"{cand.name} — {cand.description}", str(cand.path))
            chosen = guess.chosen.get(key)
            if chosen is not None:
                combo.setCurrentIndex(combo.findData(str(chosen)))
            combo.currentIndexChanged.connect(self._validate)
            note = QLabel(self._note(key))
            note.setStyleSheet("color: #e05050")
            note.setWordWrap(True)
            row = QVBoxLayout()
            row.addWidget(combo)
            row.addWidget(note)
            note.setVisible(bool(note.text()))
            form.addRow(MODALITY_NAMES[key], row)
            self.combos[key] = combo
            self.notes[key] = note
        self.output_edit = QLineEdit(str(output))
        self.output_edit.textChanged.connect(self._validate)
        change = QPushButton("Change…")
        change.clicked.connect(self._choose_output)
        out_row = QHBoxLayout()
        out_row.addWidget(self.output_edit)
        out_row.addWidget(change)
        form.addRow("Output folder", out_row)
        self.n4_check = QCheckBox("Bias-field correction (N4, a few seconds a series)")
        self.n4_check.setChecked(True)
        form.addRow("", self.n4_check)
        self.problem = QLabel("")
        self.problem.setWordWrap(True)
        self.buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel
        )
        prepare_button = self.buttons.button(QDialogButtonBox.StandardButton.Ok)
        assert prepare_button is not None  # the box was made with an Ok button
        self.prepare_button = prepare_button
        self.prepare_button.setText("Prepare")
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(QLabel(f"Series found in <b>{self._folder_name()}</b>:"))
        layout.addWidget(self.table)
        layout.addLayout(form)
        layout.addWidget(self.problem)
        layout.addWidget(self.buttons)
        self.resize(900, 640)
        self._validate()

    # ------------------------------------------------------------------ result
    def mapping(self) -> dict[str, Path]:
        """Channel -> chosen series path (only the channels chosen so far)."""
        out = {}
        for key, combo in self.combos.items():
            data = combo.currentData()
            if data:
                out[key] = Path(data)
        return out

    def output_folder(self) -> Path:
        """The output folder typed or chosen."""
        return Path(self.output_edit.text().strip())

    def choose(self, key: str, path: str | Path) -> None:
        """Select ``path`` for channel ``key`` (as a click in its drop-down would)."""
        combo = self.combos[key]
        combo.setCurrentIndex(combo.findData(str(path)))

    # ------------------------------------------------------------------ internals
    def _folder_name(self) -> str:
        return self.candidates[0].path.parent.name if self.candidates else ""

    def _note(self, key: str) -> str:
        name = MODALITY_NAMES[key]
        if key in self.guess.ambiguous:
            names = ", ".join(Path(p).name for p in self.guess.ambiguous[key])
            return f"several series look like {name} ({names}): choose one"
        if key in self.guess.missing:
            return f"no series looks like {name}: choose one"
        return ""

    def _problem(self) -> str:
        mapping = self.mapping()
        missing = [MODALITY_NAMES[k] for k in MODALITIES if k not in mapping]
        if missing:
            return f"choose a series for {', '.join(missing)}"
        if len({str(p) for p in mapping.values()}) < len(mapping):
            return "one series is chosen for two channels: choose four different series"
        if not self.output_edit.text().strip():
            return "name an output folder"
        out = self.output_folder()
        if out.exists() and (not out.is_dir() or any(out.iterdir())):
            return f"{out} exists and is not empty: choose a new folder"
        return ""

    def _validate(self, *_: Any) -> None:
        problem = self._problem()
        self.problem.setText(problem)
        self.prepare_button.setEnabled(not problem)

    def _choose_output(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Parent folder of the prepared case")
        if folder:
            self.output_edit.setText(str(Path(folder) / self.output_folder().name))

    def _build_table(self, candidates: list) -> QTableWidget:
        from bratseg.prepare import middle_slice

        table = QTableWidget(len(candidates), len(COLUMNS))
        table.setHorizontalHeaderLabels(list(COLUMNS))
        table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        hide_row_numbers(table)
        for row, cand in enumerate(candidates):
            thumb = QLabel()
            try:
                thumb.setPixmap(thumbnail_pixmap(middle_slice(cand, THUMB_PX)))
            except Exception:  # an unreadable image: the row still lists the series
                thumb.setText("?")
            thumb.setAlignment(Qt.AlignmentFlag.AlignCenter)
            table.setCellWidget(row, 0, thumb)
            suggests = MODALITY_NAMES.get(cand.channel, "—") if cand.channel else "—"
            cells = (
                cand.name,
                cand.description,
                str(cand.images),
                f"{cand.slice_mm:.1f}" if cand.slice_mm else "?",
                cand.acquired or "—",
                suggests,
            )
            for col, text in enumerate(cells, start=1):
                item = QTableWidgetItem(text)
                item.setToolTip(str(cand.path) if col == 1 else text)
                table.setItem(row, col, item)
            table.setRowHeight(row, THUMB_PX + 6)
        table.setColumnWidth(0, THUMB_PX + 6)
        table.setColumnWidth(1, 150)
        table.setColumnWidth(2, 300)
        return table
