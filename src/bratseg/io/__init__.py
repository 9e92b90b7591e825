"""Reading and writing BraTS data: case folders, label maps, atomic NIfTI export."""

from bratseg.io.case import (
    AFFINE_TOLERANCE,
    MODALITIES,
    MODALITY_NAMES,
    Case,
    iter_load_case,
    load_case,
)
from bratseg.io.case_files import find_case_files, match_modality
from bratseg.io.dataset import is_case_folder, list_case_folders, scan_case_folders
from bratseg.io.nifti import LabelMap, load_label_map, open_nifti, voxel_spacing
from bratseg.io.writing import save_label_map, write_nifti_atomic

__all__ = [
    "AFFINE_TOLERANCE",
    "MODALITIES",
    "MODALITY_NAMES",
    "Case",
    "LabelMap",
    "find_case_files",
    "is_case_folder",
    "iter_load_case",
    "list_case_folders",
    "load_case",
    "load_label_map",
    "match_modality",
    "open_nifti",
    "save_label_map",
    "scan_case_folders",
    "voxel_spacing",
    "write_nifti_atomic",
]
