"""Bundling: turn a finished training run into a shipped, honestly described checkpoint.

:func:`bundle_run` scores a run's checkpoint with the real prediction pipeline
(:func:`bratseg.inference.predict_case`, CPU, the checkpoint's default postprocessing, no TTA) on
the run's validation cases (or, for weights trained on every case, pools the held-out scores of
its fold runs: :mod:`bratseg.evaluation.crossval`), with the weights rounded to float16 exactly as
they are shipped, and writes ``NAME.pt`` (card inside, at ``meta["provenance"]["card"]``) and
``NAME.json``. The card's schema and its text forms are :mod:`bratseg.zoo.card`. The trainer's
own validation Dice (at training resolution) is kept apart as ``val_dice_training_resolution``.
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import os
import statistics
from pathlib import Path
from typing import Any, cast

import bratseg
from bratseg.checkpoint import LoadedModel, file_sha256, load_checkpoint, save_checkpoint
from bratseg.evaluation.scoring import (
    evaluate_cases,
    pretrained_cases,
    region_mean_std,
    round_weights_to_half,
    validation_case_dirs,
)
from bratseg.training.events import RunSummary, read_progress
from bratseg.zoo.card import HD95_UNITS, CardData, ModelCard

logger = logging.getLogger(__name__)


def build_card(
    loaded: LoadedModel,
    name: str,
    rows: list[dict[str, Any]],
    progress: RunSummary,
    *,
    data_dirs: list[str],
    threads: int,
    remark: str = "",
    cv: dict[str, Any] | None = None,
    checkpoint: str = "best",
) -> ModelCard:
    """The model card of ``loaded`` evaluated as ``rows`` (see :func:`evaluate_cases`).

    Args:
        loaded: The source checkpoint (its provenance gives split, recipe, epochs...).
        name: Name of the bundled model.
        rows: Per-case validation results.
        progress: :func:`bratseg.training.events.read_progress` of the run.
        data_dirs: Folders the validation cases were read from.
        threads: CPU threads used for the timing.
        remark: Extra text appended to the automatic remark.
        cv: For weights trained on every case: the :func:`bratseg.evaluation.crossval.cv_section` whose
            pooled rows are ``rows`` (scored by the fold models, not by ``loaded``).

    Returns:
        The card (without the shipped file's name, sha256 and size: :func:`bundle_run` adds them).
        checkpoint: Which checkpoint of the run ``loaded`` is: ``"best"`` or ``"last"``.
    """
    prov = loaded.provenance
    train, val = list(prov.get("train_cases") or []), list(prov.get("val_cases") or [])
    if cv is not None:
        val = []  # these weights hold no case out; the scores are the folds' (see notes)
    dice, dice_std = region_mean_std(rows, "dice")
    hd95, hd95_std = region_mean_std(rows, "hd95")
    seconds = statistics.fmean(r["seconds"] for r in rows)
    overlap = sorted(set(train) & set(val))
    if cv is not None:
        first = (
            f"Cross-validation estimate: these weights were trained on all {len(train)} cases, so "
            f"no case is held out from them; the scores are those of {cv['n_folds']} fold model(s) of "
            f"the same recipe, each case predicted by the fold that held it out ({cv['n_cases']} "
            "cases pooled; per-fold details in cross_validation)."
        )
    elif overlap:
        first = f"NOT a held-out score: {len(overlap)} validation case(s) were also training cases."
    else:
        first = (
            f"Validation on {len(rows)} case(s) held out from training ({prov.get('split_note')}); "
            "with so few cases the means are uncertain (per-region std over cases given)."
        )
    notes = [
        first,
        "Dice/HD95 at full resolution by the predict pipeline (CPU, checkpoint's default "
        "postprocessing, no TTA), weights rounded to float16 as shipped.",
        f"CPU seconds per case = wall time of loading the 4 images + predict, {threads} thread(s), "
        f"load average {os.getloadavg()[0]:.1f} at the end of timing (a busy machine inflates it).",
    ]
    if str(progress.get("done_reason") or "").startswith("running"):
        notes.append("Bundled from an intermediate checkpoint while training was still running.")
    if checkpoint == "last":
        notes.append(
            f"The checkpoint is the run's last epoch ({prov.get('epochs')}), not chosen by validation."
        )
    elif progress.get("best_epoch") and progress.get("epochs") and not overlap and cv is None:
        notes.append(
            f"The checkpoint is the epoch with the best mean validation Dice on these same {len(rows)} "
            f"cases (epoch {progress['best_epoch']} of {progress['epochs']} validated), so the scores are "
            "slightly optimistic."
        )
    average = prov.get("weight_average")
    if isinstance(average, dict):
        notes.append(
            f"The weights are {1 - average['weight_tuned']:.2f} x those of "
            f"{Path(str(average['base']['path'])).name} + {average['weight_tuned']:.2f} x those of "
            f"{Path(str(average['tuned']['path'])).name}, fine-tuned from it (linear interpolation, "
            "Wortsman et al. 2022); the training record is the fine-tuned run's."
        )
    if remark:
        notes.append(remark)
    return ModelCard(
        name=name,
        architecture=loaded.arch,
        paper=loaded.spec.paper,
        preset=prov.get("preset"),
        config=loaded.config.to_dict(),
        parameters=int(sum(p.numel() for p in loaded.model.parameters())),
        data=CardData(
            folders=[Path(d).name for d in data_dirs],
            n_cases=len(set(train) | set(val)),
            train_cases=train,
            val_cases=val,
            datasets=case_datasets(data_dirs, [*train, *val]),
            pretrained_cases=sorted(pretrained_cases(prov)),
        ),
        split=prov.get("split_note"),
        seed=prov.get("seed"),
        epochs=prov.get("epochs"),
        steps=prov.get("steps"),
        steps_per_epoch=prov.get("steps_per_epoch"),
        patch=prov.get("patch"),
        preprocess=loaded.preprocess,
        postprocess=loaded.postprocess,
        recipe=prov.get("recipe"),
        swa=prov.get("swa"),
        init_from=portable_provenance(prov).get("init_from"),
        checkpoint=checkpoint,
        training_wall_time_s=prov.get("wall_time_s"),
        run=dict(progress),
        # e.g. "CPU (1 thread), bfloat16"; runs from before the precision was recorded: float32
        training_device=", ".join(str(prov[k]) for k in ("device", "precision") if prov.get(k))
        or None,
        val_dice=dice,
        val_dice_std=dice_std,
        val_hd95=hd95,
        val_hd95_std=hd95_std,
        hd95_units=HD95_UNITS,
        val_per_case=rows,
        cross_validation=cv,
        val_dice_training_resolution=prov.get("val_dice"),
        cpu_seconds_per_case=round(seconds, 2),
        cpu_threads=threads,
        date=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        bratseg_version=str(bratseg.__version__),
        source_checkpoint="/".join(Path(loaded.path).parts[-2:]),
        source_sha256=loaded.sha256,
        remark=" ".join(notes),
    )


def case_datasets(data_dirs: list[str], case_ids: list[str]) -> dict[str, list[str]]:
    """Dataset name (the folder of case folders' name) -> its case ids among ``case_ids``.

    Cards identify cases by dataset and case id, never by a machine's absolute path. Cases not
    found in ``data_dirs`` are listed under ``"?"``.
    """
    from bratseg.training.data import discover_cases

    wanted, out = set(case_ids), cast(dict[str, list[str]], {})
    for folder in data_dirs:
        if Path(folder).is_dir():
            for ref in discover_cases([folder]):
                if ref.case_id in wanted:
                    out.setdefault(Path(folder).name, []).append(ref.case_id)
                    wanted.discard(ref.case_id)
    if wanted:
        out["?"] = sorted(wanted)
    return {k: sorted(v) for k, v in out.items()}


def portable_provenance(provenance: dict[str, Any]) -> dict[str, Any]:
    """``provenance`` without the training machine's paths, for a checkpoint that ships.

    Data folders keep their names only and the initial weights their file name (their sha256
    still identifies them, see :func:`bratseg.evaluation.pretrained_cases`).
    """
    out = dict(provenance)
    if out.get("data"):
        out["data"] = [Path(str(d)).name for d in out["data"]]
    init = out.get("init_from")
    if isinstance(init, dict) and init.get("path"):
        out["init_from"] = {**init, "path": Path(str(init["path"])).name}
    average = out.get("weight_average")
    if isinstance(average, dict):
        out["weight_average"] = {
            k: ({**v, "path": Path(str(v.get("path") or "")).name} if isinstance(v, dict) else v)
            for k, v in average.items()
        }
    return out


def bundle_run(
    run_dir: str | Path,
    name: str,
    weights_dir: str | Path,
    *,
    checkpoint: str = "best",
    data: list[str] | None = None,
    threads: int = 2,
    default: bool = False,
    remark: str = "",
    cv_folds: list[list[str | Path]] | None = None,
    postprocess: dict[str, Any] | None = None,
) -> tuple[ModelCard, Path]:
    """Evaluate a run's checkpoint and write ``NAME.pt`` (fp16, card inside) and ``NAME.json``.

    Args:
        run_dir: Training run folder (``best.pt``/``last.pt``, ``progress.jsonl``).
        name: Name of the bundled model (file stem).
        weights_dir: Destination folder (the package's ``bratseg/weights`` when bundling).
        checkpoint: ``"best"`` or ``"last"``.
        data: Folders holding the validation cases (default: the run's data folders).
        threads: CPU threads for the evaluation and timing.
        default: Also write ``default.txt`` naming this model.
        remark: Extra remark for the card.
        cv_folds: For a run trained on every case: the fold runs (or checkpoints) of the same
            recipe, one entry per fold (see :func:`bratseg.evaluation.crossval.cross_validate`); the card then
            reports their pooled held-out scores, with the postprocessing of the bundled model and
            the same ``checkpoint`` of each fold run.
        postprocess: Postprocessing overrides stored in the bundled checkpoint (and used for its
            scores), e.g. ``{"min_island_fraction": 0.1}`` chosen by cross-validation.

    Returns:
        ``(card, path of the written checkpoint)``; the card names the written file, its sha256
        and size.

    Raises:
        BratsInputError: No validation cases (and no ``cv_folds``), a fold of another
            architecture, or a score that would not be held out.
    """
    from bratseg.postprocess import PostprocessConfig

    run_dir, weights_dir = Path(run_dir), Path(weights_dir)
    source = run_dir / f"{checkpoint}.pt"
    loaded = load_checkpoint(source)
    if postprocess:
        loaded.meta["postprocess"] = PostprocessConfig.from_dict(
            {**loaded.postprocess, **postprocess}
        ).to_dict()
    if not cv_folds:  # fail early, before any prediction, when nothing is held out
        case_dirs, folders = validation_case_dirs(loaded, data)
    progress = read_progress(run_dir / "progress.jsonl")
    round_weights_to_half(loaded.model)
    cv = None
    if cv_folds:
        from bratseg.evaluation.crossval import cross_validate, cv_section

        folders = [str(d) for d in (data or loaded.provenance.get("data") or [])]
        pooled, info = cross_validate(
            cv_folds,
            data=folders,
            threads=threads,
            postprocess=loaded.postprocess,
            checkpoint=checkpoint,
            arch=loaded.arch,
        )
        rows = pooled[""]
        cv = cv_section(rows, info)
    else:
        rows = evaluate_cases(loaded, case_dirs, threads=threads)
    card = build_card(
        loaded,
        name,
        rows,
        progress,
        data_dirs=folders,
        threads=threads,
        remark=remark,
        cv=cv,
        checkpoint=checkpoint,
    )
    provenance = {**portable_provenance(loaded.provenance), "card": card.to_dict()}
    out = save_checkpoint(
        weights_dir / f"{name}.pt",
        loaded.model,
        arch=loaded.arch,
        config=loaded.config,
        modalities=loaded.modalities,
        convention=loaded.convention,
        postprocess=loaded.postprocess,
        preprocess=loaded.preprocess,
        provenance=provenance,
        extra=loaded.meta.get("extra"),
        half=True,
        orientation=loaded.meta.get("orientation") or "LPS",
    )
    card.file, card.sha256, card.file_size = out.name, file_sha256(out), out.stat().st_size
    (weights_dir / f"{name}.json").write_text(
        json.dumps(card.to_dict(), indent=1) + "\n", encoding="utf-8"
    )
    if default:
        (weights_dir / "default.txt").write_text(name + "\n", encoding="utf-8")
    return card, out
