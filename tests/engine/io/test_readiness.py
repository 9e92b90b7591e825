"""The input check: raw clinical scans (skull, 5.5 mm slices) are found not BraTS-ready and
refused by ``predict`` with the way out; no BraTS case and not the packaged sample is flagged."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from bratseg.cli.main import main
from bratseg.io import load_case
from bratseg.io.readiness import check_input, readiness_line
from bratseg.sample import sample_case_dir


def test_no_false_alarm_on_brats_cases_and_the_sample(brats2018_dir: Path) -> None:
    folders = [*sorted(p for p in brats2018_dir.iterdir() if p.is_dir()), sample_case_dir()]
    assert len(folders) == 17
    for folder in folders:
        case = load_case(folder, load_seg=False)
        assert case.findings == [], (folder.name, case.findings)


def test_raw_clinical_case_is_not_ready(raw_clinical_dir: Path, raw_clinical_map) -> None:
    case = load_case(
        raw_clinical_dir / "native", raw_clinical_map, load_seg=False, align="resample"
    )
    codes = [f.code for f in case.findings]
    assert codes[:2] == ["not_skull_stripped", "thick_slices"]
    line = readiness_line(case.findings)
    assert "\n" not in line and "5.5 mm slices" in line and "napari-brats prepare" in line


def test_a_head_with_zeroed_background_is_still_a_head(brats2018_case) -> None:
    """Not only the noisy-air fraction: a head-sized non-zero volume is flagged too."""
    image = np.zeros((4, 240, 240, 155), dtype=np.float32)
    image[:, 40:200, 30:210, 10:150] = 100.0  # 4.0 L, 38 % of the field of view
    assert [f.code for f in check_input(image, (1.0, 1.0, 1.0))] == ["not_skull_stripped"]
    assert check_input(brats2018_case.image, brats2018_case.spacing) == []


def test_thin_but_anisotropic_and_blank_series() -> None:
    image = np.zeros((4, 240, 240, 60), dtype=np.float32)
    image[:, 60:180, 60:180, 10:50] = 50.0
    image[3] = 0.0  # a blank FLAIR
    codes = [f.code for f in check_input(image, (0.5, 0.5, 2.5))]
    assert codes == ["anisotropic", "intensities"]


@pytest.mark.slow
def test_predict_refuses_raw_scans_with_the_way_out(
    raw_clinical_dir: Path, raw_clinical_map, tmp_path: Path, capsys
) -> None:
    out = tmp_path / "seg.nii.gz"
    maps = [a for k, v in raw_clinical_map.items() for a in ("--map", f"{k}={v}")]
    rc = main(
        [
            "predict",
            str(raw_clinical_dir / "native"),
            "-o",
            str(out),
            "--align",
            "resample",
            *maps,
            "-q",
        ]
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and not out.exists()
    assert "not BraTS-ready: not skull-stripped" in err[-1] and "napari-brats prepare" in err[-1]


def test_info_shows_the_check(raw_clinical_dir: Path, raw_clinical_map, capsys) -> None:
    maps = [a for k, v in raw_clinical_map.items() for a in ("--map", f"{k}={v}")]
    assert main(["info", str(raw_clinical_dir / "native"), "--align", "resample", *maps]) == 0
    text = capsys.readouterr().out
    assert "Input check  not BraTS-ready: not skull-stripped" in text
