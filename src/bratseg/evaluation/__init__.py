"""Scoring models with the predict pipeline, cross-validation, and bundling a run for release.

- :mod:`~bratseg.evaluation.scoring`: predict labelled cases and score them (official metrics);
  which cases a checkpoint may be scored on;
- :mod:`~bratseg.evaluation.crossval`: pooled held-out scores of fold runs;
- :mod:`~bratseg.evaluation.protocol`: the 5-fold protocol's tables (per fold, pooled, per grade);
- :mod:`~bratseg.evaluation.bundling`: a finished run -> shipped fp16 weights and model card.

The scoring functions are re-exported here: ``from bratseg.evaluation import score_cases``.
"""

from bratseg.evaluation.scoring import (
    check_held_out,
    evaluate_cases,
    pretrained_cases,
    region_mean_std,
    round_weights_to_half,
    score_cases,
    validation_case_dirs,
)

__all__ = [
    "check_held_out",
    "evaluate_cases",
    "pretrained_cases",
    "region_mean_std",
    "round_weights_to_half",
    "score_cases",
    "validation_case_dirs",
]
