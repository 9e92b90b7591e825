"""The two halves of :func:`bratseg.inference.run_inference`: one member, then the ensemble.

- :func:`member_probabilities` runs one checkpoint on the case: orientation and channel order,
  preprocessing (shared by members with the same preprocessing), the flip TTA passes and their
  mean, in the network grid;
- :class:`EnsembleAccumulator` brings each member's probabilities back to the case's source grid
  and averages them: region and class probability sums, the members' spread, and the fast path
  that sums region-output members in their shared network grid and inverts the sum once.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import torch

from bratseg.inference.spread import MemberSpread, RunningRange, class_tensor_to_regions
from bratseg.inference.tta import apply_flip
from bratseg.inference.window import ForwardPlan, forward_probabilities
from bratseg.preprocess import PreprocessInfo, invert_probabilities, preprocess_with_config
from bratseg.progress import Progress

if TYPE_CHECKING:
    from bratseg.checkpoint import LoadedModel
    from bratseg.orientation import Reorientation

logger = logging.getLogger(__name__)

#: Class probabilities outside the brain box: background certain (CLASSES order).
CLASS_FILL = (1.0, 0.0, 0.0, 0.0)

#: Identifies one preprocessing of the case: (config items, channel order, model orientation).
PreprocessKey = tuple[Any, ...]


@dataclass
class RunContext:
    """What every member of one run shares.

    Attributes:
        image: float32 (4, X, Y, Z) case image in its source storage.
        spacing: Voxel size (mm) of ``image``.
        affine: 4x4 voxel-to-world of the case, or ``None`` (taken as stored).
        flips: Flip axis sets of the TTA (``[()]`` without TTA).
        plan: Where and how the network runs (may fall back to CPU during the run).
        check: Raises :class:`bratseg.errors.Cancelled` when the run was stopped.
        should_stop: Polled before every sliding window.
        step: Progress step reached so far; ``total`` steps in all.
        total: Steps of the whole run.
        timings: Seconds per phase, accumulated (``preprocess``, ``network``, ``invert``, ...).
        preprocessed: Preprocessed inputs by :data:`PreprocessKey`, shared between members.
        bias_correction: N4 before every member (``True``), before none (``False``), or as
            each model's preprocessing says (``None``).
    """

    image: np.ndarray
    spacing: tuple[float, ...]
    affine: np.ndarray | None
    flips: list[tuple[int, ...]]
    plan: ForwardPlan
    check: Callable[[], None]
    should_stop: Callable[[], bool] | None
    step: int
    total: int
    timings: dict[str, float]
    preprocessed: dict[PreprocessKey, tuple[np.ndarray, PreprocessInfo]] = field(
        default_factory=dict
    )
    bias_correction: bool | None = None

    def progress(self, message: str) -> Progress:
        """A :class:`Progress` at the current step."""
        return Progress(self.step, self.total, message)


@dataclass
class MemberOutput:
    """One member's probabilities in its network grid.

    Attributes:
        probs: float32 (1, K, x, y, z) tensor, the mean over the TTA flips; K = 3 regions
            (WT/TC/ET) or 4 classes (``kind``).
        kind: ``"regions"`` or ``"classes"``.
        info: How the network grid maps back to the (reoriented) case grid.
        reo: Reorientation from the case storage to the model's orientation, or ``None``.
        key: The member's preprocessing (members with equal keys share a network grid).
        flip_range: The flips' running range when the TTA spread was asked, else ``None``.
        n_flips: TTA passes averaged into ``probs``.
    """

    probs: torch.Tensor
    kind: str
    info: PreprocessInfo
    reo: Reorientation | None
    key: PreprocessKey
    flip_range: RunningRange | None
    n_flips: int


def _preprocessed(
    loaded: LoadedModel, ctx: RunContext
) -> tuple[np.ndarray, PreprocessInfo, Reorientation | None, PreprocessKey]:
    """The member's network input (C, x, y, z), computed once per distinct preprocessing."""
    cfg = loaded.preprocess_config()
    if ctx.bias_correction is not None:
        cfg = replace(cfg, bias_correction=ctx.bias_correction)
    order = loaded.channel_order
    reo = loaded.reorientation(ctx.affine)
    key = (
        tuple(sorted(cfg.to_dict().items())),
        tuple(order or ()),
        reo.target if reo else None,
    )
    if key not in ctx.preprocessed:
        src = ctx.image if order is None else ctx.image[order]
        if reo is not None and not reo.identity:
            src = reo.apply(src, leading=1)
        spacing = cast(tuple[float, float, float], reo.spacing(ctx.spacing) if reo else ctx.spacing)
        ctx.preprocessed[key] = preprocess_with_config(src, spacing, cfg)
    x_np, info = ctx.preprocessed[key]
    return x_np, info, reo, key


