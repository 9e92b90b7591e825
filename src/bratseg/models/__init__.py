"""Network architectures of the five seed papers behind one registry.

Use :func:`build_model` (``build_model("nnunet", preset="small")``) and
:func:`get_architecture` for the facts the engine needs (output kind, input channels,
postprocessing defaults, size divisor).
"""

from bratseg.models.config import (
    CascadeUNetConfig,
    DSUNetConfig,
    LowRankResUNetConfig,
    ModelConfig,
    NNUNetConfig,
    SegResNetVAEConfig,
)
from bratseg.models.registry import (
    ARCHITECTURES,
    ArchitectureSpec,
    build_model,
    count_parameters,
    get_architecture,
    list_architectures,
)

__all__ = [
    "ARCHITECTURES",
    "ArchitectureSpec",
    "CascadeUNetConfig",
    "DSUNetConfig",
    "LowRankResUNetConfig",
    "ModelConfig",
    "NNUNetConfig",
    "SegResNetVAEConfig",
    "build_model",
    "count_parameters",
    "get_architecture",
    "list_architectures",
]
