"""The Postprocessing dock's controls come from PostprocessConfig's declared settings: one control
per field with its range and help, the thresholds up front and the ET rules under Advanced, and a
field added later appears in the dock and in its config without any change to the dock."""

from __future__ import annotations

import dataclasses

import pytest

pytest.importorskip("napari")
pytest.importorskip("pytestqt")

from bratseg.configdict import declared_settings, setting  # noqa: E402
from bratseg.postprocess import PostprocessConfig  # noqa: E402
from bratseg.postprocess.config import ET_GROUP, MAIN_GROUP  # noqa: E402

pytestmark = [pytest.mark.gui]


@dataclasses.dataclass
class _WithNewSetting(PostprocessConfig):
    et_new_rule_min: float = setting(
        0.25, label="new rule ≥", help="a new ET rule", group=ET_GROUP, minimum=0.0, maximum=2.0
    )


def test_every_setting_has_its_control_range_and_help_in_its_section(make_napari_viewer):
    from napari_brats._widgets.postprocess import PostprocessWidget

    widget = PostprocessWidget(make_napari_viewer())
    main, advanced = widget._sections
    specs = dict((f.name, spec) for f, spec in declared_settings(PostprocessConfig))
    assert set(widget.controls) == set(specs)
    for name, spec in specs.items():
        control = widget.controls[name]
        assert control.tooltip == spec.help
        section = main if spec.group == MAIN_GROUP else advanced
        assert section.isAncestorOf(control.native), name
        if spec.maximum is not None:
            assert (control.min, control.max) == (spec.minimum, spec.maximum)
    up_front = {"wt_threshold", "tc_threshold", "et_threshold", "min_island_fraction"}
    assert up_front | {"wt_needs_core"} <= {n for n, s in specs.items() if s.group == MAIN_GROUP}
    assert advanced.isAncestorOf(widget.restore_et) and advanced.isAncestorOf(widget.et_rule_label)
    assert widget.config() == PostprocessConfig()  # the controls show the defaults


def test_a_new_field_appears_in_the_dock_and_its_config(make_napari_viewer, monkeypatch):
    import bratseg.postprocess
    from napari_brats._widgets.postprocess import PostprocessWidget

    monkeypatch.setattr(bratseg.postprocess, "PostprocessConfig", _WithNewSetting)
    widget = PostprocessWidget(make_napari_viewer())
    control = widget.controls["et_new_rule_min"]
    assert (control.value, control.max, control.tooltip) == (0.25, 2.0, "a new ET rule")
    assert widget.advanced.isAncestorOf(control.native)
    control.value = 1.5
    config = widget.config()
    assert isinstance(config, _WithNewSetting) and config.et_new_rule_min == 1.5
