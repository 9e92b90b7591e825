"""Cross-validation estimates: each case scored by the model of the fold that held it out.

Weights trained on every labelled case have no held-out case left, so their model card reports
the cross-validation estimate of the same recipe instead: the runs of ``napari-brats train
--folds K --fold k`` are each scored on their own validation cases (an ensemble when a fold
gives several checkpoints) at full resolution through the predict pipeline, with the weights
rounded to float16 as shipped, and the rows of all folds are pooled. A case held out by two of
the given folds, or a model that trained on a case it is scored on, is refused.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bratseg.checkpoint import LoadedModel, load_checkpoint
from bratseg.errors import BratsInputError
from bratseg.evaluation.scoring import (
    check_held_out,
    pretrained_cases,
    region_mean_std,
    round_weights_to_half,
    score_cases,
    validation_case_dirs,
)

logger = logging.getLogger(__name__)


def fold_checkpoint(path: str | Path, checkpoint: str = "best") -> Path:
    """The checkpoint file of a fold: ``path`` itself, or ``path/<checkpoint>.pt`` for a run folder.

    Raises:
        BratsInputError: Neither exists.
    """
    path = Path(path)
    candidate = path / f"{checkpoint}.pt" if path.is_dir() else path
    if not candidate.is_file():
        raise BratsInputError(f"no {checkpoint}.pt checkpoint of a training run here", path)
    return candidate


def cross_validate(
    folds: Sequence[Sequence[str | Path]],
    *,
    data: list[str] | None = None,
    threads: int = 2,
    tta: int = 0,
    postprocess: dict[str, Any] | None = None,
    variants: dict[str, dict[str, Any]] | None = None,
    checkpoint: str = "best",
    arch: str | None = None,
    bias_correction: bool | None = None,
) -> tuple[dict[str, list[dict[str, Any]]], list[dict[str, Any]]]:
    """Score every fold's held-out cases with that fold's model(s) and pool the rows.

    Args:
        folds: One entry per fold: its run folder(s) or checkpoint file(s); several are ensembled
            (the first one's postprocessing is used).
        data: Folders holding the cases (default: each checkpoint's training data).
        threads: CPU threads.
        tta: 0 or 8 flips.
        postprocess: Postprocessing to use for every fold (e.g. the shipped model's), instead of
            each fold checkpoint's own.
        variants: Extra postprocessing overrides to score as well, name -> overrides (see
            :func:`bratseg.evaluation.score_cases`); default: none.
        checkpoint: ``"best"`` or ``"last"`` for run folders.
        arch: When given, every fold model must be of this architecture (the estimate of a
            bundled model must come from its own recipe).
        bias_correction: N4 before every fold model (``True``), before none (``False``), or as
            each was trained (``None``; see ``InferenceOptions.bias_correction``).

    Returns:
        ``(rows, folds_info)``: variant name (``""`` for the plain one) -> pooled rows, each with a
        ``fold`` key (index into ``folds``); and per fold ``{"split", "archs", "checkpoints", "val_cases",
        "epochs", "steps", "wall_time_s", "dice"}``.

    Raises:
        BratsInputError: A checkpoint is missing, a fold has no validation cases, a model trained
            on a case it is scored on, two folds hold out the same case, or a fold model is not of
            ``arch``.
    """
    if not folds:
        raise BratsInputError("cross-validation needs at least one fold")
    loaded: list[tuple[list[Path], list[LoadedModel], list[Path]]] = []
    seen: dict[str, int] = {}
    for k, group in enumerate(folds):  # check everything before the first (slow) prediction
        paths = [fold_checkpoint(p, checkpoint) for p in group]
        models: list[LoadedModel] = [load_checkpoint(p) for p in paths]
        other = [m for m in models if arch is not None and m.arch != arch]
        if other:
            raise BratsInputError(
                f"cross-validation fold of {other[0].arch}, the bundled model is {arch}: "
                "the estimate must come from the same recipe",
                other[0].path,
            )
        case_dirs, _ = validation_case_dirs(models[0], data)
        ids = [d.name for d in case_dirs]
        check_held_out(models, ids)
        twice = [c for c in ids if c in seen]
        if twice:
            raise BratsInputError(
                f"case(s) {', '.join(twice)} held out by folds {seen[twice[0]]} and {k}: "
                "give each fold of one split once",
                paths[0],
            )
        seen.update(dict.fromkeys(ids, k))
        loaded.append((paths, models, case_dirs))
    rows: dict[str, list[dict[str, Any]]] = {}
    info: list[dict[str, Any]] = []
    for k, (paths, models, case_dirs) in enumerate(loaded):
        for model in models:
            round_weights_to_half(model.model)
        if postprocess is not None:
            models[0].meta["postprocess"] = dict(postprocess)
        scored = score_cases(
            models,
            case_dirs,
            threads=threads,
            tta=tta,
            variants={"": {}, **(variants or {})},
            bias_correction=bias_correction,
        )
        pretrained = set().union(*(pretrained_cases(m.provenance) for m in models))
        for name, fold_rows in scored.items():
            rows.setdefault(name, []).extend(
                {**row, "fold": k, "seen_in_pretraining": row["case"] in pretrained}
                for row in fold_rows
            )
        prov = models[0].provenance
        info.append(
            {
                "split": prov.get("split_note"),
                "archs": [m.arch for m in models],
                "checkpoints": ["/".join(Path(p).parts[-2:]) for p in paths],
                "val_cases": [d.name for d in case_dirs],
                "epochs": prov.get("epochs"),
                "steps": prov.get("steps"),
                "wall_time_s": prov.get("wall_time_s"),
                "dice": region_mean_std(scored[""], "dice")[0],
            }
        )
        logger.info("fold %d (%s): Dice %s", k, prov.get("split_note"), info[-1]["dice"])
    return rows, info


def cv_section(rows: list[dict[str, Any]], folds_info: list[dict[str, Any]]) -> dict[str, Any]:
    """The ``cross_validation`` part of a model card.

    Args:
        rows: Pooled rows of :func:`cross_validate` (one variant).
        folds_info: Its per-fold information.

    Returns:
        ``{"n_folds", "n_cases", "folds", "fold_mean_dice"}``: ``fold_mean_dice`` is the mean over
        folds of each fold's mean Dice (the pooled per-case mean is the card's ``val_dice``).
    """
    per_fold = [f["dice"] for f in folds_info]
    regions = per_fold[0].keys() if per_fold else ()
    return {
        "n_folds": len(folds_info),
        "n_cases": len(rows),
        "folds": folds_info,
        "fold_mean_dice": {
            r: round(sum(f[r] for f in per_fold) / len(per_fold), 4) for r in regions
        },
    }
