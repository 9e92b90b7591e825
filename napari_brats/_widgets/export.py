"""Export dock: one click writes the reviewed case into a training-dataset folder.

See :mod:`bratseg.io.dataset` for the layout. An existing export of the same case is never
replaced without asking (a Yes/No dialog; tests pass ``overwrite`` explicitly).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from qtpy.QtWidgets import (
    QComboBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QMessageBox,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from bratseg.io.dataset import LINK_MODES, ExportExistsError
from bratseg.review.export import export_case, export_case_nnunet, export_session_dicom

from .._state import viewer_state
from ._common import show_input_error

if TYPE_CHECKING:
    from bratseg.review import ReviewSession

logger = logging.getLogger(__name__)

#: Layout choice writing the case as DICOM (:mod:`bratseg.report.dicom`) instead of a dataset.
DICOM_LAYOUT = "DICOM (SEG, RTSTRUCT, overlay)"


def default_dataset_dir() -> Path:
    """``$BRATSEG_HOME/datasets/corrected`` (:func:`bratseg.user_folders.corrected_datasets_dir`)."""
    from bratseg.user_folders import corrected_datasets_dir

    return corrected_datasets_dir()


class ExportWidget(QWidget):
    """Dock exporting the corrected case for retraining."""

    def __init__(self, napari_viewer: Any, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.viewer = napari_viewer
        self.state = viewer_state(napari_viewer)
        self.last_export: Path | None = None

        self.folder_edit = QLineEdit(str(default_dataset_dir()))
        browse = QPushButton("…")
        browse.setMaximumWidth(32)
        browse.clicked.connect(self._browse)
        folder_row = QHBoxLayout()
        folder_row.addWidget(self.folder_edit)
        folder_row.addWidget(browse)
        from bratseg.labels import BRATS_CONVENTIONS

        self.convention_combo = QComboBox()
        self.convention_combo.addItems(list(BRATS_CONVENTIONS))
        self.layout_combo = QComboBox()
        self.layout_combo.addItems(["BraTS case folders", "nnU-Net dataset", DICOM_LAYOUT])
        self.layout_combo.setToolTip(
            "BraTS: <case>/<case>_{t1,t1ce,t2,flair,seg}; nnU-Net v2 raw: "
            "imagesTr/labelsTr/dataset.json (labels 1 ED, 2 NCR, 3 ET); DICOM: "
            "<case>_dicom/ with SEG, RTSTRUCT, the burned-in T1Gd series and a summary image"
        )
        self.link_combo = QComboBox()
        self.link_combo.addItems(list(LINK_MODES))
        self.link_combo.setToolTip("How the four MRI files go into the dataset")
        self.export_button = QPushButton("Export case for retraining")
        self.export_button.clicked.connect(lambda: self.export())
        self.status = QLabel("")
        self.status.setWordWrap(True)

        form = QFormLayout()
        form.addRow("Dataset folder", folder_row)
        form.addRow("Layout", self.layout_combo)
        form.addRow("Label convention", self.convention_combo)
        form.addRow("Images", self.link_combo)
        layout = QVBoxLayout(self)
        layout.addWidget(
            QLabel("Writes images, corrected <i>_seg</i>, the AI proposal and a provenance JSON.")
        )
        layout.addLayout(form)
        layout.addWidget(self.export_button)
        layout.addWidget(self.status)
        layout.addStretch()

        self.state.session_changed.connect(self._on_session)
        self._on_session(self.state.session)

    def _on_session(self, session: ReviewSession | None) -> None:
        self.export_button.setEnabled(session is not None)
        if session is not None:
            self.convention_combo.setCurrentText(session.convention)
            self.status.setText(f"Ready to export {session.case.case_id}.")
        else:
            self.status.setText("Segment (and correct) a case first.")

    def _browse(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Dataset folder", self.folder_edit.text())
        if folder:
            self.folder_edit.setText(folder)

    def export(
        self, folder: str | Path | None = None, overwrite: bool | None = None
    ) -> Path | None:
        """Export the current case; asks before replacing unless ``overwrite`` is given.

        Returns:
            The case folder written, or None when nothing was written.
        """
        session = self.state.session
        if session is None:
            return None
        if folder is not None:
            self.folder_edit.setText(str(folder))
        kwargs: dict[str, Any] = {  # checked by export_case
            "convention": self.convention_combo.currentText(),
            "link": self.link_combo.currentText(),
        }
        dataset = Path(self.folder_edit.text()).expanduser()
        write: Callable[..., Path] = export_case
        target = dataset / session.case.case_id
        if self.layout_combo.currentText() == DICOM_LAYOUT:
            try:
                from bratseg.report.dicom import dicom_folder_name
            except ImportError as exc:
                self.status.setText(
                    f'DICOM export needs {exc.name}: pip install "napari-brats[dicom]"'
                )
                return None
            target = dataset / dicom_folder_name(session.case.case_id)

            def write_dicom(
                session: ReviewSession, dataset: Path, overwrite: bool, **_: Any
            ) -> Path:  # the case's DICOM outputs
                return export_session_dicom(session, target, overwrite=overwrite).folder

            write = write_dicom

        elif self.layout_combo.currentText().startswith("nnU-Net"):

            def write_nnunet(
                session: ReviewSession, dataset: Path, overwrite: bool, **_: Any
            ) -> Path:  # the nnU-Net layout: no link or label choice
                return export_case_nnunet(session, dataset, overwrite=overwrite)

            write = write_nnunet

        try:
            try:
                path = write(session, dataset, overwrite=bool(overwrite), **kwargs)
            except ExportExistsError:
                if overwrite is None:
                    answer = QMessageBox.question(
                        self,
                        "Replace export?",
                        f"{target} already exists. Replace it?",
                    )
                    overwrite = answer == QMessageBox.StandardButton.Yes
                if not overwrite:
                    self.status.setText(f"Not exported: {target} exists (kept as is).")
                    return None
                path = write(session, dataset, overwrite=True, **kwargs)
        except Exception as exc:
            self.status.setText(f"Export failed: {show_input_error(exc)}")
            return None
        self.last_export = path
        self.state.save_now(exported=True)
        self.status.setText(f"Exported to {path}")
        return path
