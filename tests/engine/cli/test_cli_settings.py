"""Postprocessing settings are declared once, on PostprocessConfig's fields: the ``predict`` flags
and the range check follow from the declaration, for every field and for a field added later."""

from __future__ import annotations

import argparse
import dataclasses

import pytest

from bratseg.cli._settings import add_setting_flags, flag_of, setting_overrides
from bratseg.cli.main import build_parser
from bratseg.configdict import declared_settings, setting
from bratseg.errors import BratsInputError
from bratseg.postprocess import PostprocessConfig
from bratseg.postprocess.config import ET_GROUP, MAIN_GROUP


@dataclasses.dataclass
class _WithNewSetting(PostprocessConfig):
    """A setting added the way a new one is added: one declared field."""

    et_new_rule_min: float = setting(
        0.0, label="new rule", help="a new ET rule", group=ET_GROUP, minimum=0.0, maximum=2.0
    )


def _predict_flags() -> dict[str, argparse.Action]:
    sub = next(
        a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)
    ).choices["predict"]
    return {s: a for a in sub._actions for s in a.option_strings}


def test_every_field_is_declared_and_has_a_predict_flag_with_its_help():
    fields = dataclasses.fields(PostprocessConfig)
    declared = dict((f.name, spec) for f, spec in declared_settings(PostprocessConfig))
    assert [f.name for f in fields] == list(declared)  # no undeclared field
    flags = _predict_flags()
    for f in fields:
        spec = declared[f.name]
        action = flags[flag_of(f.name, spec.flag)]
        assert action.help == spec.help and spec.label and spec.group in (MAIN_GROUP, ET_GROUP)
        if isinstance(f.default, bool):
            assert isinstance(action, argparse.BooleanOptionalAction)
            assert "--no-" + flag_of(f.name, spec.flag)[2:] in flags
        elif spec.choices is None:
            assert action.type is type(f.default)
    assert flags["--postprocess-mode"].choices == ("hierarchical", "argmax")


def test_a_new_field_gets_its_flag_and_range_check_without_other_changes():
    parser = argparse.ArgumentParser()
    add_setting_flags(parser, _WithNewSetting)
    args = parser.parse_args(["--et-new-rule-min", "1.5", "--no-wt-needs-core"])
    assert setting_overrides(args, _WithNewSetting) == {
        "et_new_rule_min": 1.5,
        "wt_needs_core": False,
    }
    assert _WithNewSetting(et_new_rule_min=1.5).et_new_rule_min == 1.5
    with pytest.raises(BratsInputError, match="et_new_rule_min=2.5 must be between 0 and 2"):
        _WithNewSetting(et_new_rule_min=2.5)
    bad = parser.parse_args(["--et-new-rule-min", "2.5"])
    with pytest.raises(BratsInputError, match="^--et-new-rule-min: .* between 0 and 2"):
        setting_overrides(bad, _WithNewSetting)


@pytest.mark.parametrize(
    "flags, message",
    [
        (
            ["--wt-threshold", "1.5"],
            "--wt-threshold: postprocessing wt_threshold=1.5 must be between 0 and 1",
        ),
        (
            ["--et-min-volume", "-1"],
            "--et-min-volume: postprocessing et_min_volume=-1 must be >= 0",
        ),
        (["--et-component-connectivity", "4"], "must be between 1 and 3"),
        (["--et-enhancement-min", "3.5"], "et_enhancement_min=3.5 must be between 0 and 3"),
        (["--et-total-prob", "nan"], "et_total_prob=nan must be between 0 and 1"),
    ],
)
def test_out_of_range_flag_is_one_clear_error(flags, message):
    from bratseg.cli.predict import postprocess_overrides

    args = build_parser().parse_args(["predict", "case", "-o", "x.nii.gz", *flags])
    with pytest.raises(BratsInputError) as info:
        postprocess_overrides(args)
    assert message in str(info.value)


def test_new_flags_reach_the_config():
    from bratseg.cli.predict import postprocess_overrides

    args = build_parser().parse_args(
        [
            "predict", "case", "-o", "x.nii.gz", "--et-component-min-voxels", "40",
            "--et-total-prob", "0.8", "--et-component-connectivity", "3",
        ]
    )  # fmt: skip
    changes = postprocess_overrides(args)
    assert changes == {
        "et_component_min_voxels": 40,
        "et_total_prob": 0.8,
        "et_component_connectivity": 3,
    }
    config = PostprocessConfig(**changes)
    assert (config.et_component_min_voxels, config.et_component_connectivity) == (40, 3)