def member_probabilities(
    loaded: LoadedModel, tag: str, ctx: RunContext, keep_flip_spread: bool
) -> Generator[Progress, None, MemberOutput]:
    """Run one checkpoint on the case: preprocessing, then every TTA flip (their mean).

    Advances ``ctx.step`` by 1 + the number of flips.

    Args:
        loaded: The checkpoint.
        tag: Its name in progress messages.
        ctx: The run's shared state.
        keep_flip_spread: Track the flips' range (one model with TTA, spread asked).

    Yields:
        :class:`Progress` before preprocessing, before each flip, and any fallback note.

    Returns:
        The member's :class:`MemberOutput`.
    """
    ctx.check()
    yield ctx.progress(f"{tag}: preprocessing")
    t0 = time.perf_counter()
    x_np, info, reo, key = _preprocessed(loaded, ctx)
    ctx.timings["preprocess"] += time.perf_counter() - t0
    ctx.step += 1
    x = torch.from_numpy(x_np)[None]
    kind = loaded.spec.output_kind
    divisor = loaded.size_divisor
    loaded.model.eval()
    plan, flips = ctx.plan, ctx.flips
    probs: torch.Tensor | None = None
    flip_range = RunningRange() if keep_flip_spread else None
    for k, axes in enumerate(flips):
        ctx.check()
        flip_txt = f" (flip {k + 1}/{len(flips)})" if len(flips) > 1 else ""
        yield ctx.progress(f"{tag}: network{flip_txt} on {plan.description}")
        n_notes = len(plan.notes)
        t0 = time.perf_counter()
        out = apply_flip(
            forward_probabilities(
                loaded.model,
                apply_flip(x, axes),
                plan,
                output_kind=kind,
                divisor=divisor,
                should_stop=ctx.should_stop,
            ),
            axes,
        )
        if flip_range is not None:
            flip_range.update(class_tensor_to_regions(out) if kind == "classes" else out)
        probs = out if probs is None else probs.add_(out)
        ctx.timings["network"] += time.perf_counter() - t0
        logger.debug("%s%s: %s", tag, flip_txt, plan.last_mode)
        for note in plan.notes[n_notes:]:
            yield ctx.progress(note)
        ctx.step += 1
    assert probs is not None
    if len(flips) > 1:
        probs.div_(len(flips))
    return MemberOutput(probs, kind, info, reo, key, flip_range, len(flips))


def to_source(
    net: np.ndarray, info: PreprocessInfo, reo: Reorientation | None, dtype: Any
) -> np.ndarray:
    """Network-grid (K, x, y, z) probabilities -> the case's source storage (K, X, Y, Z)."""
    regions = invert_probabilities(net, info, dtype=dtype)
    if reo is not None:
        regions = reo.invert(regions, leading=1)  # back to the source storage, exactly
    return regions


