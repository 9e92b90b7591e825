"""Model cards: turn a finished training run into a bundled, honestly described checkpoint.

A card is a plain dict (JSON-able) stored in the bundled checkpoint at
``meta["provenance"]["card"]`` and beside it as ``NAME.json``. Its ``val_dice`` is what
:mod:`bratseg.zoo` (and ``napari-brats models``) shows: Dice at full resolution, measured here by
the real prediction pipeline (:func:`bratseg.inference.predict_case`, CPU, the checkpoint's default
postprocessing, no TTA) on the run's validation cases, with the weights rounded to float16 exactly
as they are shipped. The trainer's own validation Dice (at training resolution) is kept apart as
``val_dice_training_resolution``.
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
from bratseg.errors import BratsInputError
from bratseg.evaluation import (
    evaluate_cases,
    pretrained_cases,
    region_mean_std,
    round_weights_to_half,
    validation_case_dirs,
)
from bratseg.labels import REGIONS

logger = logging.getLogger(__name__)

#: Units of the HD95 values of a card (the official BraTS evaluation measures on the voxel grid).
HD95_UNITS = "voxels (mm on the 1 mm BraTS grid), official BraTS definition"


def read_progress(path: str | Path) -> dict[str, Any]:
    """Summarise a run's ``progress.jsonl``.

    Returns:
        ``{"wall_time_s", "epochs", "steps", "done_reason", "sessions", "device",
        "best_epoch", "best_val_dice"}`` (``None`` where the log does not say).
    """
    events: list[dict[str, Any]] = []
    try:
        for line in Path(path).read_text(encoding="utf-8").splitlines():
            if line.strip():
                events.append(json.loads(line))
    except (OSError, ValueError) as exc:
        raise BratsInputError(f"cannot read the training log ({exc})", path) from None
    timed = [e for e in events if e.get("elapsed_s") is not None]
    epochs = [e for e in events if e.get("event") == "epoch"]
    best = [e for e in epochs if e.get("best")]
    done = [e for e in events if e.get("event") == "done"]
    return {
        "wall_time_s": float(timed[-1]["elapsed_s"]) if timed else None,
        "epochs": int(epochs[-1]["epoch"]) if epochs else None,
        "steps": int(max(e.get("step") or 0 for e in events)) if events else None,
        "done_reason": done[-1].get("reason") if done else "running (no 'done' event yet)",
        "sessions": sum(e.get("event") == "start" for e in events),
        "device": next((e.get("device") for e in reversed(events) if e.get("device")), None),
        "best_epoch": int(best[-1]["epoch"]) if best else None,
        "best_val_dice": best[-1].get("val_dice") if best else None,
    }


def build_card(
    loaded: LoadedModel,
    name: str,
    rows: list[dict[str, Any]],
    progress: dict[str, Any],
    *,
    data_dirs: list[str],
    threads: int,
    remark: str = "",
    cv: dict[str, Any] | None = None,
    checkpoint: str = "best",
) -> dict[str, Any]:
    """The model card of ``loaded`` evaluated as ``rows`` (see :func:`evaluate_cases`).

    Args:
        loaded: The source checkpoint (its provenance gives split, recipe, epochs...).
        name: Name of the bundled model.
        rows: Per-case validation results.
        progress: :func:`read_progress` of the run.
        data_dirs: Folders the validation cases were read from.
        threads: CPU threads used for the timing.
        remark: Extra text appended to the automatic remark.
        cv: For weights trained on every case: the :func:`bratseg.crossval.cv_section` whose
            pooled rows are ``rows`` (scored by the fold models, not by ``loaded``).
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
    if remark:
        notes.append(remark)
    return {
        "name": name,
        "architecture": loaded.arch,
        "paper": loaded.spec.paper,
        "preset": prov.get("preset"),
        "config": loaded.config.to_dict(),
        "parameters": int(sum(p.numel() for p in loaded.model.parameters())),
        "data": {
            "folders": [Path(d).name for d in data_dirs],
            "n_cases": len(set(train) | set(val)),
            "train_cases": train,
            "val_cases": val,
            "datasets": case_datasets(data_dirs, [*train, *val]),
            "pretrained_cases": sorted(pretrained_cases(prov)),
        },
        "split": prov.get("split_note"),
        "seed": prov.get("seed"),
        "epochs": prov.get("epochs"),
        "steps": prov.get("steps"),
        "steps_per_epoch": prov.get("steps_per_epoch"),
        "patch": prov.get("patch"),
        "preprocess": loaded.preprocess,
        "postprocess": loaded.postprocess,
        "recipe": prov.get("recipe"),
        "swa": prov.get("swa"),
        "init_from": portable_provenance(prov).get("init_from"),
        "checkpoint": checkpoint,
        "training_wall_time_s": prov.get("wall_time_s"),
        "run": progress,
        "training_device": prov.get("device"),
        "val_dice": dice,
        "val_dice_std": dice_std,
        "val_hd95": hd95,
        "val_hd95_std": hd95_std,
        "hd95_units": HD95_UNITS,
        "val_per_case": rows,
        **({"cross_validation": cv} if cv is not None else {}),
        "val_dice_training_resolution": prov.get("val_dice"),
        "cpu_seconds_per_case": round(seconds, 2),
        "cpu_threads": threads,
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "bratseg_version": str(bratseg.__version__),
        "source_checkpoint": "/".join(Path(loaded.path).parts[-2:]),
        "source_sha256": loaded.sha256,
        "remark": " ".join(notes),
    }


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
) -> tuple[dict[str, Any], Path]:
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
            recipe, one entry per fold (see :func:`bratseg.crossval.cross_validate`); the card then
            reports their pooled held-out scores, with the postprocessing of the bundled model and
            the same ``checkpoint`` of each fold run.
        postprocess: Postprocessing overrides stored in the bundled checkpoint (and used for its
            scores), e.g. ``{"min_island_fraction": 0.1}`` chosen by cross-validation.

    Returns:
        ``(card, path of the written checkpoint)``.

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
        from bratseg.crossval import cross_validate, cv_section

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
    provenance = {**portable_provenance(loaded.provenance), "card": card}
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
    card_file = {
        **card,
        "file": out.name,
        "sha256": file_sha256(out),
        "file_size": out.stat().st_size,
    }
    (weights_dir / f"{name}.json").write_text(
        json.dumps(card_file, indent=1) + "\n", encoding="utf-8"
    )
    if default:
        (weights_dir / "default.txt").write_text(name + "\n", encoding="utf-8")
    return card_file, out


