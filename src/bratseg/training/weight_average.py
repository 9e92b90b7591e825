"""Weight interpolation between a model and its own fine-tuned descendant.

A network fine-tuned on a new mixture of data gains on the new sources and forgets part of the
old. Interpolating its weights linearly with those it started from (Wortsman et al. 2022,
"Robust fine-tuning of zero-shot models", WiSE-FT) keeps much of both at no cost at inference:
the result is one network of the same size. It works because a fine-tuned network stays in the
same basin as its start; it is only allowed here between a checkpoint and one whose init chain
(``provenance.init_from``, recorded by the trainer) descends from it, or between two fine-tunes
of one ancestor (a "soup" of runs with other seeds or recipes, Wortsman et al. 2022).

The averaged checkpoint records both parents and the weight, and its provenance claims every case
either parent trained on, so held-out checks (:func:`bratseg.evaluation.check_held_out`) stay
honest.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from bratseg.checkpoint import load_checkpoint, read_provenance, save_checkpoint
from bratseg.errors import BratsInputError
from bratseg.evaluation import pretrained_cases
from bratseg.loaded_model import LoadedModel

logger = logging.getLogger(__name__)


def _init_chain(prov: dict[str, Any]) -> list[str]:
    """The sha256 of every checkpoint in the init chain recorded in ``prov``, nearest first."""
    from bratseg.evaluation.scoring import init_checkpoint

    chain: list[str] = []
    for _ in range(32):  # an init chain is short; the bound guards against a cycle
        init = prov.get("init_from") or {}
        sha = str(init.get("sha256") or "")
        if not sha or sha in chain:
            break
        chain.append(sha)
        source = init_checkpoint(init)
        if source is None:
            break
        prov = read_provenance(source)
    return chain


def shared_basin(a_sha: str, a_prov: dict[str, Any], b_sha: str, b_prov: dict[str, Any]) -> bool:
    """Whether two checkpoints lie on one fine-tuning tree: one descends from the other
    (WiSE-FT), or both from a common ancestor (a soup of sibling fine-tunes, Wortsman et al.
    2022, "Model soups")."""
    a_chain, b_chain = _init_chain(a_prov), _init_chain(b_prov)
    return a_sha in b_chain or b_sha in a_chain or bool(set(a_chain) & set(b_chain))


def average_checkpoints(
    base: str | Path, tuned: str | Path, weight: float, out: str | Path, *, half: bool = False
) -> Path:
    """Write ``(1 - weight) * base + weight * tuned`` as a new checkpoint.

    Args:
        base: The checkpoint fine-tuning started from (or one of its ancestors), or a sibling:
            another fine-tune of a common ancestor.
        tuned: A checkpoint fine-tuned from ``base`` (its ``provenance.init_from`` chain reaches
            ``base``'s file), or from an ancestor of ``base``.
        weight: Share of ``tuned``, in [0, 1] (0 gives ``base``'s weights, 1 ``tuned``'s).
        out: Destination ``.pt`` (written atomically).
        half: Store the weights as float16.

    Returns:
        ``out``. The checkpoint keeps ``tuned``'s architecture, config, pre- and postprocessing
        and provenance, with ``weight_average`` (both parents, their sha256 and the weight) added
        and ``pretrained_cases`` extended by every case ``base`` trained on. When ``base`` is not
        an ancestor of ``tuned`` (a sibling), its training cases count as trained on
        (``train_cases``) and leave ``val_cases``: a held-out score never includes a case either
        parent trained on.

    Raises:
        BratsInputError: ``weight`` outside [0, 1]; different architectures or configs; init
            chains that do not meet.
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
    if not shared_basin(a.sha256, a.provenance, b.sha256, b.provenance):
        raise BratsInputError(
            f"not fine-tuned from {Path(base).name} nor from a common ancestor: the init chains "
            "(provenance.init_from) do not meet, so the two networks need not share a basin",
            tuned,
        )
    state_a = a.model.state_dict()
    with torch.no_grad():  # in place: the state dict's tensors are b's weights
        for key, value in b.model.state_dict().items():
            if value.is_floating_point():
                value.copy_((1.0 - weight) * state_a[key] + weight * value)
    provenance = dict(b.provenance)
    a_trained = set(a.provenance.get("train_cases") or [])
    seen = a_trained | pretrained_cases(a.provenance)
    provenance["pretrained_cases"] = sorted(seen | pretrained_cases(b.provenance))
    if a.sha256 not in _init_chain(b.provenance):  # a sibling: its training is not pretraining
        provenance["train_cases"] = sorted(set(b.provenance.get("train_cases") or []) | a_trained)
        kept = [c for c in b.provenance.get("val_cases") or [] if c not in a_trained]
        if len(kept) < len(b.provenance.get("val_cases") or []):
            logger.warning(
                "%s trained on some of %s's validation cases: %d of them stay held out",
                base,
                tuned,
                len(kept),
            )
        provenance["val_cases"] = kept
    provenance["weight_average"] = {
        "base": {"path": str(Path(base).resolve()), "sha256": a.sha256},
        "tuned": {"path": str(Path(tuned).resolve()), "sha256": b.sha256},
        "weight_tuned": float(weight),
        "method": "linear interpolation of the weights (Wortsman et al. 2022, WiSE-FT)",
    }
    logger.info("averaged %s and %s (weight %.2f) into %s", base, tuned, weight, out)
    return _save_as(out, b.model, b, provenance, half)


def held_out_member(
    member: str | Path,
    fold_start: str | Path,
    fold_tuned: str | Path,
    scale: float,
    out: str | Path,
    val_cases: Sequence[str],
    *,
    half: bool = True,
) -> Path:
    """Write ``member + scale * (fold_tuned - fold_start)``: one fold's fine-tuning step added to
    another network of the same family (task arithmetic, Ilharco et al. 2023).

    With ``member`` running over the five fold models of an earlier protocol and ``fold_tuned``
    fold K's model fine-tuned on more data, the five results form an ensemble that never saw
    fold K's new cases: the earlier models never saw any new case, and fold K's step never saw
    fold K. Scored on those cases, it compares a fine-tuned ensemble with the earlier one on equal
    terms (five members against five), without training every member on every fold.

    Args:
        member: The network the step is added to (e.g. the earlier fold model j).
        fold_start: The checkpoint fold K's fine-tuning started from.
        fold_tuned: Fold K's fine-tuned checkpoint (its init chain reaches ``fold_start``).
        scale: Share of the step, > 0 (1: the whole step).
        out: Destination ``.pt`` (written atomically).
        val_cases: The cases the result is to be scored on (its ``val_cases``): some of
            ``fold_tuned``'s held-out cases that neither ``member`` nor ``fold_start`` saw.
        half: Store the weights as float16 (as the bundled models).

    Returns:
        ``out``. Its provenance is ``fold_tuned``'s without its ``init_from`` (the result did not
        start from there), with ``train_cases`` extended by ``member``'s, ``pretrained_cases`` by
        every case ``member``, ``fold_start`` and their starts saw, and ``val_cases``; a held-out
        check refuses any case ``member`` or ``fold_tuned`` trained on; ``task_arithmetic``
        records the three parents and the scale.

    Raises:
        BratsInputError: ``scale`` not > 0; different architectures or configs; ``fold_tuned``
            not fine-tuned from ``fold_start``; a case of ``val_cases`` that ``fold_tuned`` did
            not hold out or that ``member`` or ``fold_start`` saw.
    """
    if not scale > 0.0:
        raise BratsInputError(f"the share of the fine-tuning step must be > 0, got {scale}")
    m, a, b = (load_checkpoint(p) for p in (member, fold_start, fold_tuned))
    for other, path in ((a, fold_start), (b, fold_tuned)):
        if other.spec.name != m.spec.name or other.config.to_dict() != m.config.to_dict():
            raise BratsInputError(
                f"cannot add a step of {other.spec.name} to {m.spec.name}: the architectures differ",
                path,
            )
    if a.sha256 not in _init_chain(b.provenance):
        raise BratsInputError(
            f"not fine-tuned from {Path(fold_start).name}: its init chain (provenance.init_from) "
            "does not reach that file, so the difference is not its fine-tuning step",
            fold_tuned,
        )
    held = set(b.provenance.get("val_cases") or [])
    seen = {
        c
        for prov in (m.provenance, a.provenance)
        for c in set(prov.get("train_cases") or []) | pretrained_cases(prov)
    }
    bad = sorted(c for c in val_cases if c not in held or c in seen)
    if bad:
        raise BratsInputError(
            f"cannot be scored held out on {', '.join(bad[:5])}: not held out by "
            f"{Path(fold_tuned).name}, or seen by {Path(member).name} or {Path(fold_start).name}",
            out,
        )
    start, tuned = a.model.state_dict(), b.model.state_dict()
    with torch.no_grad():  # in place: the state dict's tensors are the member's weights
        for key, value in m.model.state_dict().items():
            if value.is_floating_point():
                value.add_(scale * (tuned[key] - start[key]))
    provenance = {k: v for k, v in b.provenance.items() if k != "init_from"}
    provenance["val_cases"] = sorted(val_cases)
    seen_by_member = set(m.provenance.get("train_cases") or []) | pretrained_cases(m.provenance)
    provenance["train_cases"] = sorted(
        set(b.provenance.get("train_cases") or []) | set(m.provenance.get("train_cases") or [])
    )
    provenance["pretrained_cases"] = sorted(
        seen_by_member
        | pretrained_cases(b.provenance)
        | set(a.provenance.get("train_cases") or [])
        | pretrained_cases(a.provenance)
    )
    provenance["task_arithmetic"] = {
        "member": {"path": str(Path(member).resolve()), "sha256": m.sha256},
        "step_from": {"path": str(Path(fold_start).resolve()), "sha256": a.sha256},
        "step_to": {"path": str(Path(fold_tuned).resolve()), "sha256": b.sha256},
        "scale": float(scale),
        "method": "member + scale x (fine-tuned - its start) (Ilharco et al. 2023)",
    }
    logger.info(
        "added %.2f x the step %s -> %s to %s: %s", scale, fold_start, fold_tuned, member, out
    )
    return _save_as(out, m.model, b, provenance, half)


def _save_as(
    out: str | Path,
    model: torch.nn.Module,
    like: LoadedModel,
    provenance: dict[str, Any],
    half: bool,
) -> Path:
    """Save ``model`` with the architecture, inputs, pre- and postprocessing of the loaded
    checkpoint ``like`` and the given provenance."""
    meta = like.meta
    return save_checkpoint(
        out,
        model,
        arch=like.spec.name,
        config=like.config,
        modalities=meta["modalities"],
        convention=meta["convention"],
        postprocess=meta["postprocess"],
        preprocess=meta["preprocess"],
        provenance=provenance,
        extra=meta.get("extra") or {},
        half=half,
        orientation=meta.get("orientation", "LPS"),
    )
