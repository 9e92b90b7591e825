"""A saved-review fixture without a model: the expert label of a real case as the AI proposal.

Used by the review-store tests (``import expert_review``: this folder is on the test path).
"""

from __future__ import annotations

import numpy as np

from bratseg.labels import regions_to_stack
from bratseg.postprocess import PostprocessConfig, postprocess
from bratseg.review import ModelInfo, ReviewSession

#: Voxels painted by hand in every saved session (a 6x6x4 block of NCR away from the tumour).
BLOCK = (slice(60, 66), slice(60, 66), slice(40, 44))


class _Prediction:
    """A model run made from the expert label's regions (probabilities 0.9 inside)."""

    def __init__(self, case) -> None:
        self.region_probs = (regions_to_stack(case.seg, "2021") * np.float16(0.9)).astype(
            np.float16
        )
        self.postprocess = PostprocessConfig()
        self.convention = "2021"
        self.labels = postprocess(self.region_probs, self.postprocess, convention="2021")
        self.class_probs = None


def expert_session(case) -> ReviewSession:
    """A review of ``case`` with the expert label as the AI proposal and one painted block."""
    session = ReviewSession.from_prediction(
        case, _Prediction(case), ModelInfo(["expert"], [], []), assessment=None
    )
    session.labels[BLOCK] = 1
    return session
