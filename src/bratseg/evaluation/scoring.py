"""Score models on labelled cases with the real prediction pipeline (what model cards report).

Every case is predicted at full resolution by :class:`bratseg.predictor.Predictor` (CPU, the
ensemble's postprocessing from :func:`bratseg.zoo.ensemble_postprocess` unless overridden) and
scored with the official-style metrics of :func:`bratseg.metrics.evaluate_labels`: Dice and HD95
(voxels) per region WT, TC, ET.
"""

from __future__ import annotations

import dataclasses
import logging
import statistics
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from bratseg.checkpoint import LoadedModel
from bratseg.errors import BratsInputError
from bratseg.labels import REGIONS

if TYPE_CHECKING:
    from bratseg.inference import InferenceOptions, Prediction
    from bratseg.io import Case, LabelMap

logger = logging.getLogger(__name__)


def round_weights_to_half(model: torch.nn.Module) -> None:
    """Round every floating-point parameter/buffer to float16 precision in place (kept float32).

    Evaluating after this gives exactly the predictions of the fp16 checkpoint that is shipped.
    """
    with torch.no_grad():
        for tensor in model.state_dict().values():
            if tensor.is_floating_point():
                tensor.copy_(tensor.half().float())


@dataclasses.dataclass
class PredictedCase:
    """One labelled case predicted by :func:`predict_labelled_cases`.

    Attributes:
        folder: The case folder.
        case: The loaded case (images only).
        prediction: The :class:`bratseg.inference.Prediction` (region probabilities (3, X, Y, Z),
            labels, timings).
        reference: The case's reference label map (:class:`bratseg.io.LabelMap`).
        seconds: Wall time of loading the four images and predicting.
    """

    folder: Path
    case: Case
    prediction: Prediction
    reference: LabelMap
    seconds: float


def predict_labelled_cases(
    models: list[LoadedModel], case_dirs: list[Path], options: InferenceOptions | None
) -> Iterator[PredictedCase]:
    """Load and predict each labelled case in turn, with its reference label map.

    The one loop under every scoring of the project (:func:`score_cases`, the postprocessing
    search of ``tools/tune_postprocess.py``).

    Args:
        models: The checkpoints (several = an ensemble).
        case_dirs: Case folders with a ``*_seg`` file.
        options: :class:`bratseg.inference.InferenceOptions` (its ``postprocess``, or the
            ensemble's when ``None``).

    Yields:
        One :class:`PredictedCase` per folder, in order.
    """
    from bratseg.io import find_case_files, load_case, load_label_map
    from bratseg.predictor import Predictor

    predictor = Predictor.from_loaded(models, options)
    for index, folder in enumerate(case_dirs):
        t0 = time.perf_counter()
        case = load_case(folder, load_seg=False)
        prediction = predictor.predict(case)
        seconds = time.perf_counter() - t0
        reference = load_label_map(find_case_files(folder)["seg"])
        logger.info(
            "case %d/%d %s predicted in %.1f s", index + 1, len(case_dirs), case.case_id, seconds
        )
        yield PredictedCase(Path(folder), case, prediction, reference, seconds)


