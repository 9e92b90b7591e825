"""Hand strokes, undo and redo in the engine's review session, without Qt, on a real case.

The session's probabilities are smoothed masks of the case's expert label map, so moving a
threshold moves the proposal's boundary. Expectations are written out from the rules: a stroke's
voxels are hand edits; after an undo they hold their earlier values, except those that were no
hand edit before, which follow the *current* proposal; a redo makes them edits again; outside the
hand edits the working labels equal the proposal.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from scipy import ndimage

from bratseg.inference import Prediction
from bratseg.postprocess import PostprocessConfig, postprocess
from bratseg.review import ReviewSession
from bratseg.review.model_info import ModelInfo
from bratseg.review.signoff import ReviewLockedError
from bratseg.review.strokes import StrokeHistory


@pytest.fixture(scope="module")
def probs(brats2018_case_dir):
    """float16 (3, X, Y, Z) WT/TC/ET probabilities: the expert regions, smoothed."""
    from bratseg.io import find_case_files, load_label_map

    seg = load_label_map(find_case_files(brats2018_case_dir)["seg"]).data
    regions = [np.isin(seg, v) for v in ((1, 2, 4), (1, 4), (4,))]
    return np.stack([ndimage.gaussian_filter(r.astype(np.float32), 2.0) for r in regions]).astype(
        np.float16
    )


@pytest.fixture
def session(brats2018_case, probs) -> ReviewSession:
    config = PostprocessConfig()
    labels = postprocess(probs, config, convention="2021")
    prediction = Prediction(probs, labels, "cpu", 0.0, ["expert-smoothed"], config, "2021")
    model = ModelInfo(names=["expert-smoothed"], paths=[], sha256=[])
    return ReviewSession.from_prediction(brats2018_case, prediction, model, assessment=None)


def _flat(session: ReviewSession, where: np.ndarray) -> np.ndarray:
    return np.flatnonzero(where)


def _invariant(session: ReviewSession) -> None:
    outside = ~session.overrides
    np.testing.assert_array_equal(session.labels[outside], session.proposal[outside])


def test_a_stroke_survives_settings_and_its_undo_follows_the_current_proposal(session):
    lower = dataclasses.replace(session.config, wt_threshold=0.25)
    later = postprocess(session.region_probs, lower, convention="2021")
    rim = _flat(session, (session.proposal == 0) & (later == 2))  # ED only at the lower threshold
    assert rim.size > 100
    edited = _flat(session, session.proposal == 2)[:50]  # ED voxels hand-set to NCR first
    session.apply_stroke(edited, 1)
    stroke = session.apply_stroke(np.concatenate([rim, edited]), 4)
    assert np.array_equal(stroke.fresh, rim)  # the first stroke's voxels were edits already
    assert (session.labels.reshape(-1)[stroke.voxels] == 4).all()
    assert session.overrides.reshape(-1)[stroke.voxels].all()

    session.apply_config(lower)
    assert (session.proposal.reshape(-1)[rim] == 2).all()  # the AI now calls the rim ED
    assert (session.labels.reshape(-1)[stroke.voxels] == 4).all()  # the stroke survives
    _invariant(session)

    assert session.undo_stroke() is stroke
    flat = session.labels.reshape(-1)
    assert (flat[rim] == 2).all()  # the proposal under today's settings, not the stroke's time
    assert (flat[edited] == 1).all()  # the earlier hand edit is back, still an edit
    assert not session.overrides.reshape(-1)[rim].any()
    assert session.overrides.reshape(-1)[edited].all()
    _invariant(session)

    assert session.redo_stroke() is stroke
    assert (session.labels.reshape(-1)[stroke.voxels] == 4).all()
    assert session.overrides.reshape(-1)[stroke.voxels].all()
    assert session.redo_stroke() is None  # nothing more to redo
    session.apply_config(dataclasses.replace(session.config, wt_threshold=0.5))
    assert (session.labels.reshape(-1)[stroke.voxels] == 4).all()
    _invariant(session)


def test_an_editors_own_undo_and_redo_are_recognised(session):
    """A viewer restores the labels itself and reports the changed voxels (napari's undo)."""
    block = np.ravel_multi_index(np.nonzero(np.ones((4, 4, 4), bool)), session.labels.shape)
    before = session.labels.reshape(-1)[block].copy()
    session.apply_stroke(block, 1)

    flat = session.labels.reshape(-1)
    flat[block] = before  # the editor's undo
    changed = np.zeros(session.labels.shape, bool)
    changed.reshape(-1)[block] = True
    assert session.settle_change(changed) == "undo"
    assert not session.overrides.any()
    _invariant(session)

    flat[block] = 1  # the editor's redo
    assert session.settle_change(changed) == "redo"
    assert session.overrides.reshape(-1)[block].all()

    flat[block[:8]] = session.proposal.reshape(-1)[block[:8]]  # a script writes other values
    flat[block[8:16]] = 2
    assert session.settle_change(changed) == "edit"
    assert not session.overrides.reshape(-1)[block[:8]].any()  # back to the proposal's value
    assert session.overrides.reshape(-1)[block[8:]].all()
    _invariant(session)


def test_a_new_stroke_ends_the_redo_and_the_history_is_bounded(session):
    session.strokes = StrokeHistory(limit=3)
    for value, start in zip((1, 2, 4, 1), (0, 10, 20, 30), strict=True):
        session.apply_stroke(np.arange(start, start + 5), value)
    assert len(session.strokes.done) == 3  # the oldest was dropped
    session.undo_stroke()
    assert len(session.strokes.undone) == 1
    session.apply_stroke(np.arange(40, 45), 2)
    assert session.strokes.undone == [] and session.redo_stroke() is None
    for _ in range(3):
        assert session.undo_stroke() is not None
    assert session.undo_stroke() is None
    # the dropped stroke stays a hand edit: its undo is gone
    assert session.overrides.reshape(-1)[0:5].all() and session.overrides.sum() == 5


def test_an_approved_review_refuses_strokes(session):
    session.approve("dr-test")
    with pytest.raises(ReviewLockedError, match="reopen it"):
        session.apply_stroke(np.arange(5), 1)
    with pytest.raises(ReviewLockedError):
        session.undo_stroke()
    assert not session.overrides.any()
