"""Augmentations for what the clinic sends and BraTS lacks: missing enhancement, thick slices,
bias fields.

Three MONAI-style dictionary transforms (``"image"`` (M, X, Y, Z) float, ``"label"`` (1, X, Y, Z)
class indices of :data:`bratseg.labels.CLASSES`), each drawing from its own random state so the
pipeline stays reproducible and resumable (see :mod:`bratseg.training.augment`):

- :class:`RandContrastRemovald` makes a non-enhancing tumour out of an enhancing one: inside the
  enhancing tumour and a thin rim, T1Gd is replaced by the T1 signal mapped onto T1Gd's
  intensities (a linear fit on the patch's non-tumour voxels), and ET becomes necrosis /
  non-enhancing core. A tumour without contrast uptake looks on T1Gd as it does on T1; so the
  network learns that ET needs enhancement, not only a ring shape. No training case without
  enhancement existed before the BraTS 2023 releases; this is how the rule gets examples.
- :class:`RandThickSliced` simulates thick slices along one axis (area-average down, linear up),
  as nnU-Net's low-resolution simulation and SynthSeg's resolution randomisation do; clinical
  scans come with 3-6 mm slices.
- :class:`RandBiasFieldd` multiplies each channel by a smooth random field (exponential of a
  quadratic polynomial), as receive-coil inhomogeneity does; applied above each channel's
  minimum so that z-scored background stays background.
- :class:`RandSeriesStandInd` takes one series away as ``predict`` does for a case that lacks
  it: its stand-in (:data:`bratseg.io.channels.SUBSTITUTES`; FLAIR <-> T2, T1 <-> T1Gd) is
  copied into its channel, and without T1Gd ET becomes NCR (nothing shows enhancement), so the
  network learns to segment what such a case shows.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from monai.transforms import MapTransform, RandomizableTransform

from bratseg.io.channels import MODALITIES, SUBSTITUTES
from bratseg.labels import CLASSES

#: Class indices of the training labels.
_ET = CLASSES.index("et")
_NCR = CLASSES.index("ncr")
#: Channel indices of T1 and T1Gd in the network input (the default series order).
T1_CHANNEL = MODALITIES.index("t1")
T1CE_CHANNEL = MODALITIES.index("t1ce")
#: Fewest non-tumour voxels for the T1 -> T1Gd intensity fit; below it, mean/std matching.
_MIN_FIT_VOXELS = 200


def _as_tensor(x: Any) -> torch.Tensor:
    return x.as_tensor() if hasattr(x, "as_tensor") else torch.as_tensor(np.asarray(x))


def _put_back(template: Any, value: torch.Tensor) -> Any:
    """``value`` in the container type of ``template`` (MetaTensor, tensor or ndarray)."""
    if isinstance(template, np.ndarray):
        return value.numpy().astype(template.dtype, copy=False)
    if hasattr(template, "as_tensor"):
        out = template.clone()
        out.data = value.to(template.dtype)
        return out
    return value.to(template.dtype)


class RandContrastRemovald(RandomizableTransform, MapTransform):
    """Take the contrast agent away: ET and its rim get T1-like T1Gd, and ET becomes NCR.

    Args:
        prob: Probability per sample (applied only when the patch holds ET).
        rim: Voxels of rim around ET whose T1Gd is replaced too (the enhancing boundary).
        t1_channel, t1ce_channel: Channel indices of T1 and T1Gd in ``"image"``.
    """

    def __init__(
        self,
        prob: float = 0.1,
        rim: int = 1,
        t1_channel: int = T1_CHANNEL,
        t1ce_channel: int = T1CE_CHANNEL,
    ) -> None:
        MapTransform.__init__(self, ["image", "label"])
        RandomizableTransform.__init__(self, prob)
        self.rim = int(rim)
        self.t1_channel = int(t1_channel)
        self.t1ce_channel = int(t1ce_channel)

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:  # noqa: D102
        d = dict(data)
        self.randomize(None)
        if not self._do_transform:
            return d
        label = _as_tensor(d["label"])
        et = label[0] == _ET
        if not bool(et.any()):
            return d
        image = _as_tensor(d["image"]).clone().float()
        t1, t1ce = image[self.t1_channel], image[self.t1ce_channel]
        region = et
        if self.rim > 0:
            k = 2 * self.rim + 1
            region = F.max_pool3d(et[None, None].float(), k, stride=1, padding=self.rim)[0, 0] > 0
        reference = (label[0] == 0) & (image.abs().sum(0) > 0)
        a, b = _linear_fit(t1[reference], t1ce[reference])
        t1ce[region] = a * t1[region] + b
        new_label = label.clone()
        new_label[0][et] = _NCR
        d["image"] = _put_back(d["image"], image)
        d["label"] = _put_back(d["label"], new_label)
        return d


def _linear_fit(x: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
    """Least-squares ``y ~ a x + b``; mean/std matching when there are too few voxels."""
    if x.numel() < _MIN_FIT_VOXELS:
        sx, sy = float(x.std()) if x.numel() > 1 else 1.0, float(y.std()) if y.numel() > 1 else 1.0
        a = sy / sx if sx > 1e-6 else 1.0
        return a, (float(y.mean()) - a * float(x.mean())) if x.numel() else 0.0
    xm, ym = x.mean(), y.mean()
    var = float(((x - xm) ** 2).mean())
    a = float(((x - xm) * (y - ym)).mean()) / var if var > 1e-6 else 1.0
    return a, float(ym - a * xm)


class RandThickSliced(RandomizableTransform, MapTransform):
    """Simulate slices ``factor`` times thicker along one random axis (image only).

    Args:
        prob: Probability per sample.
        factor: Range of the thickness factor (at 2 mm network spacing, 1.5-3 is 3-6 mm).
        axes: Axes to choose from (0, 1, 2 of X, Y, Z).
    """

    def __init__(
        self,
        prob: float = 0.2,
        factor: tuple[float, float] = (1.5, 3.0),
        axes: tuple[int, ...] = (0, 1, 2),
    ) -> None:
        MapTransform.__init__(self, ["image"])
        RandomizableTransform.__init__(self, prob)
        self.factor = (float(factor[0]), float(factor[1]))
        self.axes = tuple(int(a) for a in axes)
        self._axis, self._f = 2, 1.0

    def randomize(self, data: Any = None) -> None:  # noqa: D102
        super().randomize(None)
        self._axis = self.axes[int(self.R.randint(len(self.axes)))]
        self._f = float(self.R.uniform(*self.factor))

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:  # noqa: D102
        d = dict(data)
        self.randomize()
        if not self._do_transform:
            return d
        image = _as_tensor(d["image"]).float()
        size = list(image.shape[1:])
        low = list(size)
        low[self._axis] = max(1, round(size[self._axis] / self._f))
        thick = F.interpolate(image[None], size=low, mode="area")
        back = F.interpolate(thick, size=size, mode="trilinear", align_corners=False)[0]
        d["image"] = _put_back(d["image"], back)
        return d


class RandBiasFieldd(RandomizableTransform, MapTransform):
    """Multiply each channel, above its minimum, by ``exp`` of a random quadratic polynomial.

    Args:
        prob: Probability per sample.
        strength: Coefficients are drawn from U(-strength, strength) (0.3: about +-35 %).
    """

    def __init__(self, prob: float = 0.2, strength: float = 0.3) -> None:
        MapTransform.__init__(self, ["image"])
        RandomizableTransform.__init__(self, prob)
        self.strength = float(strength)
        self._coeffs = np.zeros((1, 10))

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:  # noqa: D102
        d = dict(data)
        image = _as_tensor(d["image"]).float()
        super().randomize(None)
        self._coeffs = self.R.uniform(-self.strength, self.strength, size=(image.shape[0], 10))
        if not self._do_transform:
            return d
        grids = torch.meshgrid(
            *[torch.linspace(-1.0, 1.0, n) for n in image.shape[1:]], indexing="ij"
        )
        x, y, z = grids
        terms = torch.stack([x, y, z, x * x, y * y, z * z, x * y, x * z, y * z, torch.ones_like(x)])
        out = image.clone()
        for c in range(image.shape[0]):
            coeff = torch.as_tensor(self._coeffs[c], dtype=torch.float32)
            field = torch.exp(torch.tensordot(coeff, terms, dims=1))
            floor = image[c].min()
            out[c] = floor + (image[c] - floor) * field
        d["image"] = _put_back(d["image"], out)
        return d


class RandSeriesStandInd(RandomizableTransform, MapTransform):
    """Replace one random series by its stand-in, as a case lacking it is predicted.

    Args:
        prob: Probability per sample.
        series: The series that may go missing (default all four, each equally likely).
    """

    def __init__(self, prob: float = 0.1, series: tuple[str, ...] = MODALITIES) -> None:
        MapTransform.__init__(self, ["image", "label"])
        RandomizableTransform.__init__(self, prob)
        self.series = tuple(series)
        self._missing = self.series[0]

    def randomize(self, data: Any = None) -> None:  # noqa: D102
        super().randomize(None)
        self._missing = self.series[int(self.R.randint(len(self.series)))]

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:  # noqa: D102
        d = dict(data)
        self.randomize()
        if not self._do_transform:
            return d
        image = _as_tensor(d["image"]).clone().float()
        missing = MODALITIES.index(self._missing)
        image[missing] = image[MODALITIES.index(SUBSTITUTES[self._missing])]
        d["image"] = _put_back(d["image"], image)
        if self._missing == "t1ce":
            label = _as_tensor(d["label"]).clone()
            label[0][label[0] == _ET] = _NCR
            d["label"] = _put_back(d["label"], label)
        return d
