"""Networks built on PyTorch's ``meta`` device, to check a config and count parameters."""

from __future__ import annotations

from torch import nn


def built_for_shapes(module: nn.Module) -> bool:
    """Whether ``module``'s parameters live on the ``meta`` device (shapes, no values).

    Random initialisation is then pointless, and the first ``normal_`` on a meta tensor costs
    PyTorch about a second of imports: every checkpoint load would pay it
    (:func:`bratseg.model_checks.check_architecture_config` builds the network on ``meta``).
    """
    return any(p.is_meta for p in module.parameters())
