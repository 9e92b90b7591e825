"""Training dock: the "New model" name is checked before training, and an existing user model is
replaced only when the user says so (issue 28, DEF-2)."""

from __future__ import annotations

import pytest

pytest.importorskip("napari")
pytest.importorskip("pytestqt")

from bratseg.zoo import BUNDLED_DIR  # noqa: E402

FIRST = BUNDLED_DIR / "nnunet-small-cv44-f0.pt"
SECOND = BUNDLED_DIR / "ds-unet-small.pt"


@pytest.fixture
def panel(make_napari_viewer, tmp_path, monkeypatch):
    from napari_brats._widgets.training import TrainingWidget

    if not FIRST.is_file() or not SECOND.is_file():
        pytest.skip("bundled checkpoints absent")
    monkeypatch.setenv("BRATSEG_HOME", str(tmp_path / "home"))
    widget = TrainingWidget(make_napari_viewer())
    widget.add_dataset(tmp_path)
    widget.set_start_from("arch:nnunet")
    return widget


@pytest.mark.parametrize(
    ("name", "words"),
    [
        ("../../escaped_rel", "path separator"),
        ("/tmp/abs_escape", "path separator"),
        ("nnunet-small-cv44-f0", "name of a bundled model"),
    ],
)
def test_a_bad_model_name_stops_the_start(panel, tmp_path, name, words):
    panel.name_edit.setText(name)
    assert not panel.start(tmp_path / "run")
    assert not panel.running and not (tmp_path / "run").exists()
    assert words in panel.errors.toPlainText()


def test_install_asks_before_replacing_and_refuses_bad_names(panel, tmp_path):
    models = tmp_path / "home" / "models"
    first = panel.install_model(FIRST, "mine")
    assert first == models / "mine.pt" and first.read_bytes() == FIRST.read_bytes()
    assert panel.install_model(SECOND, "mine", overwrite=False) is None  # the user said No
    assert first.read_bytes() == FIRST.read_bytes()
    assert "kept your model" in panel.status.text()
    assert panel.install_model(SECOND, "mine", overwrite=True) == first  # the user said Yes
    assert first.read_bytes() == SECOND.read_bytes()
    for bad in ("../../escaped_rel", "a\nb", "nnunet-small-cv44-f0"):
        assert panel.install_model(SECOND, bad, overwrite=True) is None
    assert sorted(p.name for p in models.iterdir()) == ["mine.pt"]
    assert not (tmp_path / "escaped_rel.pt").exists()
