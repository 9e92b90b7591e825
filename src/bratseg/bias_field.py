"""N4 bias-field correction (Tustison et al. 2010, SimpleITK's ``N4BiasFieldCorrectionImageFilter``).

One implementation for every caller:

- :func:`n4_corrected` on a SimpleITK image with a fit mask (``prepare`` fits inside an Otsu head
  mask, because its input still has a skull);
- :func:`correct_channels` on a network-ready array (C, X, Y, Z), fitted inside the brain mask:
  used by :mod:`bratseg.preprocess` when a model's preprocessing asks for it
  (``PreprocessConfig.bias_correction``), so training, ``predict`` and the Segment dock correct
  the same way.

The field is smooth, so it is fitted on a copy shrunk by ``shrink`` along every axis finer than
2 mm and evaluated at full resolution; the image is divided by it. Its B-spline mesh spans the
image it is given (N4's defaults: 4 control points per axis, refined at each of the three
levels): on a BraTS grid (240 x 240 x 155 mm) the last level's knots are 60 x 60 x 39 mm apart.
A tighter field of view (the brain crop) gives a finer mesh, which takes part of a large
tumour's signal for field; :mod:`bratseg.preprocess` therefore corrects the whole image.
Intensities stay in the image's own scale (N4 normalises the field to a mean log of about 0
inside the mask).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np

from bratseg.errors import BratsInputError

logger = logging.getLogger(__name__)

#: Shrink factor of the fit for a network's input (6: 1.4 s a 1 mm series on 2 threads).
PREPROCESS_SHRINK = 6
#: Iterations per fitting level (three levels).
N4_ITERATIONS = (25, 25, 25)
#: Axes coarser than this (mm) are not shrunk (thick slices stay as they are).
MAX_SHRUNK_SPACING_MM = 2.0
#: Fewest mask voxels a fit needs; smaller masks leave the channel as it is.
MIN_FIT_VOXELS = 1000
#: The prediction-time choice (``predict --bias-correction``, the Segment dock) by name:
#: as each model was trained, before every model, or never.
BIAS_CORRECTION_CHOICES: dict[str, bool | None] = {"model": None, "on": True, "off": False}


def bias_correction_choice(name: str) -> bool | None:
    """The :data:`BIAS_CORRECTION_CHOICES` value of ``name`` (``InferenceOptions.bias_correction``)."""
    if name not in BIAS_CORRECTION_CHOICES:
        raise BratsInputError(
            f"bias correction must be one of {', '.join(BIAS_CORRECTION_CHOICES)}, got {name!r}"
        )
    return BIAS_CORRECTION_CHOICES[name]


def _sitk() -> Any:
    try:
        import SimpleITK as sitk
    except ImportError as exc:  # pragma: no cover - depends on the installation
        raise BratsInputError(
            "bias-field correction needs SimpleITK: pip install SimpleITK"
        ) from exc
    return sitk


def n4_corrected(
    image: Any, mask: Any, shrink: int, iterations: Sequence[int] = N4_ITERATIONS
) -> Any:
    """``image`` divided by its N4 bias field.

    Args:
        image: SimpleITK float image.
        mask: SimpleITK uint8 image on the same grid, 1 where the field is fitted.
        shrink: Shrink factor of the fit along each axis finer than :data:`MAX_SHRUNK_SPACING_MM`.
        iterations: Iterations per fitting level.

    Returns:
        The corrected SimpleITK image (float32), same grid.
    """
    sitk = _sitk()
    factors = [int(shrink) if s < MAX_SHRUNK_SPACING_MM else 1 for s in image.GetSpacing()]
    n4 = sitk.N4BiasFieldCorrectionImageFilter()
    n4.SetMaximumNumberOfIterations([int(i) for i in iterations])
    n4.Execute(sitk.Shrink(image, factors), sitk.Shrink(mask, factors))
    field = sitk.Exp(n4.GetLogBiasFieldAsImage(image))
    return sitk.Cast(image / field, sitk.sitkFloat32)


def correct_channels(
    image: np.ndarray,
    mask: np.ndarray,
    spacing: Sequence[float],
    shrink: int = PREPROCESS_SHRINK,
    iterations: Sequence[int] = N4_ITERATIONS,
) -> np.ndarray:
    """Each channel of ``image`` divided by its own N4 field, fitted inside ``mask``.

    Args:
        image: float (C, X, Y, Z).
        mask: bool (X, Y, Z), the brain.
        spacing: Voxel spacing (mm) of X, Y, Z.
        shrink: See :func:`n4_corrected`.
        iterations: See :func:`n4_corrected`.

    Returns:
        float32 (C, X, Y, Z); voxels outside ``mask`` keep their value. A channel is left as it
        is when the mask inside it has fewer than :data:`MIN_FIT_VOXELS` positive voxels
        (N4 works on the logarithm of the intensities).
    """
    sitk = _sitk()
    out = np.array(image, dtype=np.float32, copy=True)
    for c in range(out.shape[0]):
        chan = out[c]
        fit = mask & (chan > 0)
        if int(fit.sum()) < MIN_FIT_VOXELS:
            logger.warning(
                "bias field: channel %d has too few positive brain voxels; left as is", c
            )
            continue
        # SimpleITK's arrays are (Z, Y, X); the spacing is given in X, Y, Z.
        img = sitk.GetImageFromArray(np.ascontiguousarray(np.maximum(chan, 0).T))
        img.SetSpacing([float(s) for s in spacing])
        msk = sitk.GetImageFromArray(np.ascontiguousarray(fit.T.astype(np.uint8)))
        msk.CopyInformation(img)
        corrected = sitk.GetArrayFromImage(n4_corrected(img, msk, shrink, iterations)).T
        out[c] = np.where(mask, np.where(chan > 0, corrected, chan), chan)
    return out
