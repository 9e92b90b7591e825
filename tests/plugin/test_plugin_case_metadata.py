"""Layer metadata holds plain facts only: no live case, no volume. The viewer's state holds the
case, and the docks still find it. Runs on the case shipped in the package (no shared data)."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

pytest.importorskip("napari")
pytest.importorskip("pytestqt")

pytestmark = [pytest.mark.gui, pytest.mark.usefixtures("own_home")]

#: A pickled layer metadata far below one volume slice (the header is 348 bytes, the affine 128).
MAX_METADATA_BYTES = 16_000


def _assert_plain(metadata: dict) -> None:
    from bratseg.io import Case

    meta = metadata["bratseg"]
    assert not any(isinstance(value, Case) for value in meta.values()), meta.keys()
    assert not any(isinstance(value, np.ndarray) and value.size > 16 for value in meta.values()), (
        "a volume in layer metadata"
    )
    assert len(pickle.dumps(metadata)) < MAX_METADATA_BYTES


def test_reader_layers_name_their_case_without_holding_it() -> None:
    from bratseg.sample import sample_case_dir
    from napari_brats._cases import CASE_REF, case_of_layer_data
    from napari_brats._reader import read_case

    layers = read_case(str(sample_case_dir()))
    refs = {kwargs["metadata"]["bratseg"][CASE_REF] for _data, kwargs, _kind in layers}
    assert len(refs) == 1
    for _data, kwargs, _kind in layers:
        _assert_plain(kwargs["metadata"])
    case = case_of_layer_data(layers)
    assert case is not None and case.case_id == sample_case_dir().name


def test_the_viewer_state_holds_the_case_and_the_docks_find_it(make_napari_viewer) -> None:
    from bratseg.sample import sample_case_dir
    from napari_brats._state import find_case, viewer_state
    from napari_brats._widgets.segment import SegmentWidget

    viewer = make_napari_viewer()
    segment = SegmentWidget(viewer)
    viewer.window.add_dock_widget(segment, name="Segment")
    assert segment.open_case(sample_case_dir())
    case = find_case(viewer)
    assert case is not None and case.case_id == sample_case_dir().name
    assert case.case_id in segment.case_label.text()
    assert list(viewer_state(viewer).cases.values()) == [case]
    for layer in viewer.layers:  # what napari would save of each layer: no case, no volume
        _assert_plain(layer.as_layer_data_tuple()[1]["metadata"])
    copy = viewer.layers["FLAIR"].as_layer_data_tuple()  # a duplicated layer names the same case
    assert viewer_state(viewer).case_of(copy[1]) is case
    viewer.layers.clear()
    assert find_case(viewer) is None and viewer_state(viewer).cases == {}