def markdown_row(card: dict[str, Any]) -> str:
    """One README table row: model | arch | params | Dice WT/TC/ET | HD95 WT/TC/ET | CPU s | training."""
    d, h = card["val_dice"], card["val_hd95"]
    params = card["parameters"]
    size = f"{params / 1e6:.1f}M" if params >= 1e6 else f"{params / 1e3:.0f}k"
    minutes = (card.get("training_wall_time_s") or 0) / 60
    run_minutes = ((card.get("run") or {}).get("wall_time_s") or 0) / 60
    of_run = f" of a {run_minutes:.0f} min run" if run_minutes - minutes > 1 else ""
    return (
        f"| {card['name']} | {card['architecture']} ({card.get('preset')}) | {size} | "
        f"{d['wt']:.3f} / {d['tc']:.3f} / {d['et']:.3f} | "
        f"{h['wt']:.1f} / {h['tc']:.1f} / {h['et']:.1f} | "
        f"{card['cpu_seconds_per_case']:.1f} ({card['cpu_threads']} thr) | "
        f"{minutes:.0f} min{of_run}, {card.get('epochs')} ep / {card.get('steps')} steps, "
        f"{card.get('training_device')} |"
    )


def embedded_card(meta: dict[str, Any]) -> dict[str, Any] | None:
    """The model card stored in a checkpoint's metadata (``meta["provenance"]["card"]``), if any.

    Args:
        meta: Checkpoint metadata, e.g. :func:`bratseg.zoo.read_card` or ``LoadedModel.meta``.
    """
    card = (meta.get("provenance") or {}).get("card")
    return card if isinstance(card, dict) and card else None