class EnsembleAccumulator:
    """Sums the members' probabilities in the source grid and makes their mean.

    Region-output members without a spread to track are added in their network grid (members
    with the same preprocessing share it); the inverse (unpad, resample, reorient) is linear, so
    one inversion of the sum (:meth:`grid_sums`, :meth:`add_grid_sum`) equals the sum of theirs.

    Args:
        n_models: Members of the ensemble.
        want_classes: Also average class probabilities (every member outputs classes and
            they are needed).
        keep_spread: Track the members' disagreement (ensembles only; one model's TTA spread
            comes from its :attr:`MemberOutput.flip_range`).
    """

    def __init__(self, n_models: int, want_classes: bool, keep_spread: bool) -> None:
        self.n_models = n_models
        self.want_classes = want_classes
        #: float16 for one model (its sum is its output), float32 to sum several.
        self.dtype: Any = np.float16 if n_models == 1 else np.float32
        self.region_sum: np.ndarray | None = None
        self.class_sum: np.ndarray | None = None
        self.model_range = RunningRange() if keep_spread and n_models > 1 else None
        self.spread: MemberSpread | None = None
        self._grid: dict[PreprocessKey, tuple[np.ndarray, PreprocessInfo, Any]] = {}

    def stays_in_grid(self, member: MemberOutput) -> bool:
        """Whether :meth:`add` only adds ``member`` in its network grid (inverted later)."""
        return member.kind == "regions" and self.model_range is None and member.flip_range is None

    def add(self, member: MemberOutput) -> None:
        """Add one member: in its network grid, or brought back to the source grid now."""
        net = member.probs[0].numpy()
        if self.stays_in_grid(member):
            if member.key in self._grid:
                np.add(self._grid[member.key][0], net, out=self._grid[member.key][0])
            else:
                self._grid[member.key] = (net, member.info, member.reo)
            return
        info, reo = member.info, member.reo
        if member.kind == "classes":
            if self.want_classes:
                full_classes = invert_probabilities(net, info, dtype=self.dtype, fill=CLASS_FILL)
                if reo is not None:
                    full_classes = reo.invert(full_classes, leading=1)
                self.class_sum = _summed(self.class_sum, full_classes)
                del full_classes
            from bratseg.postprocess import class_probs_to_region_probs

            # WT/TC/ET are linear in the class probabilities, so converting before the (linear)
            # inverse resampling is exact and moves 3 instead of 4 channels.
            net = np.asarray(class_probs_to_region_probs(net), dtype=np.float32)
        regions = to_source(net, info, reo, self.dtype)
        del net
        if member.flip_range is not None:
            flip_spread = invert_probabilities(
                member.flip_range.spread()[0].numpy(), info, dtype=np.float16
            )
            flip_spread = reo.invert(flip_spread, leading=1) if reo is not None else flip_spread
            self.spread = MemberSpread(
                np.ascontiguousarray(flip_spread), "TTA disagreement", member.n_flips
            )
        if self.model_range is not None:
            self.model_range.update(regions)
        self.region_sum = _summed(self.region_sum, regions)

    def grid_sums(self) -> Sequence[PreprocessKey]:
        """Keys of the network-grid sums still to bring back (:meth:`add_grid_sum` each)."""
        return list(self._grid)

    def add_grid_sum(self, key: PreprocessKey) -> None:
        """Bring one network-grid sum back to the source grid and add it."""
        net, info, reo = self._grid.pop(key)
        regions = to_source(net, info, reo, self.dtype)
        self.region_sum = _summed(self.region_sum, regions)

    def finish(self) -> tuple[np.ndarray, np.ndarray | None, MemberSpread | None]:
        """The mean over the members, float16 (``as_float16``).

        Returns:
            ``(region_probs (3, X, Y, Z), class_probs (4, X, Y, Z) or None, spread or None)``.
        """
        assert self.region_sum is not None and not self._grid
        if self.n_models > 1:
            self.region_sum /= self.n_models
            if self.class_sum is not None:
                self.class_sum /= self.n_models
        region_probs = as_float16(self.region_sum)
        if self.model_range is not None:
            self.spread = MemberSpread(
                cast(np.ndarray, self.model_range.spread()), "ensemble disagreement", self.n_models
            )
        class_probs = as_float16(self.class_sum) if self.class_sum is not None else None
        self.region_sum = self.class_sum = None
        return region_probs, class_probs, self.spread


def _summed(total: np.ndarray | None, part: np.ndarray) -> np.ndarray:
    """``total + part``, in ``total``'s memory (``part`` itself when there is no total yet)."""
    return part if total is None else np.add(total, part, out=total)


def as_float16(array: np.ndarray) -> np.ndarray:
    """float16 copy (torch's conversion is several times faster than numpy's)."""
    if array.dtype == np.float16:
        return array
    return torch.from_numpy(np.ascontiguousarray(array)).half().numpy()
