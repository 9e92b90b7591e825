"""This process's share of a sharded cohort run (:mod:`bratseg.review.cohort`).

``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK`` and ``LOCAL_WORLD_SIZE`` (set by ``torchrun``, or by hand)
give a :class:`Shard`: which cases of the sorted list this process predicts
(:meth:`Shard.cases`), which GPU it takes (:func:`shard_device`) and how many CPU threads
(:func:`shard_threads`). Every process computes the same split, so no process group is needed.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from bratseg.errors import BratsInputError


@dataclass(frozen=True)
class Shard:
    """This process's place in a sharded run.

    Attributes:
        rank: Global rank, ``0 <= rank < world_size``.
        world_size: Number of processes sharing the cases.
        local_rank: Rank on this machine (selects the GPU).
        local_world_size: Processes on this machine (divides the CPU threads).
    """

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    local_world_size: int = 1

    def cases(self, items: Sequence[Path]) -> list[Path]:
        """This process's share of ``items`` (sorted by name first): every ``world_size``-th."""
        ordered = sorted(items, key=lambda p: p.name)
        return ordered[self.rank :: self.world_size]


def shard_from_env(env: Mapping[str, str] | None = None) -> Shard:
    """The :class:`Shard` of ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``LOCAL_WORLD_SIZE``
    (``torchrun``'s variables); one process when they are absent.

    Raises:
        BratsInputError: The variables are not integers or the rank is out of range.
    """
    env = os.environ if env is None else env
    try:
        world = int(env.get("WORLD_SIZE", "1"))
        rank = int(env.get("RANK", "0"))
        local_rank = int(env.get("LOCAL_RANK", "0"))
        local_world = int(env.get("LOCAL_WORLD_SIZE", str(world)))
    except ValueError as exc:
        raise BratsInputError(f"RANK/WORLD_SIZE/LOCAL_RANK must be integers: {exc}") from exc
    if world < 1 or not 0 <= rank < world:
        raise BratsInputError(f"RANK must be in [0, WORLD_SIZE): got RANK={rank} of {world}")
    return Shard(rank, world, max(local_rank, 0), max(local_world, 1))


def shard_device(request: str, shard: Shard, cuda_count: int | None = None) -> str:
    """The device of this process: ``cuda:<LOCAL_RANK>`` for a sharded run on CUDA (processes
    share the GPUs round-robin when there are more of them than GPUs), else ``request``
    unchanged. ``cuda_count``: GPUs visible (default: ask torch)."""
    if shard.world_size <= 1 or request not in ("auto", "cuda"):
        return request
    if cuda_count is None:
        import torch

        cuda_count = int(torch.cuda.device_count()) if torch.cuda.is_available() else 0
    if cuda_count > 0:
        return f"cuda:{shard.local_rank % cuda_count}"
    return request


def shard_threads(threads: int | None, shard: Shard) -> int | None:
    """CPU threads of this process: ``threads`` when given, else the machine's CPUs divided among
    the processes on it (``None``, all of them, for one process)."""
    if threads is not None or shard.local_world_size <= 1:
        return threads
    return max(1, (os.cpu_count() or 1) // shard.local_world_size)


__all__ = ["Shard", "shard_device", "shard_from_env", "shard_threads"]
