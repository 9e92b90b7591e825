"""A case lacking one series loads with its pair's series in its place (for predicting only)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from bratseg.errors import BratsInputError
from bratseg.io import load_case
from bratseg.io.channels import MODALITIES


def _links(case_dir: Path, into: Path, channels: tuple[str, ...]) -> Path:
    into.mkdir()
    for channel in channels:
        (into / f"x_{channel}.nii.gz").symlink_to(next(case_dir.glob(f"*_{channel}.nii.gz")))
    return into


def test_missing_flair_takes_t2_and_says_so(brats2018_case_dir: Path, tmp_path: Path) -> None:
    whole = load_case(brats2018_case_dir, load_seg=False)
    partial = _links(brats2018_case_dir, tmp_path / "no-flair", ("t1", "t1ce", "t2"))
    with pytest.raises(BratsInputError, match=r"missing FLAIR \(flair\) image"):
        load_case(partial)  # complete cases only, unless asked
    case = load_case(partial, allow_missing=True)
    assert case.substituted == {"flair": "t2"}
    t2, flair = MODALITIES.index("t2"), MODALITIES.index("flair")
    np.testing.assert_array_equal(case.image[flair], whole.image[t2])
    np.testing.assert_array_equal(case.image[:3], whole.image[:3])
    np.testing.assert_allclose(case.affine, whole.affine)
    assert case.findings == whole.findings  # still BraTS-ready: nothing else changed
    assert case.missing_sequence_notes() == [
        "FLAIR missing: T2 used in its place; edema extent less reliable, review it"
    ]
    assert "flair" not in case.files and whole.substituted == {}


def test_missing_t1_takes_t1gd_on_the_t1gd_grid(brats2018_case_dir: Path, tmp_path: Path) -> None:
    partial = _links(brats2018_case_dir, tmp_path / "no-t1", ("t1ce", "t2", "flair"))
    case = load_case(partial, allow_missing=True)
    assert case.substituted == {"t1": "t1ce"}
    np.testing.assert_array_equal(case.image[0], case.image[1])
    assert case.missing_sequence_notes() == [
        "T1 missing: T1Gd used in its place; necrosis less reliable and enhancement not "
        "checked, review it"
    ]


def test_the_no_enhancement_rule_follows_the_missing_series(
    brats2018_case_dir: Path, tmp_path: Path
) -> None:
    """Without T1Gd the rule is on (nothing can show contrast); without T1 it is off (a T1Gd
    copy in T1's place would measure no enhancement anywhere and take real ET away)."""
    from bratseg.inference import InferenceOptions
    from bratseg.postprocess import PostprocessConfig
    from bratseg.predictor import NO_CONTRAST_ET_RULE, _for_missing_series

    shipped = InferenceOptions(postprocess=PostprocessConfig(et_enhancement_min=1.1))
    off = InferenceOptions(postprocess=PostprocessConfig(et_enhancement_min=0.0))

    def rule(options: InferenceOptions) -> float:
        return options.postprocess.et_enhancement_min

    assert rule(_for_missing_series(off, {"t1ce": "t1"})) == NO_CONTRAST_ET_RULE
    assert rule(_for_missing_series(shipped, {"t1ce": "t1"})) == 1.1
    assert rule(_for_missing_series(shipped, {"t1": "t1ce"})) == 0.0
    assert _for_missing_series(shipped, {"flair": "t2"}) is shipped


def test_a_case_needs_one_series_of_each_pair(brats2018_case_dir: Path, tmp_path: Path) -> None:
    partial = _links(brats2018_case_dir, tmp_path / "t1-pair-only", ("t1", "t1ce"))
    with pytest.raises(BratsInputError, match="a case needs T2 or FLAIR"):
        load_case(partial, allow_missing=True)


def test_a_series_under_another_name_is_not_taken_for_missing(
    brats2018_case_dir: Path, tmp_path: Path
) -> None:
    """Never guess: when the folder holds an image file that is none of the case's series, the
    'missing' FLAIR may be it, so the case is refused with the file named, not filled from T2."""
    partial = _links(brats2018_case_dir, tmp_path / "odd-name", ("t1", "t1ce", "t2"))
    (partial / "x_fla.nii.gz").symlink_to(next(brats2018_case_dir.glob("*_flair.nii.gz")))
    with pytest.raises(BratsInputError, match=r"not recognised here: x_fla\.nii\.gz"):
        load_case(partial, allow_missing=True)
    case = load_case(partial, {"flair": "x_fla.nii.gz"}, allow_missing=True)  # mapped: complete
    assert case.substituted == {}
