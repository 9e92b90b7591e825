"""The Segment dock's way from raw scans to a BraTS-ready case: offer, pick, prepare, check.

1. A loaded case that the engine's input check finds not BraTS-ready (``Case.findings``) gets a
   non-blocking dialog with the engine's line and a *Prepare raw scans…* button (the dock also has
   that button, for any study folder).
2. The :class:`~napari_brats._widgets.series_picker.SeriesPickerDialog` asks which series is
   which (the engine pre-selects; ambiguity is the user's choice) and for a new output folder.
3. :func:`bratseg.prepare.iter_prepare` runs in a napari worker through the dock's own progress
   bar and Cancel (a cancel leaves nothing written); the prepared case opens in the viewer with
   its QC: the brain-mask outline over the T1Gd before brain extraction, the brain volume and
   registration lines, and a
   needs-review note when a check failed.

:class:`PrepareRawMixin` holds these methods for :class:`~napari_brats._widgets.segment.SegmentWidget`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from qtpy.QtWidgets import QFileDialog, QLabel, QMessageBox, QPushButton, QWidget

logger = logging.getLogger(__name__)

#: Name of the QC layer of the brain mask.
BRAIN_MASK_LAYER = "brain mask (QC)"
#: Name of the QC layer of the T1Gd before brain extraction.
HEAD_LAYER = "T1Gd with skull (QC)"


def default_output(source: Path) -> Path:
    """A new folder beside ``source``: ``<name>-prepared`` (``-prepared-2``, ... when taken)."""
    base = source.parent / f"{source.name}-prepared"
    candidate, n = base, 2
    while candidate.exists():
        candidate = base.with_name(f"{base.name}-{n}")
        n += 1
    return candidate


def qc_lines(provenance: dict[str, Any]) -> list[str]:
    """The QC lines of a ``prepare.json``: the brain volume, then one per registration."""
    qc = provenance.get("qc", {})
    low, high = qc.get("brain_ml_plausible", (0, 0))
    lines = [f"brain {qc.get('brain_ml', 0):,.0f} mL (plausible {low:,.0f}-{high:,.0f} mL)"]
    return lines + list(qc.get("registration", []))


if TYPE_CHECKING:
    from qtpy.QtWidgets import QComboBox, QProgressBar

    from bratseg.io import Case
    from bratseg.prepare.pipeline import PrepareResult

    from .._layers import LayerDataTuple
    from .._state import ViewerState

    _Dock = QWidget  # the mixin is only ever part of the Segment dock, a QWidget
else:
    _Dock = object


def _voxels(path: Path) -> np.ndarray:
    """The voxel array of a NIfTI image the preparation wrote (QC head image, brain mask)."""
    import nibabel as nib
    from nibabel.spatialimages import SpatialImage

    img = nib.load(path)
    if not isinstance(img, SpatialImage):
        raise TypeError(f"{path} is not an image")
    return np.asarray(img.dataobj)


class PrepareRawMixin(_Dock):
    """Methods of the Segment dock behind *Prepare raw scans…* (see the module docstring)."""

    viewer: Any  # napari.Viewer
    state: ViewerState
    status: QLabel
    progress: QProgressBar
    device_combo: QComboBox
    last_error: str | None

    if TYPE_CHECKING:  # the dock's own methods the flow calls

        def _set_busy(self, busy: bool) -> None: ...

        def _show_case(self, layer_data: list[LayerDataTuple]) -> None: ...

        def _start_worker(self, worker: Any, on_returned: Callable[..., Any]) -> Any: ...

    def init_prepare(self) -> None:
        """Create the dock's *Prepare raw scans…* button and QC line (called by its __init__)."""
        self.prepare_button = QPushButton("Prepare raw scans…")
        self.prepare_button.setToolTip(
            "Scans as the scanner wrote them (skull, own grids, thick slices; NIfTI files or a "
            "DICOM study): choose the series, then N4, registration to T1Gd, 1 mm, brain extraction"
        )
        self.prepare_button.clicked.connect(self.prepare_raw_dialog)
        self.qc_label = QLabel("")
        self.qc_label.setWordWrap(True)
        self.qc_label.setVisible(False)
        self.readiness_box: QMessageBox | None = None
        self.series_picker: Any = None
        self.prepared: Any = None
        self._offered_raw: set[int] = set()

    # ------------------------------------------------------------------ 1. offer
    def offer_prepare(self, case: Case) -> QMessageBox | None:
        """A dialog with the engine's not-ready line and *Prepare raw scans…* (once per case)."""
        if not getattr(case, "findings", None) or id(case) in self._offered_raw:
            return None
        from bratseg.io.readiness import readiness_line

        self._offered_raw.add(id(case))
        return self._offer(
            f"<b>{case.case_id}</b> cannot be segmented as it is.",
            readiness_line(case.findings),
            case.folder,
        )

    def offer_prepare_folder(self, folder: str | Path, message: str) -> QMessageBox | None:
        """After a folder failed to open as a case: when it holds series (raw scans with their
        own names, a DICOM study), the error with *Prepare raw scans…*."""
        from bratseg.prepare import list_series

        try:
            list_series(folder)
        except Exception:
            return None
        return self._offer(
            f"<b>{Path(folder).name}</b> is not a BraTS case folder.", message, folder
        )

    def _offer(self, title: str, line: str, source: Path | str | None) -> QMessageBox:
        box = QMessageBox(self)
        box.setIcon(QMessageBox.Icon.Warning)
        box.setWindowTitle("Not BraTS-ready")
        box.setText(title)
        box.setInformativeText(line)
        button = box.addButton("Prepare raw scans…", QMessageBox.ButtonRole.AcceptRole)
        box.addButton(QMessageBox.StandardButton.Close)
        if button is not None:  # Qt's stubs type the new button as optional
            button.clicked.connect(lambda: self.choose_series(source) if source else None)
        self.readiness_box = box
        box.open()
        return box

    # ------------------------------------------------------------------ 2. pick
    def prepare_raw_dialog(self) -> None:
        folder = QFileDialog.getExistingDirectory(
            self,
            "Raw study folder (NIfTI series or DICOM series folders)",
        )
        if folder:
            self.choose_series(folder)

    def choose_series(self, source: str | Path) -> Any:
        """Open the series picker for ``source``; *Prepare* starts :meth:`start_prepare`.

        Returns:
            The (non-modal) dialog, or None when the folder holds no series (error shown).
        """
        from bratseg.prepare import guess_channels, list_series

        from ._common import show_input_error
        from .series_picker import SeriesPickerDialog

        source = Path(source)
        try:
            candidates = list_series(source)
        except Exception as exc:
            self.last_error = show_input_error(exc)
            self.status.setText(self.last_error)
            return None
        dialog = SeriesPickerDialog(
            candidates,
            guess_channels(candidates),
            default_output(source),
            parent=self,
        )
        dialog.accepted.connect(
            lambda: self.start_prepare(
                source, dialog.mapping(), dialog.output_folder(), dialog.n4_check.isChecked()
            )
        )
        self.series_picker = dialog
        dialog.open()
        return dialog

    # ------------------------------------------------------------------ 3. prepare
    def start_prepare(
        self, source: str | Path, mapping: dict[str, Path], out_dir: Path, n4: bool = True
    ) -> Any:
        """Run :func:`bratseg.prepare.iter_prepare` in a worker (progress bar, Cancel)."""
        from napari.qt.threading import create_worker

        from bratseg.prepare import PrepareOptions, iter_prepare

        device = self.device_combo.currentText()
        options = PrepareOptions(n4=n4, device="cpu" if device in ("cpu", "mps") else device)
        self.last_error = None
        self.qc_label.setVisible(False)
        self._set_busy(True)
        self.status.setText(f"preparing {Path(source).name} into {out_dir}…")
        worker = create_worker(
            iter_prepare,
            str(source),
            str(out_dir),
            mapping,
            options,
            _start_thread=False,
            _ignore_errors=True,
        )
        return self._start_worker(worker, self.show_prepared)

    def show_prepared(self, result: PrepareResult) -> None:
        """Open the prepared case and show its QC (mask outline over T1Gd, lines, review note)."""
        from .._closeguard import ask_about_edits, settle_edits
        from .._reader import read_case
        from ._common import show_input_error

        self.prepared = result
        state = self.state
        if not settle_edits(self, state, ask_about_edits(self, state, "opening the prepared case")):
            self.status.setText(f"prepared into {result.folder}; not opened")
            return
        try:
            layer_data = read_case(str(result.folder), align="none")
        except Exception as exc:
            self.last_error = show_input_error(exc)
            self.status.setText(self.last_error)
            return
        self._show_case(layer_data)
        case = state.adopt(layer_data)
        if case is None:
            return
        self._add_mask_layer(case, result)
        lines = qc_lines(result.provenance)
        text = "<b>QC</b>: " + "<br>".join(lines)
        if result.review:
            text += (
                "<br><span style='color:#e05050'><b>needs review</b>: "
                + "; ".join(result.review)
                + "</span>"
            )
            from napari.utils.notifications import show_warning

            show_warning(f"{case.case_id} needs review: {'; '.join(result.review)}")
        self.progress.setRange(0, 1)
        self.progress.setValue(1)
        self.qc_label.setText(text)
        self.qc_label.setVisible(True)
        self.status.setText(f"prepared {case.case_id}: {lines[0]}; ready to segment")

    def _add_mask_layer(self, case: Case, result: PrepareResult) -> Any:
        """The brain-mask outline over the T1Gd before brain extraction (``qc/`` of the folder;
        over the prepared T1Gd when absent), the other series hidden."""
        from .._cases import CASE_REF, case_ref
        from .._layers import (
            AXIS_LABELS,
            META_KEY,
            UNITS,
            contrast_limits,
            display_scale,
            geometry_meta,
            to_display,
        )

        common = {
            "scale": display_scale(case.spacing, case.affine),
            "metadata": {META_KEY: {**geometry_meta(case), "role": "qc"}},
            "axis_labels": AXIS_LABELS,
            "units": UNITS,
        }
        head_name = result.provenance.get("qc", {}).get("head_image")
        head = result.folder / head_name if head_name else None
        t1ce = under = None
        ref = case_ref(case)
        for layer in self.viewer.layers:
            meta = layer.metadata.get(META_KEY) or {}
            if meta.get(CASE_REF) == ref and meta.get("role") == "image":
                layer.visible = head is None and meta.get("modality") == "t1ce"
                t1ce = layer if meta.get("modality") == "t1ce" else t1ce
        if head is not None and head.is_file():
            volume = _voxels(head).astype(np.float32)
            under = self.viewer.add_image(
                to_display(volume, case.affine),
                name=HEAD_LAYER,
                colormap="gray",
                contrast_limits=contrast_limits(volume),
                **common,
            )
        elif t1ce is not None:
            t1ce.visible = True
            under = t1ce
        mask = _voxels(result.folder / f"{case.case_id}_brainmask.nii.gz")
        layer = self.viewer.add_labels(
            to_display(mask.astype(np.uint8), case.affine),
            name=BRAIN_MASK_LAYER,
            opacity=0.9,
            **common,
        )
        layer.contour = 2
        layer.editable = False
        if under is not None:
            self.viewer.layers.selection.active = under
        return layer
