"""The four MRI series of a case: their order, display names, file-name endings, grid tolerance.

Shared by the case reader (:mod:`bratseg.io.case`), which calls the series alignment
(:mod:`bratseg.io.align`), and the alignment, which needs them too: one place, no import cycle.
"""

from __future__ import annotations

#: Canonical channel order of every case image (T1, T1Gd, T2, FLAIR).
MODALITIES: tuple[str, str, str, str] = ("t1", "t1ce", "t2", "flair")
MODALITY_NAMES = {"t1": "T1", "t1ce": "T1Gd", "t2": "T2", "flair": "FLAIR"}

#: Name endings (after ``_`` or ``-``) recognised for each channel and the label map.
NAME_TOKENS: dict[str, tuple[str, ...]] = {
    "t1": ("t1", "t1n"),
    "t1ce": ("t1ce", "t1c", "t1gd", "t1post", "t1_post"),
    "t2": ("t2", "t2w"),
    "flair": ("flair", "t2f"),
    "seg": ("seg",),
}

#: What stands in for a missing series when a case may be incomplete (``allow_missing``): the
#: other series of its pair, the one closest in contrast (FLAIR and T2 both show edema bright;
#: T1 and T1Gd are the same sequence without and with contrast agent). A case needs at least one
#: series of each pair.
SUBSTITUTES: dict[str, str] = {"flair": "t2", "t2": "flair", "t1": "t1ce", "t1ce": "t1"}

#: Largest allowed affine difference between modalities, as a fraction of the smallest voxel
#: size (1e-3 of 1 mm = 1 µm): well above float32 header round-off, far below any real shift.
AFFINE_TOLERANCE = 1e-3
