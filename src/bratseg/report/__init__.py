"""Clinical report of a segmented case: volumes, lesions, RANO products, sides, follow-up, PDF.

:func:`build_report` computes the :class:`CaseReport`; :func:`write_report_pdf` renders it on one
page with three orthogonal slices through the largest lesion. GUI-free: the PDF is drawn with
matplotlib's Agg canvas, no Qt.
"""

from bratseg.report.build import (
    STRUCTURES,
    CaseReport,
    ReportInfo,
    build_report,
    load_json_record,
    structure_masks,
)
from bratseg.report.lesions import EnhancingLesion, Lesion, brain_mask, find_lesions, midline_x
from bratseg.report.rano import MEASURABLE_MM, Bidimensional, measure_bidimensional

__all__ = [
    "MEASURABLE_MM",
    "STRUCTURES",
    "Bidimensional",
    "CaseReport",
    "EnhancingLesion",
    "Lesion",
    "ReportInfo",
    "brain_mask",
    "build_report",
    "find_lesions",
    "load_json_record",
    "measure_bidimensional",
    "midline_x",
    "structure_masks",
    "write_report_pdf",
]


def __getattr__(name: str):
    if name == "write_report_pdf":  # matplotlib only when a PDF is asked for
        from bratseg.report.pdf import write_report_pdf

        return write_report_pdf
    raise AttributeError(name)
