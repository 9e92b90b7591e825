"""The inference engine: case + checkpoints -> region probabilities and a label map.

:func:`run_inference` is a generator (stardist-napari style): it yields :class:`Progress` between
steps and *returns* a :class:`Prediction`, so napari's ``thread_worker`` can drive it and the CLI
can show a progress bar. It stops between steps when ``should_stop()`` becomes true (raising
:class:`bratseg.errors.Cancelled`) or when the consumer closes the generator.

Several models make an ensemble by averaging region probabilities in the source grid; each model uses its own preprocessing (``meta["preprocess"]``), and class-output
models are turned into region probabilities first.

Each model sees the case in the orientation it was trained in (``meta["orientation"]``, axis
codes; the BraTS storage LPS when a checkpoint records none): the image is flipped/permuted to
it before preprocessing (no resampling) and the probabilities are brought back exactly, so a
case stored LPS, RAS or with permuted axes gets the same labels in its own geometry.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from bratseg.errors import BratsInputError, Cancelled
from bratseg.inference.device import describe_compute, select_device
from bratseg.inference.members import EnsembleAccumulator, RunContext, member_probabilities
from bratseg.inference.spread import MemberSpread
from bratseg.inference.tta import flip_sets
from bratseg.inference.window import (
    DEFAULT_OVERLAP,
    DEFAULT_WHOLE_VOLUME_MAX_VOXELS,
    ForwardPlan,
)
from bratseg.io.channels import MODALITIES
from bratseg.labels import CLASSES, REGIONS, Convention, check_convention
from bratseg.postprocess.enhancement import EnhancementEvidence
from bratseg.progress import Progress, run_to_end

if TYPE_CHECKING:
    from bratseg.checkpoint import LoadedModel
    from bratseg.io import Case
    from bratseg.postprocess import PostprocessConfig

logger = logging.getLogger(__name__)


@dataclass
class InferenceOptions:
    """How to run a prediction.

    Attributes:
        device: ``"auto"`` (CUDA -> MPS -> CPU), ``"cpu"``, ``"cuda"`` or ``"mps"``.
        tta: Flip test-time augmentation: 0 (none) or 8 (Futrega et al. 2021).
        overlap: Sliding-window overlap (Futrega et al. 2021: 0.5).
        window: Sliding-window size; ``None`` = whole volume when it fits, else 128^3 (Futrega et al. 2021).
        amp: Mixed precision (float16 on CUDA, bfloat16 on a CPU that computes it natively).
        whole_volume_max_voxels: Largest network input run in one pass (auto-mode only).
        postprocess: :class:`bratseg.postprocess.PostprocessConfig` (or its dict form);
            ``None`` = first checkpoint's default.
        convention: Label convention of the output label map.
        threads: CPU threads for torch (``None`` = CPUs available to the process).
        keep_class_probs: Return class probabilities when every model outputs classes (always
            done for ``postprocess.mode == "argmax"``, which needs them).
        keep_spread: Also return the members' disagreement (:class:`MemberSpread`: models of an
            ensemble, else the flips of TTA; nothing for one model without TTA).
        bias_correction: N4 bias-field correction of the input before every model (``True``),
            before none (``False``), or as each model was trained (``None``, the default; see
            ``PreprocessConfig.bias_correction``).
    """

    device: str = "auto"
    tta: int = 0
    overlap: float = DEFAULT_OVERLAP
    window: tuple[int, int, int] | None = None
    amp: bool = True
    whole_volume_max_voxels: int = DEFAULT_WHOLE_VOLUME_MAX_VOXELS
    postprocess: PostprocessConfig | dict[str, Any] | None = None
    convention: Convention = "2021"
    threads: int | None = None
    keep_class_probs: bool = False
    keep_spread: bool = False
    bias_correction: bool | None = None


@dataclass
class Prediction:
    """Result of :func:`run_inference`, in the case's source grid.

    Attributes:
        region_probs: float16 (3, X, Y, Z), WT/TC/ET order (:data:`bratseg.labels.REGIONS`).
        labels: uint8 (X, Y, Z) after postprocessing, in ``convention``.
        device: Device actually used (after any fallback).
        seconds: Wall time of the whole prediction.
        models: Model names (checkpoint file stems).
        postprocess: The PostprocessConfig used.
        convention: Label convention of ``labels``.
        class_probs: float16 (4, X, Y, Z) when every model outputs classes and they were needed
            (argmax postprocessing or ``keep_class_probs``), else ``None``.
        notes: Fallback messages (e.g. CUDA out of memory -> CPU).
        timings: Seconds per phase (``preprocess``, ``network``, ``invert``, ``postprocess``).
        spread: Members' disagreement when ``keep_spread`` was asked and there were members.
        et_evidence: What the no-enhancement ET rule measured and decided (``None`` when the
            rule is off or there was no ET).
    """

    region_probs: np.ndarray
    labels: np.ndarray
    device: str
    seconds: float
    models: list[str]
    postprocess: PostprocessConfig
    convention: Convention
    class_probs: np.ndarray | None = None
    notes: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    spread: MemberSpread | None = None
    et_evidence: EnhancementEvidence | None = None


def _postprocess_config(options: InferenceOptions, models: list[LoadedModel]) -> PostprocessConfig:
    from bratseg.postprocess import PostprocessConfig

    if options.postprocess is not None:
        if isinstance(options.postprocess, dict):
            return PostprocessConfig.from_dict(options.postprocess)
        return options.postprocess
    return PostprocessConfig.from_dict(dict(models[0].meta.get("postprocess") or {}))


def run_inference(
    case: Case,
    models: Sequence[LoadedModel],
    options: InferenceOptions | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> Generator[Progress, None, Prediction]:
    """Predict one case, yielding progress; the generator's return value is the Prediction.

    The steps: each member in turn (:func:`~bratseg.inference.members.member_probabilities`:
    reorient, preprocess, forward + TTA), added to the ensemble
    (:class:`~bratseg.inference.members.EnsembleAccumulator`: back to the source grid, mean),
    then postprocessing. Front ends use :class:`bratseg.predictor.Predictor`, which loads the
    checkpoints once and chooses the postprocessing.

    Args:
        case: :class:`bratseg.io.Case` (image float32 (4, X, Y, Z), spacing).
        models: One or more :class:`bratseg.checkpoint.LoadedModel` (several = ensemble).
        options: :class:`InferenceOptions` (defaults when ``None``).
        should_stop: Polled between steps and before every sliding window.

    Yields:
        :class:`Progress` before each step, and a final one with ``step == total``.

    Returns:
        :class:`Prediction` with float16 (3, X, Y, Z) region probabilities and uint8 labels.

    Raises:
        Cancelled: ``should_stop()`` returned true.
        BratsInputError: No model, bad options.
    """
    from bratseg.postprocess import postprocess_with_evidence

    t_start = time.perf_counter()
    options = options or InferenceOptions()
    models = list(models)
    if not models:
        raise BratsInputError("no model given for inference")
    convention = check_convention(options.convention)
    if not 0.0 <= float(options.overlap) < 1.0:
        raise BratsInputError(f"overlap must be in [0, 1), got {options.overlap}")
    flips = flip_sets(options.tta)
    pp_config = _postprocess_config(options, models)
    device, _ = select_device(options.device, options.threads)
    plan = ForwardPlan(
        device=device,
        description=describe_compute(device, bool(options.amp)),
        window=tuple(options.window) if options.window else None,  # type: ignore[arg-type]
        overlap=float(options.overlap),
        amp=bool(options.amp),
        whole_volume_max_voxels=int(options.whole_volume_max_voxels),
    )

    def check() -> None:
        if should_stop is not None and should_stop():
            raise Cancelled("inference cancelled")

    image = np.asarray(case.image)
    ctx = RunContext(
        image=image,
        spacing=tuple(float(s) for s in case.spacing),
        affine=getattr(case, "affine", None),
        flips=flips,
        plan=plan,
        check=check,
        should_stop=should_stop,
        step=0,
        total=len(models) * (len(flips) + 2) + 1,
        timings={"preprocess": 0.0, "network": 0.0, "invert": 0.0, "postprocess": 0.0},
        bias_correction=options.bias_correction,
    )
    all_classes = all(m.spec.output_kind == "classes" for m in models)
    ensemble = EnsembleAccumulator(
        len(models),
        want_classes=all_classes
        and (options.keep_class_probs or getattr(pp_config, "mode", "") == "argmax"),
        keep_spread=options.keep_spread,
    )
    keep_flip_spread = options.keep_spread and len(models) == 1 and len(flips) > 1

    for index, loaded in enumerate(models):
        name = loaded.name
        tag = f"model {index + 1}/{len(models)} ({name})" if len(models) > 1 else name
        member = yield from member_probabilities(loaded, tag, ctx, keep_flip_spread)
        check()
        t0 = time.perf_counter()
        if ensemble.stays_in_grid(member):
            yield ctx.progress(f"{tag}: added to the ensemble")
        else:
            yield ctx.progress(f"{tag}: restoring source geometry")
        ensemble.add(member)
        del member
        ctx.timings["invert"] += time.perf_counter() - t0
        ctx.step += 1

    for key in ensemble.grid_sums():
        check()
        yield ctx.progress("restoring source geometry")
        t0 = time.perf_counter()
        ensemble.add_grid_sum(key)
        ctx.timings["invert"] += time.perf_counter() - t0
    check()
    yield ctx.progress("postprocessing")
    t0 = time.perf_counter()
    region_probs, class_probs, spread = ensemble.finish()
    labels, et_evidence = postprocess_with_evidence(
        region_probs,
        pp_config,
        convention=convention,
        class_probs=class_probs,
        t1_t1ce=t1_t1ce(image),
    )
    labels = np.asarray(labels, dtype=np.uint8)
    notes = list(plan.notes)
    if et_evidence is not None and et_evidence.removed:
        notes.append(et_evidence.message(float(np.prod(case.spacing)) / 1000.0))
    ctx.timings["postprocess"] = time.perf_counter() - t0
    seconds = time.perf_counter() - t_start
    used = plan.description
    yield Progress(ctx.total, ctx.total, f"done in {seconds:.1f} s on {used}")
    assert region_probs.shape == (len(REGIONS), *image.shape[1:])
    assert class_probs is None or class_probs.shape[0] == len(CLASSES)
    return Prediction(
        region_probs=region_probs,
        labels=labels,
        device=used,
        seconds=seconds,
        models=[m.name for m in models],
        postprocess=pp_config,
        convention=convention,
        class_probs=class_probs,
        notes=notes,
        timings=ctx.timings,
        spread=spread,
        et_evidence=et_evidence,
    )


def t1_t1ce(image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """T1 and T1Gd of a (4, X, Y, Z) case image in :data:`MODALITIES` order (for the
    no-enhancement ET rule)."""
    return image[MODALITIES.index("t1")], image[MODALITIES.index("t1ce")]


def predict_case(
    case: Case,
    models: Sequence[LoadedModel],
    options: InferenceOptions | None = None,
    progress: Callable[[Progress], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> Prediction:
    """Run :func:`run_inference` to completion, passing each :class:`Progress` to ``progress``."""
    return run_to_end(run_inference(case, models, options, should_stop=should_stop), progress)
