"""DICOM outputs of a segmentation in the patient's space: SEG, RTSTRUCT, burned-in series.

Needs ``highdicom`` (with pydicom), ``scikit-image`` (contours) and ``matplotlib`` (summary image).
See :func:`bratseg.report.dicom.export.export_dicom`.
"""

from bratseg.report.dicom.export import (
    DicomExport,
    check_labels,
    dicom_folder_name,
    export_dicom,
)
from bratseg.report.dicom.seg import Provenance

__all__ = [
    "DicomExport",
    "Provenance",
    "check_labels",
    "dicom_folder_name",
    "export_dicom",
]
