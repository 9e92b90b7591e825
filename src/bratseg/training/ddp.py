"""Data-parallel training with torch.distributed (launched by ``torchrun``).

``torchrun --nproc_per_node N -m bratseg.cli.main train ...`` sets ``WORLD_SIZE``, ``RANK`` and
``LOCAL_RANK``; :func:`init_distributed` then joins the process group (NCCL on GPUs, gloo on
CPU). Without those variables everything runs in one process and the helpers are no-ops.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn

logger = logging.getLogger(__name__)


@dataclass
class DistContext:
    """Where this process runs and its place in the group.

    Attributes:
        rank: Global rank (0 for a single process).
        world_size: Number of processes.
        local_rank: Rank on this machine (selects the GPU).
        device: Torch device of this process.
        device_desc: Human description, e.g. ``"CPU (2 threads)"``.
        backend: ``"nccl"``, ``"gloo"`` or ``None`` (not distributed).
    """

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")
    device_desc: str = "CPU"
    backend: str | None = None

    @property
    def is_main(self) -> bool:
        """Rank 0: the process that logs and writes checkpoints."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:  # noqa: D102
        return self.backend is not None


def init_distributed(device_request: str = "auto") -> DistContext:
    """Join the torchrun process group if launched by torchrun, and pick the device.

    Args:
        device_request: ``"auto"``, ``"cpu"``, ``"cuda"``, ``"cuda:1"``, ``"mps"``.
    """
    from bratseg.inference.device import configure_cpu_threads, describe_device, select_device

    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        device, desc = select_device(device_request)
        return DistContext(device=device, device_desc=desc)
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = torch.cuda.is_available() and not device_request.startswith(("cpu", "mps"))
    if use_cuda:
        torch.cuda.set_device(local_rank)
        device = torch.device("cuda", local_rank)
        backend = "nccl"
    else:
        device = torch.device("cpu")
        backend = "gloo"
        local_world = int(os.environ.get("LOCAL_WORLD_SIZE", str(world)))
        configure_cpu_threads(max(1, (os.cpu_count() or 1) // max(1, local_world)))
    if not dist.is_initialized():
        dist.init_process_group(backend=backend)
    desc = f"{describe_device(device)}, rank {rank}/{world} ({backend})"
    logger.info("distributed training: %s", desc)
    return DistContext(rank, world, local_rank, device, desc, backend)


def wrap_model(model: nn.Module, ctx: DistContext) -> nn.Module:
    """``DistributedDataParallel`` around ``model`` when distributed, else ``model``."""
    if not ctx.distributed:
        return model
    ids = [ctx.device.index] if ctx.device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(model, device_ids=ids, find_unused_parameters=True)


def barrier(ctx: DistContext) -> None:
    """Wait for all processes (no-op when not distributed)."""
    if ctx.distributed:
        dist.barrier()


def any_rank(ctx: DistContext, flag: bool) -> bool:
    """True on every rank when ``flag`` is true on at least one."""
    if not ctx.distributed:
        return bool(flag)
    t = torch.tensor([1.0 if flag else 0.0], device=ctx.device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item() > 0)


def mean_over_ranks(ctx: DistContext, value: float) -> float:
    """Average of a scalar over all processes."""
    if not ctx.distributed:
        return float(value)
    t = torch.tensor([float(value)], device=ctx.device)
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return float(t.item()) / ctx.world_size


def cleanup(ctx: DistContext) -> None:
    """Leave the process group."""
    if ctx.distributed and dist.is_initialized():
        dist.destroy_process_group()
