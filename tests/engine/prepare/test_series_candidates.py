"""The series listing behind the GUI's series picker (:mod:`bratseg.prepare.candidates`), on the
real raw clinical case: its four NIfTI series described and pre-selected, and the same case as a
DICOM study with decoys (a second T1, a DWI, a localizer), where the two T1 are named as ambiguous
(never guessed) and the decoys suggest no channel."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("SimpleITK")

from raw_scans import DICOM_SERIES, write_dicom_study  # noqa: E402

from bratseg.errors import BratsInputError  # noqa: E402
from bratseg.prepare import guess_channels, list_series, middle_slice, pick_series  # noqa: E402


@pytest.fixture(scope="module")
def study(raw_clinical_map, tmp_path_factory) -> Path:
    return write_dicom_study(raw_clinical_map, tmp_path_factory.mktemp("dicom") / "study", step=4)


def test_nifti_series_are_described_and_guessed(raw_clinical_dir: Path) -> None:
    native = raw_clinical_dir / "native"
    candidates = list_series(native)
    assert len(candidates) == 4
    by_channel = {c.channel: c for c in candidates}
    assert set(by_channel) == {"t1", "t1ce", "t2", "flair"}
    t1ce = by_channel["t1ce"]
    assert t1ce.kind == "nifti" and t1ce.images == 26 and t1ce.shape == (256, 224, 26)
    assert t1ce.slice_mm == pytest.approx(5.5, abs=0.05)
    assert t1ce.acquired is None and "POST_GAD" in t1ce.description
    guess = guess_channels(candidates)
    assert guess.complete and guess.chosen == pick_series(native)
    thumb = middle_slice(t1ce, size=64)
    assert thumb.dtype == np.uint8 and max(thumb.shape) <= 64 and thumb.std() > 20


def test_dicom_study_lists_decoys_and_names_the_ambiguity(study: Path) -> None:
    candidates = list_series(study)
    assert [c.name for c in candidates] == sorted(DICOM_SERIES)
    by_name = {c.name: c for c in candidates}
    gad = by_name["s13"]
    assert gad.kind == "dicom" and gad.description == "MRHR T1 AX POST GAD"
    assert gad.images == 26 and gad.slice_mm == pytest.approx(5.5, abs=0.05)
    assert gad.acquired == "10:13:00" and gad.series_number == 13
    assert by_name["s07"].channel is None and by_name["s01"].channel is None  # DWI, localizer
    guess = guess_channels(candidates)
    assert not guess.complete
    assert guess.ambiguous == {"t1": [study / "s10", study / "s11"]}
    assert {k: p.name for k, p in guess.chosen.items()} == {
        "t1ce": "s13",
        "t2": "s02",
        "flair": "s05",
    }
    assert guess.missing == []
    with pytest.raises(BratsInputError, match="s10.*s11"):  # the engine refuses the same way
        pick_series(study)
    thumb = middle_slice(gad, size=48)
    assert thumb.dtype == np.uint8 and max(thumb.shape) <= 48 and thumb.std() > 20


def test_folder_without_series_is_one_clear_line(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(BratsInputError, match="no series found"):
        list_series(tmp_path)
    with pytest.raises(BratsInputError, match="not found"):
        list_series(tmp_path / "absent")
