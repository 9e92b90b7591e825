"""Fixtures of the napari GUI tests (the stand-in checkpoint, a private home folder, a real case
segmented by the stand-in and shown with a dock)."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="module")
def checkpoint(standin, tmp_path_factory) -> Path:
    """The deterministic region stand-in model of ``tests/standin.py``, saved as a checkpoint."""
    return standin.save_standin(
        tmp_path_factory.mktemp("standin") / "standin-regions.pt", "regions"
    )


@pytest.fixture(scope="session")
def sample_case():
    """The BraTS case shipped in the package, loaded (the one the GUI tests open)."""
    from bratseg.io import load_case
    from bratseg.sample import PACKAGED_SAMPLE

    if not PACKAGED_SAMPLE.is_dir():
        pytest.skip("the packaged sample case is missing from this installation")
    return load_case(PACKAGED_SAMPLE)


@pytest.fixture
def own_home(monkeypatch, tmp_path):
    """Two torch threads; user models and sessions under ``tmp_path/home``, nothing shared."""
    import torch

    torch.set_num_threads(2)
    monkeypatch.setenv("BRATSEG_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("BRATSEG_SESSIONS", raising=False)


@pytest.fixture(scope="module")
def standin_prediction(standin, request, tmp_path_factory):
    """Factory: ``(case fixture name = "brats2018_case", **save_standin options) -> Prediction``
    of the stand-in model on that real case (CPU), computed once per module, case and options."""
    from bratseg.checkpoint import load_checkpoint
    from bratseg.inference import InferenceOptions, predict_case

    done: dict[str, object] = {}

    def predict(case_fixture: str = "brats2018_case", **options):
        key = repr((case_fixture, sorted(options.items())))
        if key not in done:
            case = request.getfixturevalue(case_fixture)
            folder = tmp_path_factory.mktemp("standin-prediction")
            path = standin.save_standin(folder / "standin.pt", **options)
            done[key] = predict_case(case, [load_checkpoint(path)], InferenceOptions(device="cpu"))
        return done[key]

    return predict


@pytest.fixture
def case_dock(make_napari_viewer, request):
    """Factory: ``(prediction, widget_class, name, case fixture name = "brats2018_case") ->
    (viewer, widget, layer, session)``: a viewer showing the real case, the review session of
    ``prediction`` as its segmentation layer, and ``widget_class(viewer)`` docked as ``name``."""

    def build(prediction, widget_class, name: str, case_fixture: str = "brats2018_case"):
        from bratseg.review import ModelInfo, ReviewSession
        from napari_brats._layers import case_layer_data, labels_layer_data
        from napari_brats._state import viewer_state

        case = request.getfixturevalue(case_fixture)
        viewer = make_napari_viewer()
        for data, kwargs, kind in case_layer_data(case):
            getattr(viewer, f"add_{kind}")(data, **kwargs)
        session = ReviewSession.from_prediction(case, prediction, ModelInfo(["standin"], [], []))
        data, kwargs, _ = labels_layer_data(
            session.labels, case, session.convention, name="segmentation", role="segmentation"
        )
        layer = viewer.add_labels(data, **kwargs)
        widget = widget_class(viewer)
        viewer.window.add_dock_widget(widget, name=name)
        viewer_state(viewer).set_session(session, layer)
        return viewer, widget, layer, session

    return build
