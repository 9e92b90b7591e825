"""Brain extraction with deepbet (Fisch et al. 2024; MIT licence, weights in its wheel).

deepbet is a small two-stage U-Net (a bounding-box model on 128^3, then a mask model on 256^3)
trained on T1-weighted scans; it runs in about 2 s on a CPU and never downloads anything: its
weights ship in the ``deepbet`` wheel (``pip install "napari-brats[prepare]"``).
"""

from __future__ import annotations

import logging

import nibabel as nib
import numpy as np

from bratseg.errors import BratsInputError

logger = logging.getLogger(__name__)

#: Brain-extraction tools offered (deepbet: the default, fast and offline).
BRAIN_TOOLS: tuple[str, ...] = ("deepbet",)
#: deepbet's probability threshold (its own default).
THRESHOLD = 0.5


def deepbet_version() -> str | None:
    """The installed deepbet's version, or None."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("deepbet")
    except PackageNotFoundError:
        return None


def extract_brain(image: nib.Nifti1Image, device: str = "cpu") -> np.ndarray:
    """Brain mask of a T1-weighted (or T1Gd) image on its own grid.

    Args:
        image: 3D image (any orientation; deepbet reorients to RAS and back).
        device: ``cpu`` or a torch device name.

    Returns:
        bool array of ``image``'s shape.

    Raises:
        BratsInputError: deepbet is not installed, or it finds no brain.
    """
    try:
        from deepbet import BrainExtraction
    except ImportError:
        raise BratsInputError(
            'brain extraction needs deepbet: pip install "napari-brats[prepare]"'
        ) from None
    import torch

    extractor = BrainExtraction(no_gpu=device == "cpu")
    try:
        with torch.inference_mode():
            _, mask_img, _ = extractor.run(image, threshold=THRESHOLD)
    except (AssertionError, ValueError) as exc:  # deepbet asserts when it finds no foreground
        raise BratsInputError(f"brain extraction found no brain ({exc})") from None
    return np.asarray(mask_img.dataobj).astype(bool)
