"""Deterministic stand-in segmentation networks for tests, with an independent expected output.

The stand-ins are real registered architectures (``standin-regions``, ``standin-classes``) saved
and loaded as real bratseg checkpoints, so the engine, the CLI and the GUI run them exactly like a
trained model. Their network is one fixed convolution whose logits are linear in the z-scored
FLAIR and T1Gd channels (weights :data:`LOGIT_WEIGHTS`, biases :data:`LOGIT_BIAS`):

* regions (sigmoid): WT where FLAIR z >= 1.2, TC where T1Gd z >= 0.8, ET where T1Gd z >= 1.2;
* classes (softmax over background, NCR, ED, ET): background wins where FLAIR z < 1.2, ET wins
  over ED where T1Gd z > 1.2, NCR (a constant logit) never wins but adds to TC.

With ``shift=0`` the network is point-wise. With ``shift=1`` it is spatially asymmetric: every
voxel takes its logits from its ``+X`` neighbour (a 3x1x1 kernel with one non-zero tap, zero
padding), so flips and window borders change its output.

:func:`expected_region_probs` computes what the engine must return for a case, from the case's
image alone with plain NumPy: its own brain mask, z-score, brain box and the formula above. It
shares no code with :mod:`bratseg.preprocess` or :mod:`bratseg.inference`.

The architectures are registered only while a test module uses them (see the ``standin``
fixture in ``conftest.py``), so the registry tests still see the five seed architectures.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from bratseg.models.config import ModelConfig
from bratseg.models.registry import ARCHITECTURES, ArchitectureSpec, register

REGIONS_ARCH = "standin-regions"
CLASSES_ARCH = "standin-classes"
#: Channel order of a case image (``bratseg.io.MODALITIES``), written out independently.
T1, T1CE, T2, FLAIR = range(4)
#: Logit change per unit of z-score: probabilities go from 0.12 to 0.88 over one z unit.
SLOPE = 4.0
#: Logits = weights @ (t1, t1ce, t2, flair) z-scores + bias, per output channel.
LOGIT_WEIGHTS = {
    "regions": np.array(
        [
            [0, 0, 0, SLOPE],  # WT: FLAIR
            [0, SLOPE, 0, 0],  # TC: T1Gd
            [0, SLOPE, 0, 0],
        ]
    ),  # ET: T1Gd
    "classes": np.array(
        [
            [0, 0, 0, -SLOPE],  # background: low FLAIR
            [0, 0, 0, 0],  # NCR: constant
            [0, 0, 0, 0],  # ED: 0
            [0, SLOPE, 0, 0],
        ]
    ),  # ET: T1Gd
}
LOGIT_BIAS = {
    "regions": np.array([-SLOPE * 1.2, -SLOPE * 0.8, -SLOPE * 1.2]),
    "classes": np.array([SLOPE * 1.2, -1.0, 0.0, -SLOPE * 1.2]),
}
#: Postprocessing stored in the stand-in checkpoints (thresholds at 0.5, Futrega et al. 2021's ET rules).
POSTPROCESS = {
    "mode": "hierarchical",
    "wt_threshold": 0.5,
    "tc_threshold": 0.5,
    "et_threshold": 0.5,
    "et_component_rule": True,
}
#: Voxels of margin around the brain box (the engine's documented crop margin).
BOX_MARGIN = 2


@dataclass
class StandInRegionsConfig(ModelConfig):
    """Config of ``standin-regions``: ``shift`` 0 (point-wise) or 1 (looks at the +X neighbour)."""

    arch: ClassVar[str] = REGIONS_ARCH
    in_channels: int = 4
    out_channels: int = 3
    shift: int = 0

    @property
    def size_divisor(self) -> int:
        return 1


@dataclass
class StandInClassesConfig(StandInRegionsConfig):
    """Config of ``standin-classes`` (4 softmax logits: background, NCR, ED, ET)."""

    arch: ClassVar[str] = CLASSES_ARCH
    out_channels: int = 4


class StandInNet(nn.Module):
    """One convolution with the fixed weights of :data:`LOGIT_WEIGHTS` and :data:`LOGIT_BIAS`."""

    def __init__(self, config: StandInRegionsConfig) -> None:
        super().__init__()
        kind = "classes" if config.out_channels == 4 else "regions"
        shift = int(config.shift)
        if shift not in (0, 1):
            raise ValueError(f"shift must be 0 or 1, got {shift}")
        kernel = (3, 1, 1) if shift else (1, 1, 1)
        self.conv = nn.Conv3d(
            config.in_channels, config.out_channels, kernel, padding=(1, 0, 0) if shift else 0
        )
        with torch.no_grad():
            self.conv.weight.zero_()
            tap = 2 if shift else 0  # index 2 of a padded 3-tap kernel reads voxel x + 1
            self.conv.weight[:, :4, tap, 0, 0] = torch.tensor(
                LOGIT_WEIGHTS[kind], dtype=torch.float32
            )
            self.conv.bias.copy_(torch.tensor(LOGIT_BIAS[kind], dtype=torch.float32))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, X, Y, Z) -> logits (B, K, X, Y, Z)."""
        return self.conv(x)


