"""DICOM outputs of a segmentation in the patient's space: SEG, RTSTRUCT, burned-in series.

Needs ``highdicom`` (with pydicom), ``scikit-image`` (contours) and ``matplotlib`` (summary image).
See :func:`bratseg.io.dicom_out.export.export_dicom`.
"""

from bratseg.io.dicom_out.export import DicomExport, check_labels, export_dicom, volumes_ml
from bratseg.io.dicom_out.seg import Provenance

__all__ = ["DicomExport", "Provenance", "check_labels", "export_dicom", "volumes_ml"]
