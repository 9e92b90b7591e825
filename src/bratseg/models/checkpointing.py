"""Activation (gradient) checkpointing for any network of the registry.

Training a 3D network keeps every block's activations for the backward pass; for a 128³ patch
that, not the weights, is what fills a GPU. Checkpointing a block stores only its input and
recomputes its activations during the backward pass: roughly 30 % more compute for a large cut in
memory. The five registry networks are built from this package's blocks and a few of MONAI's, none
of which has a switch, so :func:`enable_activation_checkpointing` wraps the ``forward`` of the
network's *units* on the instance: the outermost modules whose class name ends in ``Block``
(``ResNetBlock``, ``PreActResBlock``, ``SEResBlock``, the nnunet's ``UNetConvBlock``/``UNetUpBlock``)
and the ``nn.Sequential`` stages held in a ``ModuleList`` (the plain U-Net of Henry et al. 2021). Module
names and ``state_dict`` keys do not change, so checkpoints stay interchangeable, and nothing is
recomputed in evaluation mode or under ``torch.no_grad()``.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

logger = logging.getLogger(__name__)

_MARK = "_bratseg_checkpointed"


def _is_unit(module: nn.Module, parent: nn.Module) -> bool:
    if type(module).__name__.endswith("Block"):
        return True
    return isinstance(module, nn.Sequential) and isinstance(parent, nn.ModuleList)


def _units(module: nn.Module) -> Iterator[nn.Module]:
    """Outermost units below ``module`` (a unit's own sub-blocks are not visited)."""
    for child in module.children():
        if _is_unit(child, module):
            yield child
        else:
            yield from _units(child)


def _checkpointed(module: nn.Module, forward: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    if module.training and torch.is_grad_enabled():
        # Non-reentrant checkpointing (PyTorch's recommendation) also restores the RNG state, so
        # dropout draws the same mask in the recomputation.
        return checkpoint(forward, *args, use_reentrant=False, **kwargs)
    return forward(*args, **kwargs)


def enable_activation_checkpointing(model: nn.Module) -> int:
    """Checkpoint the activations of every unit of ``model`` during training.

    Args:
        model: A network (any registry architecture, or any module built from blocks).

    Returns:
        Number of units now checkpointed (0 when the network has none; calling twice adds none).
    """
    count = 0
    for unit in _units(model):
        if getattr(unit, _MARK, False):
            continue
        unit.forward = functools.partial(_checkpointed, unit, unit.forward)
        setattr(unit, _MARK, True)
        count += 1
    logger.info("activation checkpointing on %d block(s) of %s", count, type(model).__name__)
    return count
