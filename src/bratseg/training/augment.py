"""Training augmentation pipelines built from MONAI dictionary transforms.

A sample is a dict with ``"image"`` (M, X, Y, Z) float (the MRI modalities), optionally
``"extra"`` (E, X, Y, Z) float (e.g. the one-hot foreground channel of Futrega et al. 2021, which follows
spatial transforms but never intensity ones), ``"label"`` (1, X, Y, Z) uint8 class indices
(:data:`bratseg.labels.CLASSES`), and ``"fg_indices"`` / ``"bg_indices"`` (precomputed flat
voxel indices used by the foreground-biased crop). Volumes must already be at least one patch
large (:func:`bratseg.training.patches.pad_to_patch`).

Every random choice comes from the pipeline's own random state, which the dataset re-seeds per
sample from ``(seed, epoch, index)``: augmentation is reproducible and resumable, whatever the
number of workers.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
from monai.transforms import (
    Compose,
    MapTransform,
    OneOf,
    RandAdjustContrastd,
    RandAffined,
    RandCropByPosNegLabeld,
    RandFlipd,
    RandGaussianNoised,
    RandGaussianSmoothd,
    RandomizableTransform,
    RandScaleIntensityd,
    RandScaleIntensityFixedMeand,
    RandSpatialCropd,
    RandStdShiftIntensityd,
    RandZoomd,
)

from bratseg.training.augment_domain import (
    RandBiasFieldd,
    RandContrastRemovald,
    RandSeriesStandInd,
    RandThickSliced,
)

logger = logging.getLogger(__name__)


@dataclass
class AugmentConfig:
    """Probabilities and ranges of the training augmentations (probability 0 disables one).

    Defaults are Futrega et al. 2021 where it gives a number.
    """

    foreground_prob: float = (
        0.4  # Futrega et al. 2021: biased crop guarantees foreground with p=0.4
    )
    flip_prob: float = 0.5  # Futrega et al. 2021: per axis, independently
    flip_axes: tuple[int, ...] = (0, 1, 2)
    affine_prob: float = 0.2
    rotate_deg: float = 10.0  # Ashtari et al. 2021: rotation ~ U(-10, 10) degrees
    scale_range: float = 0.1  # Ashtari et al. 2021: scale ~ U(0.9, 1.1)
    zoom_prob: float = 0.0
    zoom_range: tuple[float, float] = (1.0, 1.4)  # Futrega et al. 2021
    intensity_scale_prob: float = 0.0
    intensity_scale: float = 0.1  # Jiang et al. 2020; Henry et al. 2021: factor ~ U(0.9, 1.1)
    intensity_shift_prob: float = 0.0
    intensity_shift: float = 0.1  # Jiang et al. 2020: shift ~ U(-0.1, 0.1) x channel std
    noise_prob: float = 0.15  # Futrega et al. 2021
    noise_std: float = 0.33  # Futrega et al. 2021: std ~ U(0, 0.33)
    blur_prob: float = 0.15  # Futrega et al. 2021
    blur_sigma: tuple[float, float] = (0.5, 1.5)  # Futrega et al. 2021
    brightness_prob: float = 0.15  # Futrega et al. 2021
    brightness: tuple[float, float] = (0.7, 1.3)  # Futrega et al. 2021
    contrast_prob: float = 0.15  # Futrega et al. 2021
    contrast: tuple[float, float] = (
        0.65,
        1.5,
    )  # Futrega et al. 2021: multiply, clip to original range
    channel_drop_prob: float = 0.0  # Henry et al. 2021 pipeline A: 0.16
    # Domain augmentations (bratseg.training.augment_domain); off unless a recipe turns them on.
    contrast_removal_prob: float = 0.0  # ET -> NCR with T1-like T1Gd (synthetic non-enhancing)
    contrast_removal_rim: int = 1  # voxels of rim around ET whose T1Gd is replaced too
    thick_slice_prob: float = 0.0  # simulated thick slices along one axis
    thick_slice_factor: tuple[float, float] = (1.5, 3.0)  # x network spacing (2 mm: 3-6 mm)
    bias_field_prob: float = 0.0  # smooth multiplicative field per channel
    bias_field_strength: float = 0.3  # polynomial coefficients ~ U(-s, s)
    gamma_prob: float = 0.0  # nnU-Net: gamma on min-max rescaled intensities, p = 0.3
    gamma: tuple[float, float] = (0.7, 1.5)  # nnU-Net's range
    series_standin_prob: float = 0.0  # one series replaced by its stand-in, as predict does

    def to_dict(self) -> dict[str, Any]:
        """Plain-type dict (JSON-able)."""
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> AugmentConfig:
        """Inverse of :meth:`to_dict` (strict: see :func:`bratseg.configdict.config_from_dict`)."""
        from bratseg.configdict import config_from_dict

        return config_from_dict(cls, data, "augment")


class RandModalityDropd(RandomizableTransform, MapTransform):
    """Set all voxels of one randomly chosen input channel to zero (Henry et al. 2021, pipeline A).

    MONAI and TorchIO have no channel drop-out transform, hence this small one.

    Args:
        keys: Keys of (C, X, Y, Z) arrays.
        prob: Probability of dropping one channel.
    """

    def __init__(self, keys: Sequence[Hashable] | Hashable, prob: float = 0.16) -> None:
        MapTransform.__init__(self, keys)
        RandomizableTransform.__init__(self, prob)
        self._channel = 0

    def randomize(self, n_channels: int) -> None:  # noqa: D102
        super().randomize(None)
        self._channel = int(self.R.randint(n_channels))

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:  # noqa: D102
        d = dict(data)
        first = d[self.first_key(d)]
        self.randomize(int(first.shape[0]))
        if not self._do_transform:
            return d
        for key in self.key_iterator(d):
            img = d[key].clone() if isinstance(d[key], torch.Tensor) else np.array(d[key])
            img[self._channel] = 0
            d[key] = img
        return d


def build_augmentation(
    config: AugmentConfig, patch: Sequence[int], *, has_extra: bool = False
) -> Compose:
    """The training pipeline: patch sampling, spatial then intensity augmentations.

    Args:
        config: Probabilities and ranges.
        patch: Patch size (x, y, z) in voxels.
        has_extra: Whether samples carry an ``"extra"`` channel block (spatial transforms only).

    Returns:
        A MONAI :class:`Compose`; its output may be a one-element list (MONAI's cropping
        convention); :func:`unwrap_sample` turns it into a dict.
    """
    patch = tuple(int(p) for p in patch)
    spatial = ["image", "label"] + (["extra"] if has_extra else [])
    modes_linear = ["bilinear", "nearest"] + (["nearest"] if has_extra else [])
    random_crop = RandSpatialCropd(keys=spatial, roi_size=patch, random_size=False)
    fg_crop = RandCropByPosNegLabeld(
        keys=spatial,
        label_key="label",
        spatial_size=patch,
        pos=1.0,
        neg=0.0,
        num_samples=1,
        fg_indices_key="fg_indices",
        bg_indices_key="bg_indices",
    )
    p_fg = float(config.foreground_prob)
    if p_fg <= 0:
        crop: Any = random_crop
    elif p_fg >= 1:
        crop = fg_crop
    else:
        # Futrega et al. 2021: a random patch, which with p=0.4 is guaranteed to
        # contain foreground.
        crop = OneOf([fg_crop, random_crop], weights=[p_fg, 1.0 - p_fg])
    transforms: list[Any] = [crop]
    if config.contrast_removal_prob > 0:
        transforms.append(
            RandContrastRemovald(prob=config.contrast_removal_prob, rim=config.contrast_removal_rim)
        )
    if config.zoom_prob > 0:
        transforms.append(
            RandZoomd(
                keys=spatial,
                prob=config.zoom_prob,
                min_zoom=config.zoom_range[0],
                max_zoom=config.zoom_range[1],
                mode=["trilinear", "nearest"] + (["nearest"] if has_extra else []),
                keep_size=True,
            )
        )
    if config.affine_prob > 0:
        rot = math.radians(config.rotate_deg)
        transforms.append(
            RandAffined(
                keys=spatial,
                prob=config.affine_prob,
                rotate_range=(rot, rot, rot),
                scale_range=(config.scale_range,) * 3,
                mode=modes_linear,
                padding_mode="zeros",
            )
        )
    if config.flip_prob > 0:
        transforms += [
            RandFlipd(keys=spatial, prob=config.flip_prob, spatial_axis=axis)
            for axis in config.flip_axes
        ]
    image = ["image"]
    if config.thick_slice_prob > 0:
        transforms.append(
            RandThickSliced(prob=config.thick_slice_prob, factor=config.thick_slice_factor)
        )
    if config.bias_field_prob > 0:
        transforms.append(
            RandBiasFieldd(prob=config.bias_field_prob, strength=config.bias_field_strength)
        )
    if config.gamma_prob > 0:
        transforms.append(
            RandAdjustContrastd(keys=image, prob=config.gamma_prob, gamma=config.gamma)
        )
    if config.intensity_scale_prob > 0:
        transforms.append(
            RandScaleIntensityd(
                keys=image,
                factors=config.intensity_scale,
                prob=config.intensity_scale_prob,
                channel_wise=True,
            )
        )
    if config.intensity_shift_prob > 0:
        transforms.append(
            RandStdShiftIntensityd(
                keys=image,
                factors=config.intensity_shift,
                prob=config.intensity_shift_prob,
                channel_wise=True,
            )
        )
    if config.noise_prob > 0:
        transforms.append(
            RandGaussianNoised(keys=image, prob=config.noise_prob, std=config.noise_std)
        )
    if config.blur_prob > 0:
        s = (float(config.blur_sigma[0]), float(config.blur_sigma[1]))
        transforms.append(
            RandGaussianSmoothd(keys=image, sigma_x=s, sigma_y=s, sigma_z=s, prob=config.blur_prob)
        )
    if config.brightness_prob > 0:
        lo, hi = config.brightness
        transforms.append(
            RandScaleIntensityd(
                keys=image, factors=(lo - 1.0, hi - 1.0), prob=config.brightness_prob
            )
        )
    if config.contrast_prob > 0:
        lo, hi = config.contrast
        transforms.append(
            RandScaleIntensityFixedMeand(
                keys=image,
                factors=(lo - 1.0, hi - 1.0),
                fixed_mean=True,
                preserve_range=True,
                prob=config.contrast_prob,
            )
        )
    if config.channel_drop_prob > 0:
        transforms.append(RandModalityDropd(keys=image, prob=config.channel_drop_prob))
    if config.series_standin_prob > 0:
        transforms.append(RandSeriesStandInd(prob=config.series_standin_prob))
    return Compose(transforms)


def unwrap_sample(sample: Any) -> dict[str, torch.Tensor]:
    """Plain ``{"image": (C,x,y,z) float32, "label": (1,x,y,z) uint8}`` from a pipeline output.

    ``"extra"`` channels, when present, are appended to the image channels; the case's
    ``"region_weights"`` (3,), when present, are kept as float32.
    """
    if isinstance(sample, list):
        sample = sample[0]
    image = _plain(sample["image"]).float()
    if "extra" in sample:
        image = torch.cat([image, _plain(sample["extra"]).float()], dim=0)
    label = _plain(sample["label"]).round().to(torch.uint8)
    out = {"image": image.contiguous(), "label": label.contiguous()}
    if "region_weights" in sample:
        out["region_weights"] = _plain(sample["region_weights"]).float()
    return out


def _plain(x: Any) -> torch.Tensor:
    """A plain torch tensor (MetaTensor unwrapped, numpy converted)."""
    if hasattr(x, "as_tensor"):
        return x.as_tensor()
    return torch.as_tensor(np.ascontiguousarray(x))


__all__ = ["AugmentConfig", "RandModalityDropd", "build_augmentation", "unwrap_sample"]
