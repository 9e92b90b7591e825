"""Series that do not share one voxel grid: resample them into the T1Gd grid, or register first.

Opt-in (the default stays refusal, with a message naming the option):

- ``resample``: every other series is resampled (trilinear) into the T1Gd grid through the
  affines. Right when the series share the scanner's frame (one session, no motion), whatever
  their voxel sizes and orientations.
- ``register``: T1, T2 and FLAIR are first rigidly registered to the T1Gd (6 parameters, Mattes
  mutual information, three resolution levels, SimpleITK), then resampled. For motion between
  series or another session's frame.

Labels are then written in the T1Gd's source geometry. Each aligned series gets a quality line:
the mutual information before and after (more negative is better), and the rigid motion found.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Generator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import nibabel as nib
import numpy as np

from bratseg.errors import BratsInputError
from bratseg.io.channels import AFFINE_TOLERANCE, MODALITIES, MODALITY_NAMES
from bratseg.io.nifti import affine_difference, voxel_spacing
from bratseg.progress import Progress

logger = logging.getLogger(__name__)

Align = Literal["none", "resample", "register"]
ALIGN_MODES: tuple[str, ...] = ("none", "resample", "register")
#: A registration counts as poor when it improves the mutual information by less than this
#: fraction, or when its result is weaker than this value (Mattes MI, negative is better).
POOR_MI = -0.15
#: Fraction of the fixed image's voxels the metric samples at random, and the sampler's seed.
#: The seed must not be 0: SimpleITK reads 0 as "seed from the wall clock", which made two
#: registrations of the same pair end degrees apart.
SAMPLING = 0.05
SEED = 20231


@dataclass
class AlignmentReport:
    """What aligning one series did (shown by the CLI and the dock)."""

    channel: str
    method: str
    mi_before: float | None = None
    mi_after: float | None = None
    rotation_deg: float = 0.0
    translation_mm: float = 0.0
    seconds: float = 0.0

    @property
    def poor(self) -> bool:
        """True when the registration looks unreliable (see :data:`POOR_MI`)."""
        return self.mi_after is not None and self.mi_after > POOR_MI

    def line(self) -> str:
        """One human line."""
        if self.method == "resample":
            return f"{self.channel}: resampled into the T1Gd grid ({self.seconds:.1f} s)"
        text = (
            f"{self.channel}: registered to T1Gd, rigid motion {self.rotation_deg:.1f}° / "
            f"{self.translation_mm:.1f} mm, mutual information {self.mi_before:.3f} -> {self.mi_after:.3f} "
            f"({self.seconds:.1f} s)"
        )
        return text + ("; POOR registration, check the overlay" if self.poor else "")


def resample_into(img: nib.Nifti1Image, ref: nib.Nifti1Image) -> nib.Nifti1Image:
    """``img`` resampled (trilinear, 0 outside) into ``ref``'s grid through the affines."""
    from nibabel.processing import resample_from_to

    data = np.asarray(img.dataobj, dtype=np.float32)
    source = nib.Nifti1Image(data, img.affine)
    return resample_from_to(
        source, (tuple(ref.shape[:3]), ref.affine), order=1, mode="constant", cval=0.0
    )


def to_sitk(img: nib.Nifti1Image):
    """``img`` as a float32 SimpleITK image (LPS geometry from the RAS affine)."""
    import SimpleITK as sitk

    data = np.asarray(img.dataobj, dtype=np.float32)
    out = sitk.GetImageFromArray(np.ascontiguousarray(data.transpose(2, 1, 0)))
    lps = np.diag([-1.0, -1.0, 1.0, 1.0]) @ np.asarray(img.affine, dtype=np.float64)
    spacing = np.sqrt((lps[:3, :3] ** 2).sum(0))
    out.SetSpacing(tuple(float(s) for s in spacing))
    out.SetDirection(tuple(float(v) for v in (lps[:3, :3] / spacing).ravel()))
    out.SetOrigin(tuple(float(v) for v in lps[:3, 3]))
    return out


