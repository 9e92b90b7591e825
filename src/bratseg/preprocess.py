"""Network input preparation with an exact inverse.

Pipeline (Jiang et al. 2020; Futrega et al. 2021):

1. **Crop to the brain box.** The background of a skull-stripped scan is usually exactly 0, but
   after some brain-extraction tools it is a constant negative value (or any other constant).
   The background value of each channel is taken as the most frequent value on the volume's
   border faces (which is almost always background); a voxel belongs to the brain when at
   least one channel differs from its background value. This also works for zero background.
   Before it, **optional N4 bias-field correction** of each channel, fitted inside the brain
   on the whole image (:mod:`bratseg.bias_field`; a model asks for it with ``bias_correction``).
2. **Per-channel z-score over brain voxels** (Jiang et al. 2020; Futrega et al. 2021); background voxels are set to 0
   (Futrega et al. 2021: "the background voxels were not normalized so that their value remained at zero").
3. **Optional one-hot foreground channel** (Futrega et al. 2021): 1 on brain voxels, 0 elsewhere, stacked
   as a 5th channel.
4. **Optional resampling** to ``target_spacing`` mm (trilinear for images). Probabilities are
   resampled back to the crop size with trilinear interpolation, labels with nearest neighbour.
5. **Pad** (zeros, at the end of each axis) to a multiple of ``pad_multiple``.

:func:`invert_probabilities` / :func:`invert_labels` undo 5, 4 and 1: without resampling, a
crop/pad round trip is voxel-exact, everything outside the brain box is 0.
"""

from __future__ import annotations

import logging
import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from bratseg.components import bounding_box
from bratseg.errors import BratsInputError

logger = logging.getLogger(__name__)

#: Voxels of margin kept around the brain box (cheap context for the network border).
DEFAULT_MARGIN = 2


