"""Disagreement between the members of a prediction (ensemble models or flip-TTA passes).

Opt-in (:attr:`bratseg.inference.InferenceOptions.keep_spread`): while the engine averages the
members' region probabilities it also keeps their running minimum and maximum, and the prediction
carries the spread ``max - min`` per region (float16, one extra (3, X, Y, Z) array), so a review
can show where the members disagree without keeping every member's probabilities.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, cast

import numpy as np
import torch

SpreadKind = Literal["ensemble disagreement", "TTA disagreement"]


@dataclass
class MemberSpread:
    """Range of the members' region probabilities.

    Attributes:
        values: float16 (3, X, Y, Z): max - min over the members of each region probability
            (WT/TC/ET order), in [0, 1].
        kind: ``"ensemble disagreement"`` (models of an ensemble, each after its own TTA) or
            ``"TTA disagreement"`` (flip passes of one model).
        members: Number of members compared.
    """

    values: np.ndarray
    kind: SpreadKind
    members: int


class RunningRange:
    """Element-wise running minimum and maximum of same-shaped arrays (kept as float16) or tensors."""

    def __init__(self) -> None:
        self.low: np.ndarray | torch.Tensor | None = None
        self.high: np.ndarray | torch.Tensor | None = None
        self.count = 0

    def update(self, value: np.ndarray | torch.Tensor) -> None:
        """Take one member into account (``value`` is copied, never kept)."""
        if isinstance(value, torch.Tensor):
            if self.low is None:
                self.low, self.high = value.clone(), value.clone()
            else:
                low, high = cast(torch.Tensor, self.low), cast(torch.Tensor, self.high)
                torch.minimum(low, value, out=low)
                torch.maximum(high, value, out=high)
        else:
            if self.low is None:  # float16 halves the memory; probabilities need no more
                self.low, self.high = value.astype(np.float16), value.astype(np.float16)
            else:
                lo, hi = cast(np.ndarray, self.low), cast(np.ndarray, self.high)
                np.minimum(lo, value, out=lo, casting="unsafe")
                np.maximum(hi, value, out=hi, casting="unsafe")
        self.count += 1

    def spread(self) -> np.ndarray | torch.Tensor:
        """``max - min`` (reuses the maximum's memory; call once, at the end)."""
        if self.low is None or self.high is None:
            raise ValueError("no member was added")
        high: Any = self.high
        high -= self.low
        self.low = self.high = None
        return high


def class_tensor_to_regions(probs: torch.Tensor) -> torch.Tensor:
    """WT/TC/ET probabilities (B, 3, ...) from class probabilities (B, 4, ...) (CLASSES order)."""
    from bratseg.labels import CLASSES

    bg, ncr, et = (CLASSES.index(c) for c in ("background", "ncr", "et"))
    return torch.stack([1.0 - probs[:, bg], probs[:, ncr] + probs[:, et], probs[:, et]], dim=1)
