"""Postprocessing: region or class probabilities to a BraTS label map, and label-map corrections.

- :mod:`~bratseg.postprocess.pipeline`: :class:`PostprocessConfig` (every knob and its default)
  and :func:`postprocess`, thresholds, ET rules;
- :mod:`~bratseg.postprocess.islands`: removal of small tumour islands;
- :mod:`~bratseg.postprocess.labelmaps`: class indices, and the merge of two label maps
  (Henry et al. 2021).

The pipeline's public names are re-exported here: ``from bratseg.postprocess import postprocess``.
"""

from bratseg.postprocess.pipeline import (
    MERGE_TABLE,
    MODES,
    Mode,
    PostprocessConfig,
    apply_et_rules,
    argmax_classes,
    argmax_masks,
    class_probs_to_region_probs,
    hierarchical_masks,
    labels_to_class_index,
    merge_labelmaps,
    postprocess,
    remove_small_islands,
)

__all__ = [
    "MERGE_TABLE",
    "MODES",
    "Mode",
    "PostprocessConfig",
    "apply_et_rules",
    "argmax_classes",
    "argmax_masks",
    "class_probs_to_region_probs",
    "hierarchical_masks",
    "labels_to_class_index",
    "merge_labelmaps",
    "postprocess",
    "remove_small_islands",
]
