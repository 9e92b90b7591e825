"""The inference engine: case + checkpoints -> region probabilities and a label map.

:func:`run_inference` is a generator (stardist-napari style): it yields :class:`Progress` between
steps and *returns* a :class:`Prediction`, so napari's ``thread_worker`` can drive it and the CLI
can show a progress bar. It stops between steps when ``should_stop()`` becomes true (raising
:class:`bratseg.errors.Cancelled`) or when the consumer closes the generator.

Several models make an ensemble by averaging region probabilities in the source grid (seeds
000/001/003); each model uses its own preprocessing (``meta["preprocess"]``), and class-output
models are turned into region probabilities first.

Each model sees the case in the orientation it was trained in (``meta["orientation"]``, axis
codes; the BraTS storage LPS when a checkpoint records none): the image is flipped/permuted to
it before preprocessing (no resampling) and the probabilities are brought back exactly, so a
case stored LPS, RAS or with permuted axes gets the same labels in its own geometry.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from typing import Any, cast

import numpy as np
import torch

from bratseg.errors import BratsInputError, Cancelled
from bratseg.inference.device import select_device
from bratseg.inference.model_meta import (
    channel_order,
    model_name,
    model_preprocess_config,
    model_reorientation,
    size_divisor,
)
from bratseg.inference.spread import MemberSpread, RunningRange, class_tensor_to_regions
from bratseg.inference.tta import apply_flip, flip_sets
from bratseg.inference.window import (
    DEFAULT_OVERLAP,
    DEFAULT_WHOLE_VOLUME_MAX_VOXELS,
    ForwardPlan,
    forward_probabilities,
)
from bratseg.io.channels import MODALITIES
from bratseg.labels import CLASSES, REGIONS, Convention, check_convention
from bratseg.postprocess.enhancement import EnhancementEvidence
from bratseg.preprocess import (
    PreprocessInfo,
    invert_probabilities,
    preprocess_with_config,
)
from bratseg.progress import Progress, run_to_end

logger = logging.getLogger(__name__)

#: Class probabilities outside the brain box: background certain (CLASSES order).
_CLASS_FILL = (1.0, 0.0, 0.0, 0.0)


@dataclass
class InferenceOptions:
    """How to run a prediction.

    Attributes:
        device: ``"auto"`` (CUDA -> MPS -> CPU), ``"cpu"``, ``"cuda"`` or ``"mps"``.
        tta: Flip test-time augmentation: 0 (none) or 8 (Futrega et al. 2021).
        overlap: Sliding-window overlap (Futrega et al. 2021: 0.5).
        window: Sliding-window size; ``None`` = whole volume when it fits, else 128^3 (Futrega et al. 2021).
        amp: Mixed precision on CUDA.
        whole_volume_max_voxels: Largest network input run in one pass (auto-mode only).
        postprocess: :class:`bratseg.postprocess.PostprocessConfig`; ``None`` = first checkpoint's default.
        convention: Label convention of the output label map.
        threads: CPU threads for torch (``None`` = CPUs available to the process).
        keep_class_probs: Return class probabilities when every model outputs classes (always
            done for ``postprocess.mode == "argmax"``, which needs them).
        keep_spread: Also return the members' disagreement (:class:`MemberSpread`: models of an
            ensemble, else the flips of TTA; nothing for one model without TTA).
    """

    device: str = "auto"
    tta: int = 0
    overlap: float = DEFAULT_OVERLAP
    window: tuple[int, int, int] | None = None
    amp: bool = True
    whole_volume_max_voxels: int = DEFAULT_WHOLE_VOLUME_MAX_VOXELS
    postprocess: Any = None
    convention: Convention = "2021"
    threads: int | None = None
    keep_class_probs: bool = False
    keep_spread: bool = False


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
    postprocess: Any
    convention: Convention
    class_probs: np.ndarray | None = None
    notes: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    spread: MemberSpread | None = None
    et_evidence: EnhancementEvidence | None = None


def _as_float16(array: np.ndarray) -> np.ndarray:
    """float16 copy (torch's conversion is several times faster than numpy's)."""
    if array.dtype == np.float16:
        return array
    return torch.from_numpy(np.ascontiguousarray(array)).half().numpy()


def _postprocess_config(options: InferenceOptions, models: list[Any]) -> Any:
    from bratseg.postprocess import PostprocessConfig

    if options.postprocess is not None:
        if isinstance(options.postprocess, dict):
            return PostprocessConfig.from_dict(options.postprocess)
        return options.postprocess
    return PostprocessConfig.from_dict(dict(models[0].meta.get("postprocess") or {}))


def _to_source(net: np.ndarray, info: PreprocessInfo, reo: Any, dtype: Any) -> np.ndarray:
    """Network-grid (K, x, y, z) probabilities -> the case's source storage (K, X, Y, Z)."""
    regions = invert_probabilities(net, info, dtype=dtype)
    if reo is not None:
        regions = reo.invert(regions, leading=1)  # back to the source storage, exactly
    return regions