def score_cases(
    loaded: LoadedModel | list[LoadedModel],
    case_dirs: list[Path],
    threads: int = 2,
    tta: int = 0,
    variants: dict[str, dict[str, Any]] | None = None,
    bias_correction: bool | None = None,
) -> dict[str, list[dict[str, Any]]]:
    """Predict each case once and score it under one or more postprocessing variants.

    Args:
        loaded: The model, or several for an ensemble (mean of their region probabilities).
        case_dirs: Case folders with a ``*_seg`` file.
        threads: CPU threads for torch.
        tta: 0 (no test-time augmentation) or 8 flips.
        variants: Name -> postprocessing overrides applied on top of the ensemble's
            postprocessing; default ``{"": {}}`` (the ensemble's own postprocessing only).
        bias_correction: See :attr:`bratseg.inference.InferenceOptions.bias_correction`.

    Returns:
        Variant name -> one row per case: ``case``, ``seconds`` (wall time of loading the four
        images and predicting), ``dice``/``hd95``/``hd95_penalty`` ``{wt, tc, et}``, ``timings``,
        ``volume_ml``/``ref_volume_ml`` ``{ncr, ed, et, tc, wt}`` and ``et_mean_prob`` (mean ET
        probability over the voxels labelled ET; 0 when none).
    """
    from bratseg.inference import InferenceOptions
    from bratseg.labels import detect_convention, region_masks
    from bratseg.metrics import evaluate_labels, tumour_volumes_ml
    from bratseg.postprocess import postprocess
    from bratseg.predictor import Predictor

    models = loaded if isinstance(loaded, list) else [loaded]
    variants = variants or {"": {}}
    base = Predictor.from_loaded(models).postprocess_config()
    configs = {name: dataclasses.replace(base, **changes) for name, changes in variants.items()}
    options = InferenceOptions(
        device="cpu",
        tta=tta,
        threads=threads,
        postprocess=next(iter(configs.values())),
        bias_correction=bias_correction,
    )
    out: dict[str, list[dict[str, Any]]] = {name: [] for name in configs}
    for done in predict_labelled_cases(models, case_dirs, options):
        folder, case, pred, ref, seconds = (
            done.folder,
            done.case,
            done.prediction,
            done.reference,
            done.seconds,
        )
        ref_ml = tumour_volumes_ml(
            ref.data, detect_convention(ref.data, source=str(ref.path)), case.spacing
        )
        for name, config in configs.items():
            labels = (
                pred.labels
                if config == pred.postprocess
                else postprocess(
                    pred.region_probs,
                    config,
                    convention=pred.convention,
                    class_probs=pred.class_probs,
                )
            )
            scores = evaluate_labels(
                labels, ref.data, spacing=case.spacing, pred_convention=pred.convention
            )
            out[name].append(
                {
                    "case": folder.name,
                    "seconds": round(seconds, 2),
                    "dice": {r: round(float(scores[r]["dice"]), 4) for r in REGIONS},
                    "hd95": {r: round(float(scores[r]["hd95"]), 2) for r in REGIONS},
                    "hd95_penalty": {r: bool(scores[r]["hd95_penalty"]) for r in REGIONS},
                    "timings": {k: round(v, 2) for k, v in pred.timings.items()},
                    "volume_ml": _rounded(tumour_volumes_ml(labels, pred.convention, case.spacing)),
                    "ref_volume_ml": _rounded(ref_ml),
                    "et_mean_prob": _mean_where(
                        pred.region_probs[2], region_masks(labels, pred.convention)["et"]
                    ),
                }
            )
        logger.info("%s: Dice %s, %.1f s", folder.name, out[next(iter(out))][-1]["dice"], seconds)
    return out


def _rounded(values: dict[str, float]) -> dict[str, float]:
    return {k: round(float(v), 3) for k, v in values.items()}


def _mean_where(values: Any, mask: Any) -> float:
    """Mean of ``values`` where ``mask`` (0.0 for an empty mask), rounded to 4 places."""
    n = int(mask.sum())
    return round(float(values[mask].astype("float64").sum() / n), 4) if n else 0.0


def evaluate_cases(
    loaded: LoadedModel | list[LoadedModel], case_dirs: list[Path], threads: int = 2, tta: int = 0
) -> list[dict[str, Any]]:
    """Predict each case at full resolution (CPU) and score it against its label map.

    Args:
        loaded: The model, or several for an ensemble (mean of their region probabilities; the
            ensemble's postprocessing, :func:`bratseg.zoo.ensemble_postprocess`, is used).
        case_dirs: Case folders with a ``*_seg`` file.
        threads: CPU threads for torch.
        tta: 0 (cards are measured without test-time augmentation) or 8 flips.

    Returns:
        One row per case, as in :func:`score_cases`.
    """
    return score_cases(loaded, case_dirs, threads, tta)[""]


