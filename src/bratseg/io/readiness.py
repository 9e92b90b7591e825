"""Is a loaded case BraTS-ready? An input check on every case, before any model sees it.

The models were trained on BraTS-preprocessed cases only: skull-stripped, co-registered, 1 mm
isotropic. Scans as a scanner wrote them (head with skull and neck, 5 mm slices) give a confident,
many-times-too-large answer, so every loaded case is checked and a case that is not ready is refused
with the way out (``napari-brats prepare``).

What is checked, on the loaded image (4, X, Y, Z) and its voxel size:

- **skull stripping**: the non-zero volume and fraction of the field of view. BraTS cases hold
  1,150-1,910 mL, 13-22 % of their 240 x 240 x 155 grid (77 training cases); the packaged sample,
  cropped to the brain, 41 %. A head as acquired is 90-97 % non-zero (air is noisy, not zero),
  about 6 L; a head whose background was zeroed still has a head-sized non-zero volume (4-6 L), so
  both are checked (:data:`MAX_NONZERO_FRACTION`, :data:`MAX_NONZERO_ML`).
- **slices**: thicker than :data:`MAX_SLICE_MM` or voxels more anisotropic than
  :data:`MAX_ANISOTROPY` (the models saw 1 mm isotropic voxels).
- **field of view** smaller than :data:`MIN_FOV_MM` along an axis (not a whole brain).
- **intensities**: a series that is constant (empty or blank), or one that is almost all
  negative (already normalised differently: the models normalise raw intensities themselves).

Series that are not co-registered are refused when the case is loaded (see :mod:`bratseg.io.case`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bratseg.io.channels import MODALITIES, MODALITY_NAMES

#: Largest non-zero fraction of the field of view of a skull-stripped case (BraTS: <= 0.22; a
#: brain cropped to its bounding box, as the packaged sample: about 0.41-0.55).
MAX_NONZERO_FRACTION = 0.60
#: Largest non-zero volume of a skull-stripped case in mL (BraTS brains: <= 1,910 mL).
MAX_NONZERO_ML = 2_800.0
#: Thickest slice (largest voxel side) in mm the models are trusted on.
MAX_SLICE_MM = 3.0
#: Largest ratio of the largest to the smallest voxel side.
MAX_ANISOTROPY = 3.0
#: Smallest field of view along any axis, in mm, that can hold a whole brain.
MIN_FOV_MM = 100.0
#: Largest fraction of negative voxels in a series before its intensities count as implausible.
MAX_NEGATIVE_FRACTION = 0.25

#: What a refusal tells the user to do.
WAY_OUT = (
    "prepare the raw scans first: napari-brats prepare INPUT -o CASE_DIR (or predict --prepare; "
    "--no-input-check to segment anyway)"
)


@dataclass(frozen=True)
class InputFinding:
    """One reason a case is not BraTS-ready.

    Attributes:
        code: Stable key: ``not_skull_stripped``, ``thick_slices``, ``anisotropic``,
            ``field_of_view`` or ``intensities``.
        message: What was found, in words, with the measured value.
    """

    code: str
    message: str


def check_input(image: np.ndarray, spacing: tuple[float, float, float]) -> list[InputFinding]:
    """What makes a case not BraTS-ready (empty list: ready).

    Args:
        image: (4, X, Y, Z) intensities, channels in :data:`MODALITIES` order.
        spacing: Voxel size in mm.

    Returns:
        The findings, most important first.
    """
    findings: list[InputFinding] = []
    sizes = np.asarray(spacing, dtype=np.float64)
    voxel_ml = float(np.prod(sizes)) / 1000.0
    flat = image.reshape(image.shape[0], -1)
    nonzero = np.count_nonzero(flat, axis=1)
    fraction = float(nonzero.max()) / max(flat.shape[1], 1)
    volume_ml = float(nonzero.max()) * voxel_ml
    if fraction > MAX_NONZERO_FRACTION or volume_ml > MAX_NONZERO_ML:
        findings.append(
            InputFinding(
                "not_skull_stripped",
                f"not skull-stripped ({volume_ml:,.0f} mL, {fraction:.0%} of the field of view, "
                "is non-zero; a skull-stripped brain is 900-2,000 mL)",
            )
        )
    if sizes.max() > MAX_SLICE_MM:
        findings.append(
            InputFinding(
                "thick_slices", f"{sizes.max():.1f} mm slices (at most {MAX_SLICE_MM:g} mm)"
            )
        )
    elif sizes.max() / sizes.min() > MAX_ANISOTROPY:
        shown = " x ".join(f"{s:.2g}" for s in sizes)
        findings.append(InputFinding("anisotropic", f"anisotropic {shown} mm voxels"))
    fov = sizes * np.asarray(image.shape[1:], dtype=np.float64)
    if fov.min() < MIN_FOV_MM:
        shown = " x ".join(f"{f:.0f}" for f in fov)
        findings.append(
            InputFinding(
                "field_of_view", f"field of view {shown} mm is too small for a whole brain"
            )
        )
    for index, key in enumerate(MODALITIES):
        channel = flat[index]
        if nonzero[index] == 0 or float(channel.min()) == float(channel.max()):
            findings.append(InputFinding("intensities", f"{MODALITY_NAMES[key]} is blank"))
        elif np.count_nonzero(channel < 0) > MAX_NEGATIVE_FRACTION * nonzero[index]:
            findings.append(
                InputFinding(
                    "intensities",
                    f"{MODALITY_NAMES[key]} is mostly negative (already normalised?)",
                )
            )
    return findings


def readiness_line(findings: list[InputFinding]) -> str:
    """One line for the user: what was found and the way out ('' when there is nothing)."""
    if not findings:
        return ""
    return f"not BraTS-ready: {'; '.join(f.message for f in findings)}; {WAY_OUT}"


def require_ready(findings: list[InputFinding], folder: object) -> None:
    """Raise the one-line refusal when there are findings.

    Raises:
        BratsInputError: naming ``folder``, what was found and the way out.
    """
    if findings:
        from bratseg.errors import BratsInputError

        raise BratsInputError(readiness_line(findings), str(folder))
