"""The Segment dock's options give what the engine gives for the same options.

Test-time augmentation, an ensemble of two ticked models, 2023 label values and the argmax mode
of the Postprocessing dock, each in a real viewer on a real case, compared with
:func:`bratseg.inference.predict_case` / :func:`bratseg.postprocess.postprocess` run directly, and
with the stand-ins' own formula (``tests/standin.py``) where the option changes the numbers.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("napari")
pytest.importorskip("pytestqt")

from gui_case import NEEDS_SAMPLE, SAMPLE_CASE, WORKER_TIMEOUT_MS  # noqa: E402

pytestmark = [
    NEEDS_SAMPLE,
    pytest.mark.gui,
    pytest.mark.usefixtures("own_home"),
]


@pytest.fixture(scope="module")
def ckpts(standin, tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("standins")
    return {
        name: standin.save_standin(folder / f"standin-{name}.pt", kind, shift)
        for name, kind, shift in (
            ("regions", "regions", 0),
            ("classes", "classes", 0),
            ("shifted", "regions", 1),
        )
    }


def segment_in_viewer(
    make_napari_viewer, qtbot, paths, tta=False, convention=None, bias_field=None
):
    """Open the case, tick ``paths``, set the options and run: ``(viewer, segment dock, session)``."""
    from napari_brats._state import viewer_state
    from napari_brats._widgets.segment import SegmentWidget

    viewer = make_napari_viewer()
    segment = SegmentWidget(viewer)
    viewer.window.add_dock_widget(segment, name="Segment")
    assert viewer.open(str(SAMPLE_CASE), plugin="napari-brats")
    segment.set_only_checked(list(paths))
    segment.device_combo.setCurrentText("cpu")
    segment.tta_check.setChecked(tta)
    if convention:
        segment.convention_combo.setCurrentText(convention)
    if bias_field:
        segment.bias_combo.setCurrentIndex(segment.bias_combo.findData(bias_field))
    assert segment.run() is not None
    qtbot.waitUntil(lambda: segment.worker is None, timeout=WORKER_TIMEOUT_MS)
    assert segment.last_error is None, segment.last_error
    session = viewer_state(viewer).session
    assert session is not None
    return viewer, segment, session


def engine(case, paths, **options):
    from bratseg.checkpoint import load_checkpoint
    from bratseg.inference import InferenceOptions, predict_case

    return predict_case(
        case, [load_checkpoint(p) for p in paths], InferenceOptions(device="cpu", **options)
    )


@pytest.mark.slow
def test_tta_checkbox_averages_the_eight_flips(
    make_napari_viewer, qtbot, ckpts, standin, sample_case
):
    _, _, session = segment_in_viewer(make_napari_viewer, qtbot, [ckpts["shifted"]], tta=True)
    assert session.model.tta == 8
    ref = engine(sample_case, [ckpts["shifted"]], tta=8)
    np.testing.assert_array_equal(session.region_probs, ref.region_probs)
    np.testing.assert_array_equal(session.labels, ref.labels)
    expected = standin.expected_region_probs(sample_case.image, "regions", shift=1, tta=True)
    np.testing.assert_allclose(
        session.region_probs.astype(np.float32), expected, atol=standin.default_prob_atol(), rtol=0
    )


def test_two_ticked_models_make_the_engine_ensemble(
    make_napari_viewer, qtbot, ckpts, standin, sample_case
):
    _, segment, session = segment_in_viewer(
        make_napari_viewer, qtbot, [ckpts["regions"], ckpts["classes"]]
    )
    pair = [Path(p) for p in segment.selected_model_paths()]  # the dock's order: the first one's
    assert sorted(session.model.names) == ["standin-classes", "standin-regions"]  # postprocessing
    assert session.model.names == [p.stem for p in pair]
    ref = engine(sample_case, pair)
    np.testing.assert_array_equal(session.region_probs, ref.region_probs)
    np.testing.assert_array_equal(session.labels, ref.labels)
    image = sample_case.image
    mean = 0.5 * (
        standin.expected_region_probs(image, "regions")
        + standin.expected_region_probs(image, "classes")
    )
    np.testing.assert_allclose(
        session.region_probs.astype(np.float32), mean, atol=standin.default_prob_atol(), rtol=0
    )


def test_a_second_click_reuses_the_loaded_networks(make_napari_viewer, qtbot, ckpts):
    pair = [ckpts["regions"], ckpts["shifted"]]
    _, segment, first = segment_in_viewer(make_napari_viewer, qtbot, pair)
    cache = segment.state.models
    assert cache.loads == 2 and len(cache) == 2
    loaded = [cache.cached(Path(p), "cpu") for p in segment.selected_model_paths()]
    messages: list[str] = []
    shown = segment._on_progress
    segment._on_progress = lambda progress: (messages.append(progress.message), shown(progress))
    assert segment.run() is not None
    qtbot.waitUntil(lambda: segment.worker is None, timeout=WORKER_TIMEOUT_MS)
    assert segment.last_error is None, segment.last_error
    assert cache.loads == 2  # nothing read from disk again
    assert [cache.cached(Path(p), "cpu") for p in segment.selected_model_paths()] == loaded
    assert messages and not any(m.startswith("loading model") for m in messages)
    assert segment.state.session.model.sha256 == first.model.sha256


def test_2023_labels(make_napari_viewer, qtbot, ckpts, sample_case):
    viewer, _, session = segment_in_viewer(
        make_napari_viewer, qtbot, [ckpts["regions"]], convention="2023"
    )
    assert session.convention == "2023"
    ref = engine(sample_case, [ckpts["regions"]], convention="2023")
    np.testing.assert_array_equal(session.labels, ref.labels)
    layer = viewer.layers[f"{SAMPLE_CASE.name} segmentation"]
    assert set(np.unique(layer.data).tolist()) == {0, 1, 2, 3}  # ET is 3, never 4


def test_argmax_mode_of_a_class_model(make_napari_viewer, qtbot, ckpts, standin, sample_case):
    from bratseg.postprocess import postprocess
    from napari_brats._widgets.postprocess import PostprocessWidget

    viewer, _, session = segment_in_viewer(make_napari_viewer, qtbot, [ckpts["classes"]])
    post = PostprocessWidget(viewer)
    viewer.window.add_dock_widget(post, name="Postprocessing")
    assert session.class_probs is not None  # a class model keeps its class probabilities ...
    index = post.mode_combo.findText("argmax")
    assert post.mode_combo.model().item(index).isEnabled()  # ... so argmax can be chosen
    post.mode_combo.setCurrentText("argmax")
    post.apply_now()
    assert session.config.mode == "argmax"
    ref = engine(sample_case, [ckpts["classes"]], postprocess=session.config)
    np.testing.assert_array_equal(session.labels, ref.labels)
    np.testing.assert_array_equal(
        session.labels, postprocess(None, session.config, class_probs=session.class_probs)
    )
    np.testing.assert_allclose(
        session.class_probs.astype(np.float32),
        standin.expected_class_probs(sample_case.image),
        atol=standin.default_prob_atol(),
        rtol=0,
    )
    post.mode_combo.setCurrentText("hierarchical")  # and back
    post.apply_now()
    np.testing.assert_array_equal(session.labels, engine(sample_case, [ckpts["classes"]]).labels)


@pytest.mark.slow
def test_bias_field_choice_reaches_the_engine(make_napari_viewer, qtbot, ckpts, sample_case):
    """ "Correct (N4) before every model" gives the engine's corrected prediction."""
    pytest.importorskip("SimpleITK", reason="bias-field correction needs SimpleITK")
    from bratseg.bias_field import BIAS_CORRECTION_CHOICES
    from napari_brats._widgets.segment import BIAS_FIELD_ITEMS

    assert [name for _, name in BIAS_FIELD_ITEMS] == list(BIAS_CORRECTION_CHOICES)
    _, segment, session = segment_in_viewer(
        make_napari_viewer, qtbot, [ckpts["regions"]], bias_field="on"
    )
    assert segment.build_options().bias_correction is True
    corrected = engine(sample_case, [ckpts["regions"]], bias_correction=True)
    np.testing.assert_array_equal(session.region_probs, corrected.region_probs)
    plain = engine(sample_case, [ckpts["regions"]])
    assert not np.array_equal(corrected.region_probs, plain.region_probs)