def region_mean_std(
    rows: list[dict[str, Any]], key: str
) -> tuple[dict[str, float], dict[str, float]]:
    """Mean and sample std over cases of ``row[key][region]`` for each region (rounded to 4 places).

    Args:
        rows: Rows of :func:`evaluate_cases`.
        key: ``"dice"`` or ``"hd95"``.
    """
    values = {r: [float(row[key][r]) for row in rows] for r in REGIONS}
    mean = {r: round(statistics.fmean(v), 4) for r, v in values.items()}
    std = {r: round(statistics.stdev(v), 4) if len(v) > 1 else 0.0 for r, v in values.items()}
    return mean, std


def validation_case_dirs(
    loaded: LoadedModel, data: list[str] | None = None
) -> tuple[list[Path], list[str]]:
    """Folders of the checkpoint's validation cases, looked up in ``data`` (default: its training data).

    Raises:
        BratsInputError: No validation split recorded, or a validation case cannot be found.
    """
    from bratseg.training.data import discover_cases

    val = list(loaded.provenance.get("val_cases") or [])
    if not val:
        raise BratsInputError(
            "the checkpoint records no validation cases (provenance.val_cases): "
            "no honest validation score can be measured",
            loaded.path,
        )
    folders = [str(d) for d in (data or loaded.provenance.get("data") or [])]
    refs = {r.case_id: r.folder for r in discover_cases(folders)}
    missing = [c for c in val if c not in refs]
    if missing:
        raise BratsInputError(
            f"validation case(s) {', '.join(missing)} not found in {', '.join(folders)}"
        )
    return [Path(refs[c]) for c in val], folders


def pretrained_cases(provenance: dict[str, Any]) -> set[str]:
    """The cases that a fine-tuned checkpoint's initial weights were trained on, down its init chain.

    Read from ``provenance["pretrained_cases"]`` when the trainer recorded it; otherwise from the
    checkpoint named by ``provenance["init_from"]`` (its path, or a bundled model with the same
    sha256). Such cases can still be scored (they were not in the fold's training cases), but the
    score is not held out: :func:`bratseg.evaluation.protocol.protocol_summary` reports them apart.

    Args:
        provenance: A checkpoint's ``meta["provenance"]``.

    Returns:
        Case IDs (empty for weights trained from scratch).
    """
    if provenance.get("pretrained_cases") is not None:
        return set(provenance["pretrained_cases"])
    init = provenance.get("init_from") or {}
    if not init:
        return set()
    source = init_checkpoint(init)
    if source is None:
        logger.warning(
            "the initial weights %s (sha256 %s) are not found: the cases they were trained "
            "on are unknown",
            init.get("path"),
            str(init.get("sha256"))[:12],
        )
        return set()
    from bratseg.checkpoint import read_provenance

    prov = read_provenance(source)
    return set(prov.get("train_cases") or []) | pretrained_cases(prov)


def init_checkpoint(init: dict[str, Any]) -> Path | None:
    """The checkpoint file ``init`` (``{"path", "sha256"}``) names, found by path or bundled sha256."""
    from bratseg.checkpoint import file_sha256
    from bratseg.zoo import bundled_models

    want = str(init.get("sha256") or "")
    path = Path(str(init.get("path") or ""))
    if path.is_file() and (not want or file_sha256(path) == want):
        return path
    for entry in bundled_models():
        if want and file_sha256(entry.path) == want:
            return Path(entry.path)
    return None


def check_held_out(models: list[LoadedModel], case_ids: list[str]) -> None:
    """Refuse scoring ``case_ids`` with a model that trained on any of them.

    Raises:
        BratsInputError: One of the models lists one of the cases among its training cases.
    """
    for model in models:
        seen = sorted(set(case_ids) & set(model.provenance.get("train_cases") or []))
        if seen:
            raise BratsInputError(f"trained on {', '.join(seen)}: not a held-out score", model.path)
