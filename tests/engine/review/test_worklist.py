"""Worklist and sign-off (engine, no Qt) on real BraTS 2018 cases with the stand-in model: status
new -> segmented -> edited -> approved -> reopened, an approved review refuses changes, the
approval survives a new store, the batch is cancellable and resumable, a broken case keeps its
error in its row, and the approved cases export as a dataset the trainer reads."""

from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path

import numpy as np
import pytest

from bratseg.errors import BratsInputError
from bratseg.inference import InferenceOptions
from bratseg.review import ReviewLockedError, SessionStore, default_reviewer
from bratseg.review.worklist import Worklist, existing_exports, export_approved, segment_all

CASES = ("Brats18_2013_2_1", "Brats18_2013_3_1", "Brats18_CBICA_ABM_1")


def _link_case(source: Path, dest: Path, skip: str | None = None) -> Path:
    dest.mkdir(parents=True)
    for f in source.iterdir():
        if skip is None or not f.name.endswith(f"_{skip}.nii.gz"):
            os.symlink(f, dest / f.name)
    return dest


@pytest.fixture()
def folder(brats2018_dir: Path, tmp_path: Path) -> Path:
    """Three real cases (symlinked) in a worklist folder."""
    root = tmp_path / "cases"
    for name in CASES:
        _link_case(brats2018_dir / name, root / name)
    return root


@pytest.fixture()
def model(standin, tmp_path: Path) -> Path:
    return standin.save_standin(tmp_path / "standin-regions.pt")


def _run(worklist: Worklist, model: Path, stop=None) -> list:
    options = InferenceOptions(device="cpu", threads=1)
    return list(segment_all(worklist, [model], options, should_stop=stop))


def test_status_transitions_and_the_approval_locks_and_persists(
    folder: Path, model: Path, tmp_path: Path
) -> None:
    store = SessionStore(tmp_path / "sessions")
    worklist = Worklist(folder, store)
    assert [r.case_id for r in worklist.rows] == list(CASES)
    assert [r.status for r in worklist.rows] == ["new"] * 3 and all(r.key for r in worklist.rows)
    events = _run(worklist, model)
    assert [e.case_id for e in events if e.kind == "done"] == list(CASES)
    assert [r.status for r in worklist.rows] == ["segmented"] * 3
    row = worklist.rows[0]
    assert row.models == ["standin-regions"] and row.n_edited == 0
    assert (
        row.volumes_ml["wt"] > 0
        and row.volumes_ml["wt"] >= row.volumes_ml["tc"] >= row.volumes_ml["et"]
    )

    session = worklist.session(0)
    session.labels[20:26, 30:36, 30:36] = 1  # a 216-voxel NCR stroke
    session.record_edits()
    store.save(session, row.key)
    assert worklist.refresh_row(0).status == "edited" and worklist.rows[0].n_edited == 216

    approval = worklist.approve(0, reviewer="  ")  # empty field: the OS user
    assert approval.reviewer == default_reviewer() and approval.time.endswith("+00:00")
    assert (
        worklist.rows[0].status == "approved"
        and worklist.rows[0].approval.reviewer == default_reviewer()
    )
    assert approval.models == ["standin-regions"] and len(approval.sha256[0]) == 64
    assert approval.postprocess["wt_threshold"] == 0.5 and approval.n_edited == 216
    assert approval.edited_voxels["ncr"]["added"] == 216

    # a fresh store (a restart) sees the approval; the restored session is read-only
    again = Worklist(folder, SessionStore(tmp_path / "sessions"))
    assert [r.status for r in again.rows] == ["approved", "segmented", "segmented"]
    locked = again.session(0)
    assert locked.approved and locked.approval.reviewer == default_reviewer()
    locked.labels[0, 0, 0] = 2
    with pytest.raises(ReviewLockedError, match=r"approved by .* reopen it before editing"):
        locked.record_edits()
    locked.labels[0, 0, 0] = locked.proposal[0, 0, 0]
    from bratseg.postprocess import PostprocessConfig

    for change in (
        lambda: locked.apply_config(PostprocessConfig()),
        locked.clear_overrides,
        lambda: locked.set_proposal(locked.proposal),
        locked.approve,
    ):
        with pytest.raises(ReviewLockedError):
            change()
    with pytest.raises(BratsInputError, match="not approved"):
        again.reopen(1, "ana")

    reopened = again.reopen(0, reviewer="ana")
    assert reopened.action == "reopen" and reopened.reviewer == "ana"
    assert again.rows[0].status == "edited" and again.rows[0].approval is None
    history = store.get(again.rows[0].key).signoffs
    assert [(h.action, h.reviewer) for h in history] == [
        ("approve", default_reviewer()),
        ("reopen", "ana"),
    ]
    editable = again.session(0)
    editable.labels[0, 0, 0] = 2
    assert editable.record_edits() == 217  # editable again


