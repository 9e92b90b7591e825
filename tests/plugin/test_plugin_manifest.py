"""The npe2 manifest is valid and every python_name in it imports."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

pytest.importorskip("npe2")
pytest.importorskip("napari")

ROOT = Path(__file__).resolve().parents[2]
MANIFEST = ROOT / "napari_brats" / "napari.yaml"


def _manifest():
    from npe2 import PluginManifest

    return PluginManifest.from_file(MANIFEST)


def test_top_level_manifest_is_the_package_one():
    top = ROOT / "napari.yaml"
    assert top.is_symlink() and top.resolve() == MANIFEST.resolve()


def test_manifest_validates_and_names_the_plugin():
    manifest = _manifest()
    assert manifest.name == "napari-brats"
    contributions = manifest.contributions
    assert contributions.readers and contributions.writers and contributions.sample_data
    assert {w.display_name for w in contributions.widgets} >= {
        "Segment",
        "Postprocessing",
        "Correction",
        "Report",
        "Export for retraining",
        "Training",
    }


@pytest.mark.parametrize("command", _manifest().contributions.commands, ids=lambda c: c.id)
def test_every_python_name_imports(command):
    module_name, _, attr = command.python_name.partition(":")
    module = importlib.import_module(module_name)
    obj = module
    for part in attr.split("."):
        obj = getattr(obj, part)
    assert callable(obj)


def test_entry_point_registered():
    from importlib.metadata import entry_points

    names = {ep.name: ep.value for ep in entry_points(group="napari.manifest")}
    assert names.get("napari-brats") == "napari_brats:napari.yaml"
