"""One network forward pass to probabilities: whole volume or MONAI sliding window.

The whole brain crop goes through the network in one pass when it is small enough (the fast
CPU path: no overlap, no blending, no MONAI import). Larger inputs use MONAI's ``sliding_window_inference`` with
Gaussian importance weighting (Futrega et al. 2021: 128^3 windows, overlap 0.5). Mixed precision
(``amp``): autocast float16 on CUDA, bfloat16 on a CPU that computes it natively
(:func:`bratseg.inference.device.mixed_precision_dtype`). On the CPU the network and its input use
the channels-last memory layout, which oneDNN's 3-D convolutions run faster. An out-of-memory error first retries with sliding windows, then
with smaller windows (down to 32^3), then (from a GPU) on the CPU; each step is logged and recorded
in :attr:`ForwardPlan.notes`.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import cast

import torch

from bratseg.errors import Cancelled
from bratseg.inference.device import describe_compute, mixed_precision_dtype

logger = logging.getLogger(__name__)

#: Futrega et al. 2021: sliding window 128^3, overlap 0.5, Gaussian weighting.
DEFAULT_WINDOW = (128, 128, 128)
DEFAULT_OVERLAP = 0.5
#: Largest input (voxels) run as one whole-volume pass; ~ a 1 mm brain crop padded to 16.
DEFAULT_WHOLE_VOLUME_MAX_VOXELS = 192 * 192 * 160
#: Windows are never shrunk below this edge length on OOM before moving to the CPU.
MIN_WINDOW = 32


@dataclass
class ForwardPlan:
    """Mutable execution state shared by every forward pass of one prediction.

    Attributes:
        device: Where the network runs now (may change to CPU after an OOM).
        description: Human description of ``device`` and its precision, e.g.
            ``"CPU (2 threads), bfloat16"``.
        window: Sliding-window size, or ``None`` to decide per input (whole volume when it fits).
        overlap: Sliding-window overlap fraction.
        amp: Mixed precision: autocast float16 on CUDA, bfloat16 on a CPU with native bfloat16.
        whole_volume_max_voxels: Inputs up to this many voxels run whole when ``window`` is None.
        notes: Messages about fallbacks that happened (shown to the user).
    """

    device: torch.device
    description: str
    window: tuple[int, int, int] | None = None
    overlap: float = DEFAULT_OVERLAP
    amp: bool = True
    whole_volume_max_voxels: int = DEFAULT_WHOLE_VOLUME_MAX_VOXELS
    notes: list[str] = field(default_factory=list)
    last_mode: str = ""


def is_out_of_memory(exc: BaseException) -> bool:
    """Whether ``exc`` is an accelerator out-of-memory error."""
    oom_types = tuple(
        t
        for t in (
            getattr(torch, "OutOfMemoryError", None),
            getattr(torch.cuda, "OutOfMemoryError", None),
        )
        if t
    )
    if oom_types and isinstance(exc, oom_types):
        return True
    text = str(exc).lower()
    return isinstance(exc, RuntimeError) and (
        "out of memory" in text or "can't allocate memory" in text
    )


def activate(logits: torch.Tensor, output_kind: str) -> torch.Tensor:
    """Logits (B, K, ...) -> probabilities: sigmoid for ``"regions"``, softmax over K for ``"classes"``."""
    logits = logits.float()
    if output_kind == "classes":
        return torch.softmax(logits, dim=1)
    return torch.sigmoid(logits)


def _logits(output: object) -> torch.Tensor:
    """The main logits tensor of a model output (tensor, dict with "logits", or sequence)."""
    if isinstance(output, torch.Tensor):
        return output
    if isinstance(output, dict):
        return output["logits"]
    if isinstance(output, (list, tuple)):
        return output[0]
    raise TypeError(f"unexpected model output type {type(output).__name__}")


def fit_window(
    window: tuple[int, ...], shape: tuple[int, ...], divisor: int
) -> tuple[int, int, int]:
    """Clip ``window`` to ``shape`` and round each edge down to a multiple of ``divisor`` (>= divisor)."""
    out = []
    for w, s in zip(window, shape):
        w = min(int(w), int(s))
        out.append(max(divisor, (w // divisor) * divisor))
    return tuple(out)  # type: ignore[return-value]


def _run(
    model: torch.nn.Module,
    x: torch.Tensor,
    plan: ForwardPlan,
    output_kind: str,
    divisor: int,
    should_stop: Callable[[], bool] | None,
) -> torch.Tensor:
    device = plan.device
    amp_dtype = mixed_precision_dtype(device, plan.amp)
    layout = torch.channels_last_3d if device.type == "cpu" else torch.contiguous_format
    # in place: the same weights, only their strides change (the stubs lack memory_format);
    # put back afterwards, as a network still in training steps faster in the plain layout
    model.to(memory_format=layout)  # type: ignore[call-overload]
    shape = tuple(x.shape[2:])

    def predict(chunk: torch.Tensor) -> torch.Tensor:
        if should_stop is not None and should_stop():
            raise Cancelled("inference cancelled")
        chunk = chunk.to(device, non_blocking=True).contiguous(memory_format=layout)
        with torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
            return activate(_logits(model(chunk)), output_kind).contiguous()

    try:
        with torch.no_grad():
            if plan.window is None and math.prod(shape) <= plan.whole_volume_max_voxels:
                plan.last_mode = "whole volume"
                return predict(x).cpu()
            # Imported here: importing MONAI takes seconds; the whole-volume path needs none of it.
            from monai.inferers import sliding_window_inference

            window = fit_window(plan.window or DEFAULT_WINDOW, shape, divisor)
            plan.last_mode = f"sliding window {'x'.join(map(str, window))}"
            out = sliding_window_inference(
                x,
                roi_size=window,
                sw_batch_size=1,
                predictor=predict,
                overlap=plan.overlap,
                mode="gaussian",  # Futrega et al. 2021: Gaussian importance weighting
                sw_device=device,
                device=device if device.type == "cuda" and not plan.notes else torch.device("cpu"),
            )
            return cast(torch.Tensor, out).float().cpu()
    finally:
        model.to(memory_format=torch.contiguous_format)  # type: ignore[call-overload]


def forward_probabilities(
    model: torch.nn.Module,
    x: torch.Tensor,
    plan: ForwardPlan,
    *,
    output_kind: str = "regions",
    divisor: int = 16,
    should_stop: Callable[[], bool] | None = None,
) -> torch.Tensor:
    """Probabilities of ``model`` on ``x`` with OOM fallbacks.

    Args:
        model: Network in eval mode (moved to ``plan.device`` here when needed).
        x: Input (1, C, X, Y, Z) float32 on the CPU; X, Y, Z multiples of ``divisor``.
        plan: Execution state; updated in place on fallback (smaller window, CPU).
        output_kind: ``"regions"`` (sigmoid) or ``"classes"`` (softmax).
        divisor: The network's size divisor (window edges are multiples of it).
        should_stop: Checked before every window; raising :class:`Cancelled` when true.

    Returns:
        float32 (1, K, X, Y, Z) probabilities on the CPU.
    """
    while True:
        _move(model, plan.device)
        try:
            return _run(model, x, plan, output_kind, divisor, should_stop)
        except Exception as exc:  # noqa: BLE001 - filtered to OOM below
            if not is_out_of_memory(exc):
                raise
            _free(plan.device)
            shape = tuple(x.shape[2:])
            current = fit_window(plan.window or DEFAULT_WINDOW, shape, divisor)
            whole = plan.window is None and math.prod(shape) <= plan.whole_volume_max_voxels
            if whole and current != shape:
                plan.window = current
                note = f"out of memory on {plan.description} for the whole volume; retrying with {current} windows"
            elif max(current) // 2 >= max(MIN_WINDOW, divisor):
                plan.window = fit_window(
                    tuple(max(divisor, w // 2) for w in current), shape, divisor
                )
                note = f"out of memory on {plan.description}; retrying with smaller {plan.window} windows"
            elif plan.device.type != "cpu":
                old = plan.description
                plan.device = torch.device("cpu")
                plan.description = describe_compute(plan.device, plan.amp)
                plan.window = None
                note = f"out of memory on {old}; falling back to {plan.description}"
            else:
                raise
            logger.warning(note)
            plan.notes.append(note)


def _move(model: torch.nn.Module, device: torch.device) -> None:
    try:
        current = next(model.parameters()).device
    except StopIteration:
        return
    if current != device:
        model.to(device)


def _free(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.empty_cache()