def test_batch_is_cancellable_and_resumable(folder: Path, model: Path, tmp_path: Path) -> None:
    worklist = Worklist(folder, SessionStore(tmp_path / "sessions"))
    finished: list[str] = []

    def stop_after_first() -> bool:
        return bool(finished)

    events = []
    for event in segment_all(
        worklist, [model], InferenceOptions(device="cpu", threads=1), stop_after_first
    ):
        events.append(event)
        if event.kind == "done":
            finished.append(event.case_id)
    assert finished == [CASES[0]] and events[-1].kind == "cancelled"
    assert any(e.kind == "progress" and e.steps > 0 for e in events)
    assert [r.status for r in worklist.rows] == ["segmented", "new", "new"]

    resumed = Worklist(folder, SessionStore(tmp_path / "sessions"))
    events = _run(resumed, model)
    assert [e.case_id for e in events if e.kind == "skipped"] == [CASES[0]]
    assert [e.case_id for e in events if e.kind == "done"] == list(CASES[1:])
    assert events[-1].kind == "finished" and [r.status for r in resumed.rows] == ["segmented"] * 3
    assert _run(resumed, model)[-1].message.startswith("0 segmented, 3 skipped")


def test_a_broken_case_keeps_its_error_in_its_row(
    brats2018_dir: Path, brats2023_case_dir: Path, model: Path, tmp_path: Path
) -> None:
    root = tmp_path / "cases"
    good = _link_case(brats2018_dir / CASES[0], root / CASES[0])
    _link_case(
        brats2023_case_dir, root / brats2023_case_dir.name
    )  # BraTS 2023 names beside 2018 ones
    _link_case(brats2018_dir / CASES[1], root / "Case_no_flair", skip="flair")
    no_pair = _link_case(brats2018_dir / CASES[1], root / "Case_no_t2_flair", skip="flair")
    (no_pair / f"{CASES[1]}_t2.nii.gz").unlink()  # nothing left to stand in for FLAIR
    truncated = _link_case(brats2018_dir / CASES[2], root / "Case_truncated", skip="flair")
    flair = (brats2018_dir / CASES[2] / f"{CASES[2]}_flair.nii.gz").read_bytes()
    (truncated / "Case_truncated_flair.nii.gz").write_bytes(flair[: len(flair) // 3])
    (root / "notes").mkdir()  # a folder with nothing of a case is not listed
    (root / "notes" / "readme.txt").write_text("x")

    worklist = Worklist(root, SessionStore(tmp_path / "sessions"))
    rows = {r.case_id: r for r in worklist.rows}
    assert sorted(rows) == sorted(
        [CASES[0], brats2023_case_dir.name, "Case_no_flair", "Case_no_t2_flair", "Case_truncated"]
    )
    assert (
        rows["Case_no_t2_flair"].status == "error"
        and "missing T2 (t2) image" in rows["Case_no_t2_flair"].error
        and "a case needs T2 or FLAIR" in rows["Case_no_t2_flair"].error
    )
    assert "\n" not in rows["Case_no_t2_flair"].error
    assert (
        rows[CASES[0]].status
        == rows["Case_truncated"].status
        == rows[brats2023_case_dir.name].status
        == rows["Case_no_flair"].status  # T2 stands in for its FLAIR
        == "new"
    )

    events = _run(worklist, model)
    failed = [e for e in events if e.kind == "failed"]
    assert [e.case_id for e in failed] == ["Case_truncated"]
    rows = {r.case_id: r for r in worklist.rows}
    assert (
        rows["Case_truncated"].status == "error"
        and "Case_truncated_flair.nii.gz" in rows["Case_truncated"].error
    )
    assert "\n" not in rows["Case_truncated"].error
    assert rows[CASES[0]].status == "segmented" and rows[CASES[0]].error is None and good.is_dir()
    no_flair = rows["Case_no_flair"]
    assert no_flair.status == "segmented" and no_flair.error is None
    if importlib.util.find_spec("bratseg.review.uncertainty") is not None:  # the stand-in first
        assert no_flair.needs_review and no_flair.reasons[0] == (
            "FLAIR missing: T2 used in its place; edema extent less reliable, review it."
        )
    assert (
        rows[brats2023_case_dir.name].status == "segmented"
        and rows[brats2023_case_dir.name].volumes_ml["wt"] > 0
    )
    if (
        importlib.util.find_spec("bratseg.review.uncertainty") is None
    ):  # the flag stays empty without it
        assert rows[CASES[0]].needs_review is None and rows[CASES[0]].reasons == []
    else:  # the assessment is stored with the saved review and read back into the row
        saved = worklist.store.get(rows[CASES[0]].key).meta["assessment"]
        assert (
            isinstance(rows[CASES[0]].needs_review, bool)
            and rows[CASES[0]].needs_review == saved["needs_review"]
        )
        assert (
            rows[CASES[0]].reasons == saved["reasons"]
            and (saved["reasons"] != []) == saved["needs_review"]
        )


def test_approved_cases_export_as_a_dataset_the_trainer_reads(
    folder: Path, model: Path, tmp_path: Path
) -> None:
    from bratseg.io import load_case
    from bratseg.preprocess import PreprocessConfig
    from bratseg.training.data import discover_cases, preprocess_case

    store = SessionStore(tmp_path / "sessions")
    worklist = Worklist(folder, store)
    _run(worklist, model)
    session = worklist.session(1)
    session.labels[40:45, 40:45, 40:45] = 2
    session.record_edits()
    store.save(session, worklist.rows[1].key)
    worklist.approve(1, reviewer="dr.ana")
    worklist.approve(2, reviewer="dr.ben")
    dataset = tmp_path / "approved"
    events = list(export_approved(worklist, dataset))
    assert [e.case_id for e in events if e.kind == "done"] == list(CASES[1:])
    assert sorted(p.name for p in dataset.iterdir()) == sorted(
        CASES[1:]
    )  # only approved, nothing partial

    provenance = json.loads((dataset / CASES[1] / f"{CASES[1]}_provenance.json").read_text())
    approval = provenance["approval"]
    assert provenance["approved"] is True and approval["reviewer"] == "dr.ana"
    assert approval["time"].endswith("+00:00") and approval["models"] == ["standin-regions"]
    assert approval["sha256"] == provenance["model"]["sha256"] and len(approval["sha256"][0]) == 64
    assert (
        approval["postprocess"] == provenance["postprocess"]
        and approval["postprocess"]["et_component_rule"]
    )
    assert approval["n_edited"] == provenance["edited_voxels_total"] > 0
    assert approval["edited_voxels"] == provenance["edited_voxels"]
    assert [h["action"] for h in provenance["signoff_history"]] == ["approve"]

    refs = discover_cases([dataset])  # what 'napari-brats train --data DATASET' reads
    assert [r.case_id for r in refs] == list(CASES[1:])
    exported = load_case(dataset / CASES[1])
    assert np.array_equal(exported.seg, session.labels) and exported.seg_convention == "2021"
    cached = preprocess_case(refs[0], PreprocessConfig())
    assert (
        cached.image.shape[0] == 4
        and cached.label.shape == cached.image.shape[1:]
        and cached.label.max() > 0
    )
    assert store.get(worklist.rows[1].key).meta["exported"] is True

    assert existing_exports(worklist, dataset) == list(CASES[1:])
    again = list(export_approved(worklist, dataset))  # never replaced silently
    assert [e.kind for e in again].count("failed") == 2 and "kept" in again[0 + 1].message
    assert len(list(export_approved(worklist, dataset, overwrite=True))) == 5


def test_raw_scans_in_the_worklist_get_the_input_check_in_their_row(
    brats2018_dir: Path, raw_clinical_map, model: Path, tmp_path: Path
) -> None:
    """A head as scanned (skull, 5.5 mm slices; resampled onto the T1Gd grid so that only the
    input check can refuse it) fails with the way out; the BraTS case beside it is segmented."""
    import nibabel as nib
    from nibabel.processing import resample_from_to

    root = tmp_path / "cases"
    _link_case(brats2018_dir / CASES[0], root / CASES[0])
    raw = root / "raw"
    raw.mkdir()
    ref = nib.load(raw_clinical_map["t1ce"])
    for key, path in raw_clinical_map.items():
        img = nib.load(path)
        img = img if key == "t1ce" else resample_from_to(img, ref, order=1)
        nib.save(
            nib.Nifti1Image(np.asarray(img.dataobj, np.float32), ref.affine),
            raw / f"raw_{key}.nii.gz",
        )
    worklist = Worklist(root, SessionStore(tmp_path / "sessions"))
    events = _run(worklist, model)
    assert [e.case_id for e in events if e.kind == "done"] == [CASES[0]]
    row = worklist.rows[worklist.index_of("raw")]
    assert row.status == "error"
    assert (
        "not BraTS-ready: not skull-stripped" in row.error and "napari-brats prepare" in row.error
    )