def run_inference(
    case: Any,
    models: list[Any],
    options: InferenceOptions | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> Generator[Progress, None, Prediction]:
    """Predict one case, yielding progress; the generator's return value is the Prediction.

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
    from bratseg.postprocess import class_probs_to_region_probs, postprocess_with_evidence

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
    device, description = select_device(options.device, options.threads)
    plan = ForwardPlan(
        device=device,
        description=description,
        window=tuple(options.window) if options.window else None,  # type: ignore[arg-type]
        overlap=float(options.overlap),
        amp=bool(options.amp),
        whole_volume_max_voxels=int(options.whole_volume_max_voxels),
    )
    timings = {"preprocess": 0.0, "network": 0.0, "invert": 0.0, "postprocess": 0.0}

    def check() -> None:
        if should_stop is not None and should_stop():
            raise Cancelled("inference cancelled")

    total = len(models) * (len(flips) + 2) + 1
    step = 0
    all_classes = all(m.spec.output_kind == "classes" for m in models)
    want_classes = all_classes and (
        options.keep_class_probs or getattr(pp_config, "mode", "") == "argmax"
    )
    region_sum: np.ndarray | None = None
    model_range = RunningRange() if options.keep_spread and len(models) > 1 else None
    spread: MemberSpread | None = None
    class_sum: np.ndarray | None = None
    cache: dict[tuple, tuple[np.ndarray, PreprocessInfo]] = {}
    # Members sharing a preprocessing add their network-grid probabilities here; the inverse
    # (unpad, resample, reorient) is linear, so one inversion of the sum is the sum of theirs.
    grid_sums: dict[tuple, tuple[np.ndarray, PreprocessInfo, Any]] = {}
    image = np.asarray(case.image)
    spacing = tuple(float(s) for s in case.spacing)
    affine = getattr(case, "affine", None)

    for index, loaded in enumerate(models):
        name = model_name(loaded)
        tag = f"model {index + 1}/{len(models)} ({name})" if len(models) > 1 else name
        check()
        yield Progress(step, total, f"{tag}: preprocessing")
        t0 = time.perf_counter()
        cfg = model_preprocess_config(loaded)
        order = channel_order(loaded)
        reo = model_reorientation(loaded, affine)
        key = (
            tuple(sorted(cfg.to_dict().items())),
            tuple(order or ()),
            reo.target if reo else None,
        )
        if key not in cache:
            src = image if order is None else image[order]
            if reo is not None and not reo.identity:
                src = reo.apply(src, leading=1)
            src_spacing = cast(tuple[float, float, float], reo.spacing(spacing) if reo else spacing)
            cache[key] = preprocess_with_config(src, src_spacing, cfg)
        x_np, info = cache[key]
        timings["preprocess"] += time.perf_counter() - t0
        step += 1
        x = torch.from_numpy(x_np)[None]
        kind = loaded.spec.output_kind
        divisor = size_divisor(loaded)
        loaded.model.eval()
        probs: torch.Tensor | None = None
        flip_range = (
            RunningRange() if options.keep_spread and len(models) == 1 and len(flips) > 1 else None
        )
        for k, axes in enumerate(flips):
            check()
            flip_txt = f" (flip {k + 1}/{len(flips)})" if len(flips) > 1 else ""
            yield Progress(step, total, f"{tag}: network{flip_txt} on {plan.description}")
            n_notes = len(plan.notes)
            t0 = time.perf_counter()
            out = apply_flip(
                forward_probabilities(
                    loaded.model,
                    apply_flip(x, axes),
                    plan,
                    output_kind=kind,
                    divisor=divisor,
                    should_stop=should_stop,
                ),
                axes,
            )
            if flip_range is not None:
                flip_range.update(class_tensor_to_regions(out) if kind == "classes" else out)
            probs = out if probs is None else probs.add_(out)
            timings["network"] += time.perf_counter() - t0
            logger.debug("%s%s: %s", tag, flip_txt, plan.last_mode)
            for note in plan.notes[n_notes:]:
                yield Progress(step, total, note)
            step += 1
        assert probs is not None
        if len(flips) > 1:
            probs.div_(len(flips))
        check()
        t0 = time.perf_counter()
        net = probs[0].numpy()
        del probs
        if kind == "regions" and model_range is None and flip_range is None:
            yield Progress(step, total, f"{tag}: added to the ensemble")
            if key in grid_sums:
                np.add(grid_sums[key][0], net, out=grid_sums[key][0])
            else:
                grid_sums[key] = (net, info, reo)
            timings["invert"] += time.perf_counter() - t0
            step += 1
            continue
        yield Progress(step, total, f"{tag}: restoring source geometry")
        acc_dtype = np.float16 if len(models) == 1 else np.float32
        if kind == "classes":
            if want_classes:
                full_classes = invert_probabilities(net, info, dtype=acc_dtype, fill=_CLASS_FILL)
                if reo is not None:
                    full_classes = reo.invert(full_classes, leading=1)
                class_sum = (
                    full_classes
                    if class_sum is None
                    else np.add(class_sum, full_classes, out=class_sum)
                )
                del full_classes
            # WT/TC/ET are linear in the class probabilities, so converting before the (linear)
            # inverse resampling is exact and moves 3 instead of 4 channels.
            net = np.asarray(class_probs_to_region_probs(net), dtype=np.float32)
        regions = _to_source(net, info, reo, acc_dtype)
        del net
        if flip_range is not None:
            flip_spread = invert_probabilities(
                flip_range.spread()[0].numpy(), info, dtype=np.float16
            )
            flip_spread = reo.invert(flip_spread, leading=1) if reo is not None else flip_spread
            spread = MemberSpread(np.ascontiguousarray(flip_spread), "TTA disagreement", len(flips))
        if model_range is not None:
            model_range.update(regions)
        region_sum = regions if region_sum is None else np.add(region_sum, regions, out=region_sum)
        del regions
        timings["invert"] += time.perf_counter() - t0
        step += 1

    for net, info, reo in grid_sums.values():
        check()
        yield Progress(step, total, "restoring source geometry")
        t0 = time.perf_counter()
        regions = _to_source(net, info, reo, np.float16 if len(models) == 1 else np.float32)
        region_sum = regions if region_sum is None else np.add(region_sum, regions, out=region_sum)
        del regions
        timings["invert"] += time.perf_counter() - t0
    grid_sums.clear()
    assert region_sum is not None
    check()
    yield Progress(step, total, "postprocessing")
    t0 = time.perf_counter()
    if len(models) > 1:
        region_sum /= len(models)
        if class_sum is not None:
            class_sum /= len(models)
    region_probs = _as_float16(region_sum)
    if model_range is not None:
        spread = MemberSpread(
            cast(np.ndarray, model_range.spread()), "ensemble disagreement", len(models)
        )
    class_probs = _as_float16(class_sum) if class_sum is not None else None
    del region_sum, class_sum
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
    timings["postprocess"] = time.perf_counter() - t0
    step += 1
    seconds = time.perf_counter() - t_start
    used = plan.description
    yield Progress(total, total, f"done in {seconds:.1f} s on {used}")
    assert region_probs.shape == (len(REGIONS), *image.shape[1:])
    assert class_probs is None or class_probs.shape[0] == len(CLASSES)
    return Prediction(
        region_probs=region_probs,
        labels=labels,
        device=used,
        seconds=seconds,
        models=[model_name(m) for m in models],
        postprocess=pp_config,
        convention=convention,
        class_probs=class_probs,
        notes=notes,
        timings=timings,
        spread=spread,
        et_evidence=et_evidence,
    )


def t1_t1ce(image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """T1 and T1Gd of a (4, X, Y, Z) case image in :data:`MODALITIES` order (for the
    no-enhancement ET rule)."""
    return image[MODALITIES.index("t1")], image[MODALITIES.index("t1ce")]


def predict_case(
    case: Any,
    models: list[Any],
    options: InferenceOptions | None = None,
    progress: Callable[[Progress], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> Prediction:
    """Run :func:`run_inference` to completion, passing each :class:`Progress` to ``progress``."""
    return run_to_end(run_inference(case, models, options, should_stop=should_stop), progress)
