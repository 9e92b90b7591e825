"""Label-map operations of the postprocessing: class indices, and Henry et al. 2021's merge of two
label maps.

Label maps are built from region masks by :func:`bratseg.labels.labels_from_regions` (the one
builder). Label values follow :mod:`bratseg.labels`; masks are boolean (X, Y, Z).
"""

from __future__ import annotations

import numpy as np

from bratseg.errors import BratsInputError
from bratseg.labels import CLASSES, LABEL_VALUES, Convention, check_convention, tissue_index_map


def labels_to_class_index(labels: np.ndarray, convention: Convention) -> np.ndarray:
    """Class index (0 bg, 1 NCR, 2 ED, 3 ET) of every voxel of a label map (uint8, same shape)."""
    lut = tissue_index_map(convention).astype(np.uint8)
    return lut[np.asarray(labels)]


#: Henry et al. 2021, Table 1: merged class, indexed [class in B, class in A]
#: (classes 0 bg, 1 NCR, 2 ED, 3 ET). A's NCR and ET are kept; where A says background or
#: edema, B decides between background and edema.
MERGE_TABLE = np.array(
    [
        #  A: bg  ncr  ed  et
        [0, 1, 0, 3],  # B: bg
        [0, 1, 2, 3],  # B: ncr
        [2, 1, 2, 3],  # B: ed
        [0, 1, 2, 3],  # B: et
    ],
    dtype=np.uint8,
)


def merge_labelmaps(a: np.ndarray, b: np.ndarray, convention: Convention = "2021") -> np.ndarray:
    """Merge two label maps by Henry et al. 2021's table (A trusted for ET/TC, B for edema).

    Args:
        a: Label map (X, Y, Z) of the model trusted for ET and NCR.
        b: Label map (X, Y, Z) of the model trusted for edema (WT).
        convention: Convention of both inputs and of the output.

    Returns:
        uint8 label map (X, Y, Z).
    """
    conv = check_convention(convention)
    a = np.asarray(a)
    b = np.asarray(b)
    if a.shape != b.shape:
        raise BratsInputError(f"cannot merge label maps of shapes {a.shape} and {b.shape}")
    merged_class = MERGE_TABLE[labels_to_class_index(b, conv), labels_to_class_index(a, conv)]
    class_to_value = np.array([0, *(LABEL_VALUES[conv][t] for t in CLASSES[1:])], dtype=np.uint8)
    return class_to_value[merged_class]