def validation_text(card: dict[str, Any]) -> str:
    """What a card's scores were measured on: its held-out cases, or its cross-validation."""
    cv = card.get("cross_validation")
    if cv:
        cases = [row["case"] for row in card.get("val_per_case") or []]
        return (
            f"cross-validation estimate, {cv['n_folds']} fold model(s) of the same recipe, each of "
            f"{cv['n_cases']} cases predicted by the fold that held it out: {', '.join(cases)}"
        )
    return ", ".join((card.get("data") or {}).get("val_cases") or ["?"])


def format_card(card: dict[str, Any]) -> str:
    """The card as readable text (what ``napari-brats models NAME`` prints).

    Args:
        card: A model card (see :func:`build_card`); missing keys are shown as ``?``.

    Returns:
        Multi-line text: what the model is, what it was trained on and how, how it scored on its
        validation cases (mean ± std and per case) and how fast it is.
    """
    g = card.get
    data = g("data") or {}
    run = g("run") or {}

    def regions(values: dict[str, float] | None, std: dict[str, float] | None, fmt: str) -> str:
        if not values:
            return "?"
        return "  ".join(
            f"{r.upper()} {values[r]:{fmt}}" + (f" ± {std[r]:{fmt}}" if std else "")
            for r in REGIONS
            if r in values
        )

    minutes = float(g("training_wall_time_s") or 0) / 60
    lines = [
        f"{g('name', '?')}: {g('architecture', '?')} ({g('preset', '?')} preset), {int(g('parameters') or 0):,} parameters",
        f"  paper:       {g('paper', '?')}",
        f"  data:        {len(data.get('train_cases') or [])} training / {len(data.get('val_cases') or [])} "
        f"validation cases of {', '.join(data.get('folders') or ['?'])}, {g('split', '?')}",
        f"  validation:  {validation_text(card)}",
        f"  training:    {g('epochs', '?')} epochs / {g('steps', '?')} steps of {g('patch', '?')} patches, "
        f"{minutes:.0f} min on {g('training_device', '?')}"
        + (
            f" ({'last' if g('checkpoint') == 'last' else 'best'} epoch of a {run['epochs']}-epoch run)"
            if run.get("epochs")
            else ""
        ),
        f"  recipe:      {(g('recipe') or {}).get('source', '?')}",
        f"  Dice:        {regions(g('val_dice'), g('val_dice_std'), '.3f')}",
        f"  HD95:        {regions(g('val_hd95'), g('val_hd95_std'), '.1f')} ({g('hd95_units', '?')})",
        f"  speed:       {g('cpu_seconds_per_case', '?')} s per case on CPU ({g('cpu_threads', '?')} threads)"
        + (
            f", {card['gpu_seconds_per_case']} s on {card.get('gpu', 'GPU')}"
            if g("gpu_seconds_per_case")
            else ""
        ),
    ]
    rows = g("val_per_case") or []
    if rows:
        lines.append("  per case:    Dice WT/TC/ET, HD95 WT/TC/ET, seconds")
        for row in rows:
            dice = "/".join(f"{row['dice'][r]:.3f}" for r in REGIONS)
            hd95 = "/".join(f"{row['hd95'][r]:.1f}" for r in REGIONS)
            lines.append(f"    {row['case']:<24} {dice}  {hd95}  {row.get('seconds', '?')}")
    if g("remark"):
        lines.append(f"  remark:      {card['remark']}")
    return "\n".join(lines)