@dataclass
class PreprocessConfig:
    """How a model wants its input; stored in checkpoints as ``meta["preprocess"]``.

    Attributes:
        target_spacing: Isotropic spacing in mm to resample to, or ``None`` to keep the source grid.
        foreground_channel: Append the one-hot brain mask as an extra channel (Futrega et al. 2021).
        pad_multiple: Pad every spatial axis to a multiple of this (the network's size divisor).
        crop: Crop to the brain bounding box.
        normalize: Per-channel z-score over brain voxels (Jiang et al. 2020; Futrega et al. 2021).
        margin: Voxels kept around the brain box when cropping.
        bias_correction: Divide each channel by its N4 bias field, fitted inside the brain
            (:func:`bratseg.bias_field.correct_channels`), before normalising.
    """

    target_spacing: float | None = None
    foreground_channel: bool = False
    pad_multiple: int = 16
    crop: bool = True
    normalize: bool = True
    margin: int = DEFAULT_MARGIN
    bias_correction: bool = False

    def to_dict(self) -> dict[str, Any]:
        """Plain-type dict (safe for ``torch.load(weights_only=True)``)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> PreprocessConfig:
        """Build from a dict (strict: see :func:`bratseg.configdict.config_from_dict`)."""
        from bratseg.configdict import config_from_dict

        cfg = config_from_dict(cls, data, "preprocessing")
        if cfg.target_spacing is not None:
            cfg.target_spacing = float(cfg.target_spacing)
            if cfg.target_spacing <= 0:
                raise BratsInputError(f"target_spacing must be > 0, got {cfg.target_spacing}")
        cfg.pad_multiple = max(1, int(cfg.pad_multiple))
        cfg.margin = max(0, int(cfg.margin))
        cfg.bias_correction = bool(cfg.bias_correction)
        return cfg


@dataclass
class PreprocessInfo:
    """Everything needed to map network outputs back to the source grid.

    Attributes:
        original_shape: Source spatial shape (X, Y, Z).
        bbox: Brain box as ``((x0, x1), (y0, y1), (z0, z1))`` half-open in source voxels.
        cropped_shape: Shape of the crop (x1-x0, ...).
        resampled_shape: Crop shape after resampling (== cropped_shape without resampling).
        padded_shape: Final network input spatial shape.
        pad: Voxels of padding appended at the end of each axis.
        spacing: Source spacing (mm).
        target_spacing: Resampling target or ``None``.
        channel_mean, channel_std: Normalisation statistics per input channel (empty when off).
    """

    original_shape: tuple[int, int, int]
    bbox: tuple[tuple[int, int], tuple[int, int], tuple[int, int]]
    cropped_shape: tuple[int, int, int]
    resampled_shape: tuple[int, int, int]
    padded_shape: tuple[int, int, int]
    pad: tuple[int, int, int]
    spacing: tuple[float, float, float]
    target_spacing: float | None = None
    channel_mean: list[float] = field(default_factory=list)
    channel_std: list[float] = field(default_factory=list)

    @property
    def slices(self) -> tuple[slice, slice, slice]:
        """The brain box as slices into the source grid."""
        return tuple(slice(a, b) for a, b in self.bbox)  # type: ignore[return-value]

    @property
    def resampled(self) -> bool:
        """Whether the crop was resampled."""
        return self.resampled_shape != self.cropped_shape


def background_values(image: np.ndarray) -> np.ndarray:
    """Per-channel background value: the most frequent value on the volume's border faces.

    Args:
        image: (C, X, Y, Z) array.

    Returns:
        float32 array (C,).
    """
    out = np.empty(image.shape[0], dtype=np.float32)
    for c, chan in enumerate(image):
        faces = np.concatenate(
            [
                chan[0].ravel(),
                chan[-1].ravel(),
                chan[:, 0].ravel(),
                chan[:, -1].ravel(),
                chan[:, :, 0].ravel(),
                chan[:, :, -1].ravel(),
            ]
        )
        values, counts = np.unique(faces, return_counts=True)
        out[c] = values[np.argmax(counts)]
    return out


def brain_mask(image: np.ndarray) -> np.ndarray:
    """Brain voxels: at least one channel differs from its background value.

    Args:
        image: (C, X, Y, Z) array.

    Returns:
        bool (X, Y, Z).
    """
    bg = background_values(image)
    mask = np.zeros(image.shape[1:], dtype=bool)
    for c, chan in enumerate(image):
        mask |= chan != bg[c]
    return mask


def _mask_bbox(mask: np.ndarray, margin: int) -> tuple[slice, slice, slice]:
    """:func:`bratseg.components.bounding_box` of a 3-D mask; the whole volume when it is empty."""
    box = bounding_box(mask, pad=margin) or tuple(slice(0, s) for s in mask.shape)
    x, y, z = box
    return x, y, z


def brain_bbox(image: np.ndarray, margin: int = DEFAULT_MARGIN) -> tuple[slice, slice, slice]:
    """Bounding box of the brain (see :func:`brain_mask`), grown by ``margin`` voxels.

    Args:
        image: (C, X, Y, Z) array; background may be any constant per channel.
        margin: Voxels added on each side (clipped to the volume).

    Returns:
        Three slices into (X, Y, Z); the whole volume when no brain voxel is found.
    """
    return _mask_bbox(brain_mask(image), margin)


def resampled_shape(
    shape: tuple[int, ...], spacing: tuple[float, ...], target: float | None
) -> tuple[int, int, int]:
    """Shape of a grid of ``shape`` voxels at ``spacing`` mm resampled to ``target`` mm."""
    if target is None:
        return tuple(int(s) for s in shape)  # type: ignore[return-value]
    return tuple(max(1, int(round(s * float(sp) / target))) for s, sp in zip(shape, spacing))  # type: ignore[return-value]


def _interpolate(array: np.ndarray, size: tuple[int, int, int], mode: str) -> np.ndarray:
    """Resize (C, x, y, z) float array to (C, *size) with torch (multi-threaded, float32)."""
    t = torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32))[None]
    kwargs = {"align_corners": False} if mode == "trilinear" else {}
    with torch.no_grad():
        out = F.interpolate(t, size=tuple(int(s) for s in size), mode=mode, **kwargs)
    return out[0].numpy()


def preprocess_image(
    image: np.ndarray,
    *,
    spacing: tuple[float, float, float] = (1.0, 1.0, 1.0),
    target_spacing: float | None = None,
    crop: bool = True,
    normalize: bool = True,
    foreground_channel: bool = False,
    pad_multiple: int = 16,
    margin: int = DEFAULT_MARGIN,
    bias_correction: bool = False,
) -> tuple[np.ndarray, PreprocessInfo]:
    """Turn a case image into network input.

    Args:
        image: float32 (C, X, Y, Z), channels in ``bratseg.io.MODALITIES`` order.
        spacing: Source voxel spacing (mm).
        target_spacing: Isotropic mm to resample to, or ``None``.
        crop: Crop to :func:`brain_bbox`.
        normalize: Z-score each channel over brain voxels, background -> 0.
        foreground_channel: Append the brain mask as channel C+1 (Futrega et al. 2021).
        pad_multiple: Pad each axis (at its end) to a multiple of this.
        margin: Voxels kept around the brain box.
        bias_correction: N4-correct each channel (fitted inside the brain, on the whole image)
            before cropping and normalising (:func:`bratseg.bias_field.correct_channels`).

    Returns:
        ``(x, info)``: x float32 (C or C+1, x, y, z) and the :class:`PreprocessInfo` to invert it.
    """
    image = np.asarray(image)
    if image.ndim != 4:
        raise BratsInputError(f"expected an image of shape (C, X, Y, Z), got {image.shape}")
    original_shape = tuple(int(s) for s in image.shape[1:])
    mask = brain_mask(image)
    if bias_correction:
        # On the whole field of view, not the crop: N4's B-spline mesh spans the image it is
        # given, and on the tighter crop it is fine enough to take large tumours for field.
        from bratseg.bias_field import correct_channels

        image = correct_channels(image, mask, spacing)
    box = _mask_bbox(mask, margin) if crop else tuple(slice(0, s) for s in original_shape)
    sub = image[(slice(None),) + tuple(box)]
    mask = mask[box]
    channels = []
    means: list[float] = []
    stds: list[float] = []
    n_brain = int(mask.sum())
    for chan in sub:
        chan = chan.astype(np.float32, copy=True)
        if normalize:
            vals = chan[mask] if n_brain else chan.ravel()
            mean = float(vals.mean(dtype=np.float64)) if vals.size else 0.0
            std = float(vals.std(dtype=np.float64)) if vals.size else 1.0
            std = std if std > 1e-8 else 1.0
            chan -= mean
            chan /= std
            if n_brain:
                chan[~mask] = 0.0  # Futrega et al. 2021: background stays zero
            means.append(mean)
            stds.append(std)
        channels.append(chan)
    if foreground_channel:
        channels.append(mask.astype(np.float32))
    x = np.stack(channels)
    del channels
    cropped_shape = tuple(int(s) for s in x.shape[1:])
    new_shape = resampled_shape(cropped_shape, spacing, target_spacing)
    if new_shape != cropped_shape:
        x = _interpolate(x, new_shape, "trilinear")
    m = max(1, int(pad_multiple))
    pad = tuple((-s) % m for s in new_shape)
    if any(pad):
        x = np.pad(x, [(0, 0)] + [(0, p) for p in pad])
    info = PreprocessInfo(
        original_shape=original_shape,  # type: ignore[arg-type]
        bbox=tuple((s.start, s.stop) for s in box),  # type: ignore[arg-type]
        cropped_shape=cropped_shape,  # type: ignore[arg-type]
        resampled_shape=new_shape,
        padded_shape=tuple(int(s) for s in x.shape[1:]),  # type: ignore[arg-type]
        pad=pad,  # type: ignore[arg-type]
        spacing=tuple(float(s) for s in spacing),  # type: ignore[arg-type]
        target_spacing=target_spacing,
        channel_mean=means,
        channel_std=stds,
    )
    logger.debug(
        "preprocess: %s -> crop %s -> %s (pad %s)",
        original_shape,
        cropped_shape,
        info.padded_shape,
        pad,
    )
    return np.ascontiguousarray(x, dtype=np.float32), info


def preprocess_with_config(
    image: np.ndarray, spacing: tuple[float, float, float], config: PreprocessConfig
) -> tuple[np.ndarray, PreprocessInfo]:
    """:func:`preprocess_image` driven by a :class:`PreprocessConfig`."""
    return preprocess_image(
        image,
        spacing=spacing,
        target_spacing=config.target_spacing,
        crop=config.crop,
        normalize=config.normalize,
        foreground_channel=config.foreground_channel,
        pad_multiple=config.pad_multiple,
        margin=config.margin,
        bias_correction=config.bias_correction,
    )


def _unpad(array: np.ndarray, info: PreprocessInfo) -> np.ndarray:
    expected = tuple(info.padded_shape)
    if tuple(array.shape[-3:]) != expected:
        raise ValueError(
            f"prediction shape {array.shape[-3:]} does not match network input {expected}"
        )
    rx, ry, rz = info.resampled_shape
    return array[..., :rx, :ry, :rz]


def invert_probabilities(
    probs: np.ndarray,
    info: PreprocessInfo,
    dtype: Any = np.float32,
    fill: float | tuple[float, ...] = 0.0,
) -> np.ndarray:
    """Put (K, x, y, z) network-grid probabilities back into the source grid.

    Padding is removed, resampling undone with trilinear interpolation to the crop size, and the
    crop placed in a volume holding ``fill`` outside the brain box.

    Args:
        probs: (K, *info.padded_shape) array.
        info: From :func:`preprocess_image`.
        dtype: Output dtype.
        fill: Value outside the brain box, one for all channels or one per channel (e.g.
            ``(1, 0, 0, 0)`` for class probabilities: background is certain there).

    Returns:
        (K, *info.original_shape) array.
    """
    core = torch.from_numpy(np.ascontiguousarray(_unpad(np.asarray(probs), info)))
    if info.resampled:
        with torch.no_grad():
            core = F.interpolate(
                core.float()[None],
                size=tuple(info.cropped_shape),
                mode="trilinear",
                align_corners=False,
            )[0]
    # torch converts float32 -> float16 several times faster than numpy, and multi-threaded
    out = torch.empty((core.shape[0], *info.original_shape), dtype=_torch_dtype(dtype))
    fills = np.broadcast_to(np.asarray(fill, dtype=np.float64), (core.shape[0],))
    for k in range(core.shape[0]):
        out[k].fill_(float(fills[k]))
    out[(slice(None),) + tuple(info.slices)] = core
    return out.numpy()


def _torch_dtype(dtype: Any) -> torch.dtype:
    return torch.from_numpy(np.zeros(0, dtype=np.dtype(dtype))).dtype


def invert_labels(labels: np.ndarray, info: PreprocessInfo) -> np.ndarray:
    """Put an (x, y, z) network-grid label map back into the source grid (nearest neighbour).

    Args:
        labels: Integer (*info.padded_shape) array.
        info: From :func:`preprocess_image`.

    Returns:
        (*info.original_shape) array of the same dtype, 0 outside the brain box; voxel-exact
        inside it when no resampling was done.
    """
    labels = np.asarray(labels)
    core = _unpad(labels, info)
    if info.resampled:
        t = torch.from_numpy(np.ascontiguousarray(core).astype(np.float32))[None, None]
        core = F.interpolate(t, size=tuple(info.cropped_shape), mode="nearest-exact")[0, 0].numpy()
        core = core.astype(labels.dtype)
    out = np.zeros(info.original_shape, dtype=labels.dtype)
    out[info.slices] = core
    return out


def effective_pad_multiple(config: PreprocessConfig, size_divisor: int) -> int:
    """Least common multiple of the config's pad multiple and a network's size divisor."""
    return math.lcm(max(1, int(config.pad_multiple)), max(1, int(size_divisor)))
