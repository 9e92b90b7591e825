"""Export a reviewed case into a training-dataset folder: see :mod:`bratseg.io.case_export`.

The engine owns the layout the trainer reads; the plugin's docks import it from here.
"""

from bratseg.io.case_export import (
    AI_SUFFIX,
    LINK_MODES,
    ExportExistsError,
    LinkMode,
    build_provenance,
    export_case,
    export_case_nnunet,
)

__all__ = [
    "AI_SUFFIX",
    "LINK_MODES",
    "ExportExistsError",
    "LinkMode",
    "build_provenance",
    "export_case",
    "export_case_nnunet",
]
