"""Fast validation during training: Dice per region on cached validation crops.

Validation predicts as ``napari-brats predict`` does, at the training resolution on the
preprocessed crop: the same forward pass (:func:`bratseg.inference.window.forward_probabilities`:
whole volume when it fits, else a Gaussian-weighted sliding window with the same window limits and
overlap), the same probabilities (sigmoid regions, or class softmax summed into regions) and the
same hierarchical thresholds (:func:`bratseg.postprocess.hierarchical_masks` with the model's
:class:`~bratseg.postprocess.PostprocessConfig`). The ET rules are left out: their sizes are in
1 mm voxels and validation runs at the training resolution. The masks are compared with the
cached label map by :func:`bratseg.metrics.dice_regions`.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from bratseg.inference.device import describe_device
from bratseg.inference.window import ForwardPlan, forward_probabilities
from bratseg.labels import CLASSES, REGION_TISSUES, REGIONS
from bratseg.metrics import dice_regions
from bratseg.postprocess import PostprocessConfig, class_probs_to_region_probs, hierarchical_masks
from bratseg.training.data import CachedCase

logger = logging.getLogger(__name__)


def reference_regions(label: np.ndarray) -> np.ndarray:
    """Region masks (3, X, Y, Z) from a class-index map (X, Y, Z)."""
    return np.stack(
        [np.isin(label, [CLASSES.index(t) for t in REGION_TISSUES[r]]) for r in REGIONS]
    )


@torch.no_grad()
def validate(
    model: torch.nn.Module,
    cases: Sequence[CachedCase],
    *,
    output_kind: str,
    device: torch.device,
    postprocess: PostprocessConfig,
    divisor: int = 16,
    amp: bool = False,
) -> dict[str, Any]:
    """Dice per region, averaged over ``cases``.

    Args:
        model: The network (switched to eval mode for the call, restored after).
        cases: Cached validation crops (image already padded to the size divisor).
        output_kind: ``"regions"`` or ``"classes"``.
        device: Compute device.
        postprocess: The model's postprocessing (its WT/TC/ET thresholds are used).
        divisor: The network's size divisor (sliding-window edges are multiples of it).
        amp: Autocast on CUDA.

    Returns:
        ``{"wt": float, "tc": float, "et": float, "mean": float, "per_case": {id: [wt, tc, et]}}``.
    """
    was_training = model.training
    model.eval()
    plan = ForwardPlan(device=device, description=describe_device(device), amp=amp)
    scores = []
    per_case: dict[str, list[float]] = {}
    try:
        for case in cases:
            x = torch.from_numpy(case.image.astype(np.float32))[None]
            probs = forward_probabilities(model, x, plan, output_kind=output_kind, divisor=divisor)[
                0
            ].numpy()
            if output_kind == "classes":
                probs = class_probs_to_region_probs(probs)
            masks = np.stack(hierarchical_masks(probs, postprocess))
            dice = dice_regions(masks, reference_regions(case.label))
            per_case[case.case_id] = [float(d) for d in dice]
            scores.append(dice)
    finally:
        model.train(was_training)
    mean = np.mean(scores, axis=0) if scores else np.full(len(REGIONS), np.nan)
    out: dict[str, Any] = {r: float(v) for r, v in zip(REGIONS, mean)}
    out["mean"] = float(np.mean(mean))
    out["per_case"] = per_case
    return out
