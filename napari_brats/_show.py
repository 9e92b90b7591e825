"""Show a review session in a viewer: its labels layer (and probabilities), published to the docks.

Shared by the Segment dock (after a model run or a restore) and the Worklist dock (opening a case
with its saved review), so a case looks and behaves the same whichever dock opened it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from ._layers import labels_layer_data, probability_layer_data
from ._state import viewer_state
from ._tracking import EditTracker

if TYPE_CHECKING:
    from bratseg.review import ReviewSession


def show_session(viewer: Any, session: ReviewSession, *, probabilities: bool = True) -> Any:
    """Show ``session``'s labels (and WT/TC/ET probabilities) and make it the viewer's review.

    The same case's labels layer is reused and updated in place, so napari's undo history of the
    strokes stays valid. An approved session's layer is read-only.

    Args:
        viewer: The napari viewer.
        session: The :class:`bratseg.review.ReviewSession`.
        probabilities: Add (or update) the probability layers when the session has them.

    Returns:
        The labels layer.
    """
    state = viewer_state(viewer)
    case = session.case
    name = f"{case.case_id} segmentation"
    data, kwargs, _ = labels_layer_data(
        session.labels, case, session.convention, name=name, role="segmentation"
    )
    if name in viewer.layers:
        layer = viewer.layers[name]
        if layer.data is not data and not np.shares_memory(layer.data, session.labels):
            layer.data = data
        layer.metadata = kwargs["metadata"]
        layer.colormap = kwargs["colormap"]
        layer.features = kwargs["features"]
        layer.refresh()
    else:
        layer = viewer.add_labels(data, **kwargs)
    if session.region_probs is not None and probabilities:
        for pdata, pkwargs, _ in probability_layer_data(session.region_probs, case):
            if pkwargs["name"] in viewer.layers:
                viewer.layers[pkwargs["name"]].data = pdata
            else:
                viewer.add_image(pdata, **pkwargs)
    viewer.layers.selection.active = layer
    state.set_session(session, layer)
    tracker = state.trackers.get(id(layer))
    if tracker is None:
        state.trackers[id(layer)] = EditTracker(state, layer)
    else:
        tracker.resync()
    return layer
