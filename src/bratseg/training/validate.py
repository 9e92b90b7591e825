"""Fast validation during training: Dice per region on cached validation crops.

Inference runs at the training resolution on the preprocessed crop (whole crop in one forward
pass when it is small enough, MONAI sliding window otherwise), region probabilities are
thresholded hierarchically (WT, then TC inside WT, then ET inside TC; Ashtari et al. 2021), and compared
with the cached label map by :func:`bratseg.metrics.dice_regions`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any, cast

import numpy as np
import torch
from monai.inferers import sliding_window_inference

from bratseg.labels import CLASSES, REGION_TISSUES, REGIONS
from bratseg.metrics import dice_regions
from bratseg.training.data import CachedCase

logger = logging.getLogger(__name__)

#: Crops up to this many voxels are predicted in one forward pass.
WHOLE_CROP_MAX_VOXELS = 160 * 192 * 160

#: Default hierarchical thresholds (Futrega et al. 2021).
DEFAULT_THRESHOLDS = {"wt": 0.45, "tc": 0.40, "et": 0.45}


def region_probabilities(logits: torch.Tensor, output_kind: str) -> torch.Tensor:
    """(B, 3, X, Y, Z) WT/TC/ET probabilities from region logits (sigmoid) or class logits
    (softmax, then sums of the tissues of each region)."""
    if output_kind == "regions":
        return torch.sigmoid(logits.float())
    probs = torch.softmax(logits.float(), dim=1)
    return torch.stack(
        [
            cast(torch.Tensor, sum(probs[:, CLASSES.index(t)] for t in REGION_TISSUES[r]))
            for r in REGIONS
        ],
        dim=1,
    )


def hierarchical_masks(region_probs: np.ndarray, thresholds: Mapping[str, float]) -> np.ndarray:
    """Nested boolean masks (3, X, Y, Z) from region probabilities (3, X, Y, Z)."""
    wt = region_probs[0] >= thresholds["wt"]
    tc = wt & (region_probs[1] >= thresholds["tc"])
    et = tc & (region_probs[2] >= thresholds["et"])
    return np.stack([wt, tc, et])


def thresholds_from_postprocess(postprocess: Mapping[str, Any] | None) -> dict[str, float]:
    """Region thresholds from PostprocessConfig keyword arguments (Futrega et al. 2021 defaults)."""
    pp = dict(postprocess or {})
    return {r: float(pp.get(f"{r}_threshold", DEFAULT_THRESHOLDS[r])) for r in REGIONS}


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
    patch: Sequence[int],
    thresholds: Mapping[str, float] | None = None,
    amp: bool = False,
) -> dict[str, Any]:
    """Dice per region, averaged over ``cases``.

    Args:
        model: The network (switched to eval mode for the call, restored after).
        cases: Cached validation crops (image already padded to the size divisor).
        output_kind: ``"regions"`` or ``"classes"``.
        device: Compute device.
        patch: Sliding-window size for crops above :data:`WHOLE_CROP_MAX_VOXELS`.
        thresholds: ``{"wt", "tc", "et"}`` hierarchical thresholds.
        amp: Autocast on CUDA.

    Returns:
        ``{"wt": float, "tc": float, "et": float, "mean": float, "per_case": {id: [wt, tc, et]}}``.
    """
    thresholds = dict(thresholds or DEFAULT_THRESHOLDS)
    was_training = model.training
    model.eval()
    scores = []
    per_case: dict[str, list[float]] = {}
    try:
        for case in cases:
            x = torch.from_numpy(case.image.astype(np.float32))[None].to(device)
            with torch.autocast(device.type, enabled=amp and device.type == "cuda"):
                if int(np.prod(x.shape[2:])) <= WHOLE_CROP_MAX_VOXELS:
                    logits = _logits(model(x))
                else:
                    logits = cast(
                        torch.Tensor,
                        sliding_window_inference(
                            x,
                            tuple(patch),
                            1,
                            lambda t: _logits(model(t)),
                            overlap=0.25,
                            mode="gaussian",
                        ),
                    )
            probs = region_probabilities(logits, output_kind)[0].cpu().numpy()
            dice = dice_regions(
                hierarchical_masks(probs, thresholds), reference_regions(case.label)
            )
            per_case[case.case_id] = [float(d) for d in dice]
            scores.append(dice)
    finally:
        model.train(was_training)
    mean = np.mean(scores, axis=0) if scores else np.full(len(REGIONS), np.nan)
    out: dict[str, Any] = {r: float(v) for r, v in zip(REGIONS, mean)}
    out["mean"] = float(np.mean(mean))
    out["per_case"] = per_case
    return out


def _logits(output: Any) -> torch.Tensor:
    """Logits from an eval-mode output (a tensor; a train-style dict is tolerated)."""
    if isinstance(output, torch.Tensor):
        return output
    return output["logits"]
