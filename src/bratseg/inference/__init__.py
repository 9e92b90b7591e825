"""Inference: device selection, flip TTA, whole-volume / sliding-window forward, ensembles."""

from bratseg.inference.device import configure_cpu_threads, describe_device, select_device
from bratseg.inference.engine import (
    InferenceOptions,
    Prediction,
    Progress,
    predict_case,
    run_inference,
)
from bratseg.inference.spread import MemberSpread
from bratseg.inference.tta import apply_flip, flip_sets
from bratseg.inference.window import (
    DEFAULT_OVERLAP,
    DEFAULT_WINDOW,
    ForwardPlan,
    forward_probabilities,
)

__all__ = [
    "DEFAULT_OVERLAP",
    "DEFAULT_WINDOW",
    "ForwardPlan",
    "InferenceOptions",
    "MemberSpread",
    "Prediction",
    "Progress",
    "apply_flip",
    "configure_cpu_threads",
    "describe_device",
    "flip_sets",
    "forward_probabilities",
    "predict_case",
    "run_inference",
    "select_device",
]
