"""What produced an AI proposal: :class:`ModelInfo`, and its JSON form.

A :class:`~bratseg.review.session.ReviewSession` carries it; the autosave
(:mod:`bratseg.review.store`), the sign-offs and the export provenance write it out.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Sequence
    from pathlib import Path

    from bratseg.checkpoint import LoadedModel
    from bratseg.inference import Prediction


@dataclass
class ModelInfo:
    """What produced an AI proposal (for reports, autosave and export provenance)."""

    names: list[str]
    paths: list[str]
    sha256: list[str]
    device: str = ""
    seconds: float = 0.0
    tta: int = 0

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelInfo:
        """Inverse of :meth:`to_dict` (unknown keys ignored)."""
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})

    @classmethod
    def from_run(
        cls,
        models: Sequence[LoadedModel],
        paths: Sequence[str | Path],
        prediction: Prediction,
        tta: int = 0,
    ) -> ModelInfo:
        """What a model run used: checkpoint stems, paths and sha256 of the loaded ``models``.

        Args:
            models: The :class:`bratseg.checkpoint.LoadedModel` objects (same order as ``paths``).
            paths: Their checkpoint files.
            prediction: The run's result (device, wall time).
            tta: Test-time augmentation flips used.
        """
        from pathlib import Path

        return cls(
            names=[Path(getattr(m, "path", p)).stem for m, p in zip(models, paths, strict=False)],
            paths=[str(p) for p in paths],
            sha256=[str(getattr(m, "sha256", "")) for m in models],
            device=str(prediction.device),
            seconds=float(prediction.seconds),
            tta=int(tta),
        )


__all__ = ["ModelInfo"]
