"""npe2 sample data: the real BraTS case shipped in the package (:mod:`bratseg.sample`).

*File ▸ Open Sample ▸ napari-brats* loads it, after any install (no checkout needed).
``$NAPARI_BRATS_SAMPLE`` may name another case folder.
"""

from __future__ import annotations

from bratseg.sample import SAMPLE_ENV, sample_case_dir

from ._layers import LayerDataTuple

__all__ = ["SAMPLE_ENV", "find_sample_case", "load_sample_case"]


def find_sample_case():
    """Folder of the sample case (see :func:`bratseg.sample.sample_case_dir`)."""
    return sample_case_dir()


def load_sample_case() -> list[LayerDataTuple]:
    """npe2 sample-data command: layers of the sample case (images + reference seg)."""
    from ._reader import read_case

    return read_case(str(find_sample_case()))