def rigid_transform(fixed, moving, channel: str, target: str = "T1Gd"):
    """Rigidly register the SimpleITK image ``moving`` to ``fixed`` (Mattes mutual information).

    Args:
        fixed, moving: SimpleITK images (see :func:`to_sitk`).
        channel, target: Names of the moving and fixed series, for the report and errors.

    Returns:
        ``(transform, report)``: the rigid transform (fixed-space points -> moving-space points,
        SimpleITK's convention) and an :class:`AlignmentReport` for the pair.

    Raises:
        BratsInputError: SimpleITK is not installed, or the registration fails.
    """
    try:
        import SimpleITK as sitk
    except ImportError:
        raise BratsInputError(
            'registration needs SimpleITK: pip install "napari-brats[dicom]"'
        ) from None

    start = time.perf_counter()
    initial = sitk.CenteredTransformInitializer(
        fixed, moving, sitk.Euler3DTransform(), sitk.CenteredTransformInitializerFilter.GEOMETRY
    )
    method = sitk.ImageRegistrationMethod()
    method.SetMetricAsMattesMutualInformation(numberOfHistogramBins=32)
    method.SetMetricSamplingStrategy(method.RANDOM)
    method.SetMetricSamplingPercentage(SAMPLING, seed=SEED)
    method.SetInterpolator(sitk.sitkLinear)
    method.SetOptimizerAsRegularStepGradientDescent(
        learningRate=2.0, minStep=1e-3, numberOfIterations=150, relaxationFactor=0.6
    )
    method.SetOptimizerScalesFromPhysicalShift()
    method.SetShrinkFactorsPerLevel([4, 2, 1])
    method.SetSmoothingSigmasPerLevel([2.0, 1.0, 0.0])
    method.SmoothingSigmasAreSpecifiedInPhysicalUnitsOn()
    method.SetInitialTransform(initial, inPlace=False)
    try:
        method.SetMovingInitialTransform(sitk.Transform())
        before = method.MetricEvaluate(fixed, moving)
        transform = method.Execute(fixed, moving)
        after = method.GetMetricValue()
    except RuntimeError as exc:
        raise BratsInputError(
            f"registration of {channel} to {target} failed ({str(exc).splitlines()[0]})"
        ) from None
    euler = (
        sitk.Euler3DTransform(sitk.CompositeTransform(transform).GetNthTransform(0))
        if transform.GetName() == "CompositeTransform"
        else sitk.Euler3DTransform(transform)
    )
    angles = np.degrees(np.abs(euler.GetParameters()[:3]))
    report = AlignmentReport(
        channel,
        "register",
        float(before),
        float(after),
        float(angles.max()),
        float(np.linalg.norm(euler.GetTranslation())),
        time.perf_counter() - start,
    )
    return transform, report


def register_into(
    img: nib.Nifti1Image, ref: nib.Nifti1Image, channel: str
) -> tuple[nib.Nifti1Image, AlignmentReport]:
    """Rigidly register ``img`` to ``ref`` (mutual information) and resample it into ``ref``'s grid.

    Raises:
        BratsInputError: SimpleITK is not installed, or the registration fails.
    """
    try:
        import SimpleITK as sitk
    except ImportError:
        raise BratsInputError(
            '--align register needs SimpleITK: pip install "napari-brats[dicom]"'
        ) from None
    fixed, moving = to_sitk(ref), to_sitk(img)
    transform, report = rigid_transform(fixed, moving, channel)
    moved = sitk.Resample(moving, fixed, transform, sitk.sitkLinear, 0.0, sitk.sitkFloat32)
    data = sitk.GetArrayFromImage(moved).transpose(2, 1, 0)
    return nib.Nifti1Image(
        np.ascontiguousarray(data, dtype=np.float32), ref.affine, ref.header
    ), report


def align_series(
    images: dict[str, nib.Nifti1Image], files: dict[str, Path], ref_key: str, align: str
) -> Generator[Progress, None, list[AlignmentReport]]:
    """Replace every series but ``ref_key``'s by its alignment into that grid (in place).

    ``resample`` leaves series already on the reference grid as they are; ``register``
    registers every one. Closing the generator at a report stops before the next series.

    Yields:
        :class:`~bratseg.progress.Progress` before each series.

    Returns:
        One :class:`AlignmentReport` per aligned series, in channel order.
    """
    check_align(align)
    ref = images[ref_key]
    keys = [k for k in MODALITIES if k != ref_key and k in images]
    verb = "registering" if align == "register" else "aligning"
    reports = []
    for index, key in enumerate(keys):
        img, name = images[key], MODALITY_NAMES[key]
        yield Progress(index, len(keys), f"{verb} {name} to T1Gd ({index + 1}/{len(keys)})")
        if align == "register":
            images[key], report = register_into(img, ref, name)
        else:
            same = tuple(img.shape[:3]) == tuple(ref.shape[:3]) and affine_difference(
                img.affine, ref.affine
            ) <= AFFINE_TOLERANCE * min(voxel_spacing(ref.header))
            if same:
                continue
            start = time.perf_counter()
            images[key] = resample_into(img, ref)
            report = AlignmentReport(name, "resample", seconds=time.perf_counter() - start)
        logger.info("%s", report.line())
        if report.poor:
            logger.warning("%s: %s", files[key], report.line())
        reports.append(report)
    return reports


def check_align(align: str) -> str:
    """``align`` as a valid mode or a one-line error."""
    if align not in ALIGN_MODES:
        raise BratsInputError(f"unknown --align {align!r}; use one of {', '.join(ALIGN_MODES)}")
    return align
