"""The bundled default ensemble is one entry, "Default: 5-model ensemble, CV Dice ...", in the
Segment and Worklist docks, with its members listed (unticked) under it; other models and
ensembles can still be chosen."""

from __future__ import annotations

import pytest

pytest.importorskip("napari")
pytest.importorskip("pytestqt")

pytestmark = [pytest.mark.gui]


@pytest.fixture
def default_ensemble():
    from bratseg.zoo import default_model_names, resolve_model
    from bratseg.zoo.default_ensemble import default_ensemble_card

    names = default_model_names()
    if len(names) < 2:
        pytest.skip("no bundled default ensemble")
    dice = default_ensemble_card()["cv_estimate"]["dice"]
    wanted = "Default: {}-model ensemble, CV Dice WT {:.2f} / TC {:.2f} / ET {:.2f}".format(
        len(names), dice["wt"], dice["tc"], dice["et"]
    )
    return wanted, names, [str(resolve_model(n)) for n in names]


def _rows(models):
    from qtpy.QtCore import Qt

    return [
        (models.item(i).text(), models.item(i).checkState() == Qt.CheckState.Checked)
        for i in range(models.count())
    ]


@pytest.mark.parametrize("dock_name", ["Segment", "Worklist"])
def test_default_ensemble_is_one_ticked_entry_with_its_members_under_it(
    make_napari_viewer, default_ensemble, dock_name, standin, tmp_path, own_home
):
    wanted, names, paths = default_ensemble
    viewer = make_napari_viewer()
    _, dock = viewer.window.add_plugin_dock_widget("napari-brats", dock_name)
    models = dock.model_list
    rows = _rows(models)
    checked = [text for text, state in rows if state]
    assert checked == [wanted]  # one ticked entry, the first, with the card's CV Dice
    assert rows[0][0] == wanted and "Dice" in models.item(0).toolTip()
    members = [text for text, _ in rows[1 : 1 + len(names)]]
    assert [m.split()[0] for m in members] == names and all(m.startswith("  ") for m in members)
    assert models.selected_paths() == paths  # runs the ensemble in default.txt order

    # another model alone, then with one fold model: both possible
    other = str(standin.save_standin(tmp_path / "other.pt"))
    models.set_only_checked([other])
    assert models.selected_paths() == [other] and not _rows(models)[0][1]
    models.set_only_checked([paths[2], other])
    assert models.selected_paths() == [paths[2], other]
    # the whole default, given as its members, ticks the one entry; a refresh keeps the ticks
    models.set_only_checked(paths)
    models.refresh()
    assert [t for t, s in _rows(models) if s] == [wanted]
    assert models.selected_paths() == paths
