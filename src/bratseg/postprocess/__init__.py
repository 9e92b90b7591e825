"""Postprocessing: region or class probabilities to a BraTS label map, and label-map corrections.

- :mod:`~bratseg.postprocess.pipeline`: :class:`PostprocessConfig` (every knob and its default)
  and :func:`postprocess`, thresholds, ET rules;
- :mod:`~bratseg.postprocess.islands`: removal of small tumour islands;
- :mod:`~bratseg.postprocess.enhancement`: the case-level "no enhancement" ET decision;
- :mod:`~bratseg.postprocess.labelmaps`: class indices, and the merge of two label maps
  (Henry et al. 2021).

The public names of the three are re-exported here: ``from bratseg.postprocess import postprocess``.
"""

from bratseg.postprocess.enhancement import (
    EnhancementEvidence,
    ReferenceFitCache,
    enhancement_ratio,
)
from bratseg.postprocess.islands import remove_coreless_components, remove_small_islands
from bratseg.postprocess.labelmaps import MERGE_TABLE, labels_to_class_index, merge_labelmaps
from bratseg.postprocess.pipeline import (
    MODES,
    Mode,
    PostprocessConfig,
    apply_et_rules,
    argmax_classes,
    argmax_masks,
    class_probs_to_region_probs,
    hierarchical_masks,
    postprocess,
    postprocess_with_evidence,
)

__all__ = [
    "EnhancementEvidence",
    "ReferenceFitCache",
    "enhancement_ratio",
    "postprocess_with_evidence",
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
    "remove_coreless_components",
    "remove_small_islands",
]