def _spec(name: str, config: StandInRegionsConfig, kind: str) -> ArchitectureSpec:
    return ArchitectureSpec(
        name=name,
        paper="test stand-in (not a paper)",
        config_cls=type(config),
        output_kind=kind,
        in_channels=4,
        presets={"small": config, "tiny": config},
        default_postprocess=dict(POSTPROCESS),
        size_divisor=1,
        description="fixed linear map of FLAIR and T1Gd (tests only)",
        factory=StandInNet,
    )


@contextmanager
def registered() -> Iterator[None]:
    """Register both stand-in architectures for the duration of the block (idempotent)."""
    added = []
    for name, config, kind in (
        (REGIONS_ARCH, StandInRegionsConfig(), "regions"),
        (CLASSES_ARCH, StandInClassesConfig(), "classes"),
    ):
        if name not in ARCHITECTURES:
            register(_spec(name, config, kind))
            added.append(name)
    try:
        yield
    finally:
        for name in added:
            ARCHITECTURES.pop(name, None)


def save_standin(
    path: Path,
    kind: str = "regions",
    shift: int = 0,
    target_spacing: float | None = None,
    postprocess: dict[str, Any] | None = None,
) -> Path:
    """Write a stand-in checkpoint (the architectures must be registered).

    Args:
        path: Destination ``.pt`` file.
        kind: ``"regions"`` or ``"classes"``.
        shift: 0 point-wise, 1 asymmetric (+X neighbour).
        target_spacing: Preprocessing resolution; ``None`` keeps the source grid.
        postprocess: Postprocessing defaults of the checkpoint (default :data:`POSTPROCESS`).
    """
    from bratseg.checkpoint import save_checkpoint

    config = (StandInClassesConfig if kind == "classes" else StandInRegionsConfig)(shift=shift)
    return save_checkpoint(
        path,
        StandInNet(config),
        arch=CLASSES_ARCH if kind == "classes" else REGIONS_ARCH,
        config=config,
        postprocess=dict(postprocess or POSTPROCESS),
        preprocess={"target_spacing": target_spacing},
        provenance={"note": "deterministic stand-in for tests"},
    )


# --------------------------------------------------------------------------- expected output


def default_prob_atol() -> float:
    """How close the engine's probabilities come to the formulas here with its default
    precision: 1e-3 (float16 storage), or 0.05 on a CPU that computes bfloat16 natively, where
    mixed precision runs the network in bfloat16 (8 bits of mantissa). Geometry errors (a shifted
    grid, an un-flipped TTA pass) are of the order of the probabilities themselves."""
    from bratseg.inference.device import cpu_has_native_bfloat16

    return 0.05 if cpu_has_native_bfloat16() else 1e-3


def zscored(image: np.ndarray, brain: np.ndarray) -> np.ndarray:
    """Per-channel z-score over the ``brain`` voxels (any channel non-zero), 0 elsewhere.

    Returns:
        float32 (C, X, Y, Z) (statistics in float64).
    """
    z = np.zeros(image.shape, dtype=np.float32)
    for c in range(image.shape[0]):
        values = image[c][brain].astype(np.float64)
        z[c][brain] = (values - values.mean()) / values.std()
    return z


