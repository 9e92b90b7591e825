"""Raw clinical scans (or a DICOM study) -> a BraTS-ready case folder, and labels back.

:func:`iter_prepare` picks the four series, corrects the bias field (N4), registers T1, T2 and
FLAIR rigidly to T1Gd, resamples to 1 mm isotropic, extracts the brain (deepbet) and writes a
case folder with a provenance file (``prepare.json``) and the transforms back to each source
series; :func:`labels_to_native` writes a label map of that folder in a source series' grid.
:func:`list_series` and :func:`guess_channels` describe a study's series and pre-select one per
channel for a person choosing them (the viewer's series picker).
"""

from bratseg.prepare.candidates import (
    ChannelGuess,
    SeriesCandidate,
    guess_channels,
    list_series,
    middle_slice,
)
from bratseg.prepare.native import labels_to_native, read_provenance
from bratseg.prepare.pipeline import PrepareOptions, PrepareResult, iter_prepare, prepare
from bratseg.prepare.series import pick_series

__all__ = [
    "ChannelGuess",
    "SeriesCandidate",
    "guess_channels",
    "list_series",
    "middle_slice",
    "PrepareOptions",
    "PrepareResult",
    "iter_prepare",
    "labels_to_native",
    "pick_series",
    "prepare",
    "read_provenance",
]
