"""Weight interpolation between a model and its own fine-tuned descendant.

A network fine-tuned on a new mixture of data gains on the new sources and forgets part of the
old. Interpolating its weights linearly with those it started from (Wortsman et al. 2022,
"Robust fine-tuning of zero-shot models", WiSE-FT) keeps much of both at no cost at inference:
the result is one network of the same size. It works because a fine-tuned network stays in the
same basin as its start; it is only allowed here between a checkpoint and one whose init chain
(``provenance.init_from``, recorded by the trainer) descends from it.

The averaged checkpoint records both parents and the weight, and its provenance claims every case
either parent trained on, so held-out checks (:func:`bratseg.evaluation.check_held_out`) stay
honest.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch

from bratseg.checkpoint import load_checkpoint, read_provenance, save_checkpoint
from bratseg.errors import BratsInputError
from bratseg.evaluation import pretrained_cases

logger = logging.getLogger(__name__)


def _descends_from(tuned_prov: dict[str, Any], base_sha: str) -> bool:
    """Whether the init chain recorded in ``tuned_prov`` passes through the file ``base_sha``."""
    from bratseg.evaluation.scoring import init_checkpoint

    prov = tuned_prov
    for _ in range(32):  # an init chain is short; the bound guards against a cycle
        init = prov.get("init_from") or {}
        if not init:
            return False
        if str(init.get("sha256") or "") == base_sha:
            return True
        source = init_checkpoint(init)
        if source is None:
            return False
        prov = read_provenance(source)
    return False


def average_checkpoints(
    base: str | Path, tuned: str | Path, weight: float, out: str | Path, *, half: bool = False
) -> Path:
    """Write ``(1 - weight) * base + weight * tuned`` as a new checkpoint.

    Args:
        base: The checkpoint fine-tuning started from (or one of its ancestors).
        tuned: A checkpoint fine-tuned from ``base`` (its ``provenance.init_from`` chain reaches
            ``base``'s file).
        weight: Share of ``tuned``, in [0, 1] (0 gives ``base``'s weights, 1 ``tuned``'s).
        out: Destination ``.pt`` (written atomically).
        half: Store the weights as float16.

    Returns:
        ``out``. The checkpoint keeps ``tuned``'s architecture, config, pre- and postprocessing
        and provenance, with ``weight_average`` (both parents, their sha256 and the weight) added
        and ``pretrained_cases`` extended by every case ``base`` trained on.

    Raises:
        BratsInputError: ``weight`` outside [0, 1]; different architectures or configs; ``tuned``
            not fine-tuned from ``base``.
    """
    if not 0.0 <= weight <= 1.0:
        raise BratsInputError(f"the weight of the fine-tuned model must be in [0, 1], got {weight}")
    a, b = load_checkpoint(base), load_checkpoint(tuned)
    if a.spec.name != b.spec.name or a.config.to_dict() != b.config.to_dict():
        raise BratsInputError(
            f"cannot average {a.spec.name} {a.config.to_dict()} with {b.spec.name} "
            f"{b.config.to_dict()}: the architectures differ",
            tuned,
        )
    if not _descends_from(b.provenance, a.sha256):
        raise BratsInputError(
            f"not fine-tuned from {Path(base).name}: its init chain (provenance.init_from) does "
            "not reach that file, so the two networks need not share a basin",
            tuned,
        )
    state_a = a.model.state_dict()
    with torch.no_grad():  # in place: the state dict's tensors are b's weights
        for key, value in b.model.state_dict().items():
            if value.is_floating_point():
                value.copy_((1.0 - weight) * state_a[key] + weight * value)
    provenance = dict(b.provenance)
    seen = set(a.provenance.get("train_cases") or []) | pretrained_cases(a.provenance)
    provenance["pretrained_cases"] = sorted(seen | pretrained_cases(b.provenance))
    provenance["weight_average"] = {
        "base": {"path": str(Path(base).resolve()), "sha256": a.sha256},
        "tuned": {"path": str(Path(tuned).resolve()), "sha256": b.sha256},
        "weight_tuned": float(weight),
        "method": "linear interpolation of the weights (Wortsman et al. 2022, WiSE-FT)",
    }
    meta = b.meta
    logger.info("averaged %s and %s (weight %.2f) into %s", base, tuned, weight, out)
    return save_checkpoint(
        out,
        b.model,
        arch=b.spec.name,
        config=b.config,
        modalities=meta["modalities"],
        convention=meta["convention"],
        postprocess=meta["postprocess"],
        preprocess=meta["preprocess"],
        provenance=provenance,
        extra=meta.get("extra") or {},
        half=half,
        orientation=meta.get("orientation", "LPS"),
    )