def brain_box(brain: np.ndarray, margin: int = BOX_MARGIN) -> tuple[slice, slice, slice]:
    """Bounding box of ``brain`` grown by ``margin`` voxels (clipped to the volume)."""
    box = []
    for axis in range(3):
        idx = np.flatnonzero(brain.any(axis=tuple(a for a in range(3) if a != axis)))
        box.append(slice(max(0, idx[0] - margin), min(brain.shape[axis], idx[-1] + 1 + margin)))
    return tuple(box)  # type: ignore[return-value]


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(axis=0, keepdims=True))
    return e / e.sum(axis=0, keepdims=True)


def _shift_x(z: np.ndarray, step: int) -> np.ndarray:
    """``out[:, i] = z[:, i + step]`` along X, zero where ``i + step`` leaves the array."""
    out = np.zeros_like(z)
    if step > 0:
        out[:, :-step] = z[:, step:]
    elif step < 0:
        out[:, -step:] = z[:, :step]
    else:
        out[:] = z
    return out


def _logits(z: np.ndarray, kind: str) -> np.ndarray:
    """Logits of the point-wise stand-in on z-scored channels (K, ...)."""
    weights = LOGIT_WEIGHTS[kind].astype(np.float32)
    bias = LOGIT_BIAS[kind].astype(np.float32)
    return np.tensordot(weights, z, axes=1) + bias[:, None, None, None]


def _region_probs(z: np.ndarray, kind: str) -> np.ndarray:
    """Region probabilities (WT, TC, ET) of the point-wise stand-in on z-scored channels."""
    logits = _logits(z, kind)
    if kind == "regions":
        return _sigmoid(logits)
    p = _softmax(logits)  # background, NCR, ED, ET
    return np.stack([1.0 - p[0], p[1] + p[3], p[3]])


def _boxed(image: np.ndarray) -> tuple[np.ndarray, tuple[slice, slice, slice]]:
    """z-scored channels inside the brain box (one voxel of zeros added before and after X)."""
    brain = np.any(image != 0, axis=0)
    box = brain_box(brain)
    z = zscored(image[(slice(None), *box)], brain[box])  # every brain voxel is inside the box
    return np.pad(z, [(0, 0), (1, 1), (0, 0), (0, 0)]), box


def expected_class_probs(image: np.ndarray) -> np.ndarray:
    """Class probabilities (background, NCR, ED, ET) of point-wise ``standin-classes``."""
    z, box = _boxed(image)
    out = np.zeros((4, *image.shape[1:]), dtype=np.float32)
    out[0] = 1.0  # background is certain outside the brain box
    out[(slice(None), *box)] = _softmax(_logits(z[:, 1:-1], "classes"))
    return out


def expected_region_probs(
    image: np.ndarray, kind: str = "regions", shift: int = 0, tta: bool = False
) -> np.ndarray:
    """What the engine must return for a stand-in on ``image`` at the source resolution.

    Args:
        image: (4, X, Y, Z) case image (T1, T1Gd, T2, FLAIR).
        kind: ``"regions"`` or ``"classes"`` (region probabilities derived from the classes).
        shift: The stand-in's shift (0 point-wise, 1 +X neighbour).
        tta: Eight-flip test-time augmentation: a flip along X turns the +X neighbour into the
            -X one once flipped back, the Y and Z flips change nothing, so the average is half
            the +X and half the -X output.

    Returns:
        float32 (3, X, Y, Z): the probabilities inside the brain box, 0 outside it. The box's
        margin keeps brain voxels away from its faces, so the zeros around it are the
        neighbours the network sees there (its zero padding).
    """
    z, box = _boxed(image)
    if shift and tta:
        probs = 0.5 * (
            _region_probs(_shift_x(z, shift), kind) + _region_probs(_shift_x(z, -shift), kind)
        )
    else:
        probs = _region_probs(_shift_x(z, shift), kind)
    out = np.zeros((3, *image.shape[1:]), dtype=np.float32)
    out[(slice(None), *box)] = probs[:, 1:-1]
    return out


def box_mask(image: np.ndarray) -> np.ndarray:
    """Boolean (X, Y, Z) mask of the brain box of ``image``."""
    brain = np.any(image != 0, axis=0)
    mask = np.zeros(brain.shape, dtype=bool)
    mask[brain_box(brain)] = True
    return mask
