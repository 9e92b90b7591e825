"""Cross-validation protocol pieces on real BraTS cases: clinical T1Gd names, a label map whose
origin disagrees with its images (explicit override only), stratified fixed splits and the
trainer reading one."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from tiny_training import TRAINING_CASES, link_cases, tiny_config

from bratseg.errors import BratsInputError
from bratseg.io import load_case, match_modality
from bratseg.preprocess import PreprocessConfig
from bratseg.training import discover_cases, train_events
from bratseg.training.data import cache_key, load_cases
from bratseg.training.splits import (
    LOW_ET_ML,
    CaseInfo,
    check_split_covers,
    extend_split,
    make_split,
    read_split_file,
    shuffled_folds,
    split_from_file,
    stratified_folds,
    write_split_file,
)

REPO = Path(__file__).resolve().parents[3]
SPLIT_44 = REPO / "docs" / "brats44-5fold.json"
SPLIT_77 = REPO / "docs" / "brats77-5fold.json"
CASES = TRAINING_CASES


@pytest.mark.parametrize(
    "name",
    [
        "X_t1post.nii.gz",
        "X_t1_post.nii.gz",
        "X-t1post.nii",
        "X_T1GD.nii.gz",
        "X_t1ce.nii.gz",
        "X-t1c.nii.gz",
    ],
)
def test_clinical_t1gd_names_are_recognised(name: str) -> None:
    assert match_modality(name) == "t1ce"


def test_post_alone_and_t1_stay_what_they_are() -> None:
    assert match_modality("X_post.nii.gz") is None
    assert match_modality("X_t1.nii.gz") == "t1"
    assert match_modality("X_t2_post.nii.gz") is None


def _case_with_shifted_seg(
    src: Path, dest: Path, shift: tuple[float, float, float], zoom: float = 1.0
) -> Path:
    """Copy a real case, rewriting its seg with the origin moved by ``shift`` mm (and scaled)."""
    case = dest / src.name
    case.mkdir(parents=True)
    for f in src.iterdir():
        if f.name.endswith("_seg.nii.gz"):
            img = nib.load(f)
            affine = img.affine.copy()
            affine[:3, 3] += shift
            affine[:3, :3] *= zoom
            nib.save(nib.Nifti1Image(np.asarray(img.dataobj), affine, img.header), case / f.name)
        else:
            (case / f.name).symlink_to(f.resolve())
    return case


def test_seg_with_another_origin_needs_the_explicit_override(
    brats2018_case_dir: Path, tmp_path: Path, caplog
) -> None:
    case = _case_with_shifted_seg(brats2018_case_dir, tmp_path, (0.0, -239.0, 0.0))
    with pytest.raises(BratsInputError, match="not co-registered"):
        load_case(case)
    with caplog.at_level(logging.WARNING, logger="bratseg.io.case"):
        loaded = load_case(case, seg_on_image_grid=True)
    assert (
        "origin differs" in caplog.text and "-239" in caplog.text and "_seg.nii.gz" in caplog.text
    )
    reference = load_case(brats2018_case_dir)
    assert np.array_equal(loaded.seg, reference.seg)
    np.testing.assert_array_equal(loaded.affine, reference.affine)


def test_seg_on_another_voxel_grid_is_refused_even_with_the_override(
    brats2018_case_dir: Path, tmp_path: Path
) -> None:
    case = _case_with_shifted_seg(brats2018_case_dir, tmp_path, (0.0, -239.0, 0.0), zoom=1.2)
    with pytest.raises(BratsInputError, match="not co-registered"):
        load_case(case, seg_on_image_grid=True)


def test_trainer_data_takes_the_override_per_case_only(
    brats2018_case_dir: Path, tmp_path: Path
) -> None:
    root = tmp_path / "data"
    _case_with_shifted_seg(brats2018_case_dir, root, (0.0, 5.0, 0.0))
    with pytest.raises(BratsInputError, match="not found among the labelled cases"):
        discover_cases([root], seg_on_image_grid=["Nope_1"])
    [plain] = discover_cases([root])
    [marked] = discover_cases([root], seg_on_image_grid=[brats2018_case_dir.name])
    assert not plain.seg_on_image_grid and marked.seg_on_image_grid
    preprocess = PreprocessConfig(target_spacing=3.0, pad_multiple=16)
    assert cache_key(plain, preprocess) != cache_key(marked, preprocess)
    with pytest.raises(BratsInputError, match="not co-registered"):
        load_cases([plain], preprocess, tmp_path / "cache")
    [cached] = load_cases([marked], preprocess, tmp_path / "cache")
    assert cached.label.max() > 0


def _infos(n_low: int, n_high: int, datasets: tuple[str, ...] = ("a", "b")) -> list[CaseInfo]:
    infos = [CaseInfo(f"low{i}", datasets[i % len(datasets)], 1.1 + i * 0.3) for i in range(n_low)]
    infos += [CaseInfo(f"high{i}", datasets[i % len(datasets)], 10.0 + i) for i in range(n_high)]
    return infos


def test_stratified_folds_cover_every_case_once_and_spread_each_stratum() -> None:
    infos = _infos(6, 38)
    folds = stratified_folds(infos, 5, seed=0)
    assert sorted(c for f in folds for c in f) == sorted(c.case_id for c in infos)
    assert max(map(len, folds)) - min(map(len, folds)) <= 1
    for fold in folds:
        assert any(c.startswith("low") for c in fold)  # every fold holds a low-enhancement case
        assert {c.dataset for c in infos if c.case_id in fold} == {"a", "b"}
    assert stratified_folds(infos, 5, seed=0) == folds
    assert stratified_folds(infos, 5, seed=1) != folds
    assert all(c.stratum == "low-et" for c in infos[:6]) and infos[6].stratum == "enhancing"
    assert CaseInfo("x", "a", LOW_ET_ML).stratum == "enhancing"
    assert CaseInfo("x", "a", 0.99).stratum == "non-enhancing"


def test_stratified_folds_refuse_impossible_splits() -> None:
    with pytest.raises(BratsInputError, match="at least 5 cases"):
        stratified_folds(_infos(1, 2), 5)
    with pytest.raises(BratsInputError, match="at least 2 folds"):
        stratified_folds(_infos(1, 2), 1)
    with pytest.raises(BratsInputError, match="twice"):
        stratified_folds([CaseInfo("a", "x", 1), CaseInfo("a", "y", 2)], 2)


def test_split_file_round_trip_and_checks(tmp_path: Path) -> None:
    split = make_split(_infos(6, 14), "demo", n_folds=4, seed=3)
    path = write_split_file(split, tmp_path / "demo.json")
    with pytest.raises(FileExistsError):
        write_split_file(split, path)
    again = read_split_file(path)
    assert again.folds == split.folds and again.name == "demo" and again.seed == 3
    train, val = again.train_val(2)
    assert set(train) | set(val) == set(split.cases) and not set(train) & set(val)
    assert again.fold_of(val[0]) == 2
    with pytest.raises(BratsInputError, match="in no fold"):
        check_split_covers(again, [*split.cases, "stranger"])
    with pytest.raises(BratsInputError, match="not found"):
        check_split_covers(again, list(split.cases)[1:])
    chosen = split_from_file(path, 2, list(split.cases))
    assert (chosen["train"], chosen["val"]) == (train, val)
    assert chosen["strata"] == split.strata()  # read once, kept in the run (--oversample)
    with pytest.raises(BratsInputError, match="needs --fold"):
        split_from_file(path, None, list(split.cases))
    with pytest.raises(BratsInputError, match=r"fold must be in \[0, 4\)"):
        split_from_file(path, 4, list(split.cases))
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"folds": [["a", "b"], ["b"]]}))
    with pytest.raises(BratsInputError, match="folds 0 and 1"):
        read_split_file(bad)
    with pytest.raises(BratsInputError, match="not found"):
        read_split_file(tmp_path / "missing.json")


def test_the_committed_44_case_protocol(brats2018_dir: Path) -> None:
    """The fixed protocol: 44 cases, 5 folds, every fold with a low-enhancement case, and every
    brats2018 case listed with the ET volume its real label map has."""
    split = read_split_file(SPLIT_44)
    assert split.name == "brats44-5fold" and split.n_folds == 5
    assert sum(map(len, split.folds)) == len(split.cases) == 44
    for fold in split.folds:
        assert any(split.cases[c]["stratum"] == "low-et" for c in fold)
    ids = {r.case_id for r in discover_cases([brats2018_dir])}
    assert ids <= set(split.cases) and sum(
        v["dataset"] == "brats2018" for v in split.cases.values()
    ) == len(ids)
    from bratseg.io import load_label_map
    from bratseg.labels import detect_convention
    from bratseg.metrics import tumour_volumes_ml

    case = "Brats18_TCIA10_637_1"
    lab = load_label_map(brats2018_dir / case / f"{case}_seg.nii.gz")
    et = tumour_volumes_ml(lab.data, detect_convention(lab.data), lab.spacing)["et"]
    assert split.cases[case]["et_ml"] == pytest.approx(et, abs=1e-3)


def test_extending_a_split_keeps_every_old_case_in_its_fold_and_spreads_the_new_ones() -> None:
    base = make_split(
        [CaseInfo(f"Brats18_C{i}", "brats2018", 5.0 + i) for i in range(10)], "base", 5
    )
    new = [CaseInfo(f"BraTS-SSA-{i:05d}-000", "extra", 10.0 + i) for i in range(10)]
    new += [CaseInfo(f"BraTS-GLI-{i:05d}-000", "extra", 0.3) for i in range(5)]
    ext = extend_split(base, new, "ext", seed=1)
    for k, fold in enumerate(base.folds):
        assert set(fold) <= set(ext.folds[k])
    # Each fold gets two BraTS-Africa cases and one non-enhancing case.
    for fold in ext.folds:
        assert sum(c.startswith("BraTS-SSA") for c in fold) == 2
        assert sum(ext.cases[c]["stratum"] == "non-enhancing" for c in fold) == 1
    assert ext.cases["BraTS-SSA-00001-000"]["source"] == "brats-africa"
    assert ext.cases["BraTS-GLI-00001-000"]["source"] == "brats2023-gli"
    assert ext.cases["Brats18_C1"]["source"] == "brats2017-2021"
    assert ext == extend_split(base, new, "ext", seed=1)  # seeded
    with pytest.raises(BratsInputError, match="already in the base split"):
        extend_split(base, [CaseInfo("Brats18_C1", "x", 1.0)], "bad")


def test_the_committed_77_case_protocol_extends_the_44() -> None:
    """brats77-5fold keeps each of the 44 cases in its fold (so the 44-case fold models stay
    leak-free under it) and spreads sources and enhancement strata over the folds."""
    s44, s77 = read_split_file(SPLIT_44), read_split_file(SPLIT_77)
    assert sum(map(len, s77.folds)) == len(s77.cases) == 77
    for k in range(5):
        assert set(s44.folds[k]) <= set(s77.folds[k])
    for fold in s77.folds:
        assert 4 <= sum(s77.cases[c]["source"] == "brats-africa" for c in fold) <= 6
        assert any(s77.cases[c]["stratum"] != "enhancing" for c in fold)
    non_enh = sorted(c for c, v in s77.cases.items() if v["stratum"] == "non-enhancing")
    assert non_enh == ["BraTS-GLI-00012-000", "BraTS-SSA-00046-000", "BraTS2021_00008"]
    assert len({s77.fold_of(c) for c in non_enh}) == 3


def test_the_committed_splits_are_generated_again_from_their_cases_and_seed() -> None:
    """Fold generation is reproducible: the 44-case split dealt again from its cases' recorded
    dataset and ET volume with its seed, then extended with the 33 cases the 77-case split adds,
    gives both committed files exactly."""
    s44, s77 = read_split_file(SPLIT_44), read_split_file(SPLIT_77)
    infos = [CaseInfo(c, v["dataset"], v["et_ml"]) for c, v in s44.cases.items()]
    again = make_split(infos, s44.name, n_folds=s44.n_folds, seed=s44.seed)
    assert again == s44
    new = [
        CaseInfo(c, v["dataset"], v["et_ml"]) for c, v in s77.cases.items() if c not in s44.cases
    ]
    assert len(new) == 33
    extended = extend_split(s44, new, s77.name, seed=s77.seed)
    assert extended.to_dict() == json.loads(SPLIT_77.read_text())


def test_shuffled_folds_are_the_trainers_k_fold_split() -> None:
    """The unstratified folds of ``train --folds K --fold k``: seeded, every case once, sizes
    within one, and the held-out cases ``split_cases`` gives for each fold."""
    from bratseg.training.data import split_cases

    ids = [f"case{i:02d}" for i in range(10)]
    folds = shuffled_folds(ids, 3, seed=0)
    assert folds == [
        ["case02", "case04", "case06", "case07"],
        ["case03", "case05", "case09"],
        ["case00", "case01", "case08"],
    ]
    assert shuffled_folds(list(reversed(ids)), 3, seed=0) == folds
    assert shuffled_folds(ids, 3, seed=1) != folds
    for k in range(3):
        assert split_cases(ids, fold=k, folds=3).val == folds[k]
    with pytest.raises(BratsInputError, match="at least 11 cases"):
        shuffled_folds(ids, 11)
    with pytest.raises(BratsInputError, match="at least 2 folds"):
        shuffled_folds(ids, 1)


@pytest.mark.slow
def test_cv_split_cli_and_trainer_fold_from_the_file(brats2018_dir: Path, tmp_path: Path) -> None:
    data = link_cases(tmp_path / "mini", brats2018_dir, CASES)
    out = tmp_path / "mini-3fold.json"
    cmd = [
        sys.executable,
        "-m",
        "bratseg.cli.main",
        "cv-split",
        "--data",
        str(data),
        "--folds",
        "3",
        "-o",
        str(out),
    ]
    proc = subprocess.run(cmd, capture_output=True, encoding="utf-8", errors="replace")
    assert proc.returncode == 0, proc.stderr
    assert "wrote" in proc.stdout and out.is_file()
    again = subprocess.run(cmd, capture_output=True, encoding="utf-8", errors="replace")
    assert again.returncode == 2 and "refusing to overwrite" in again.stderr
    split = read_split_file(out)
    assert all(v["dataset"] == "mini" for v in split.cases.values())
    assert not any(str(tmp_path) in json.dumps(v) for v in split.cases.values())  # no machine paths
    config = tiny_config(data, tmp_path / "run", tmp_path / "cache", split_file=str(out), fold=1)
    start = next(e for e in train_events(config) if e["event"] == "start")
    assert start["val_cases"] == split.folds[1]
    assert sorted(start["train_cases"]) == sorted(
        c for k, f in enumerate(split.folds) if k != 1 for c in f
    )
    assert "split mini-3fold" in start["split_note"]


def _row(case: str, dice: float, ref_et: float, pred_et: float) -> dict:
    return {
        "case": case,
        "dice": {"wt": dice, "tc": dice, "et": 0.0 if ref_et == 0 and pred_et else dice},
        "hd95": {"wt": 1.0, "tc": 2.0, "et": 3.0},
        "volume_ml": {"et": pred_et},
        "ref_volume_ml": {"et": ref_et},
    }


def test_protocol_summary_groups_by_fold_stratum_and_counts_invented_et() -> None:
    from bratseg.evaluation.protocol import format_protocol_table, protocol_summary

    infos = _infos(2, 4)
    split = make_split(infos, "demo", n_folds=2, seed=0)
    et = {c.case_id: c.et_ml for c in infos}
    et["low0"], et["low1"] = 0.0, 1.5  # one truly non-enhancing tumour, one faintly enhancing
    rows = [_row(c, 0.5 + 0.1 * i, et[c], 3.0) for i, c in enumerate(sorted(split.cases))]
    summary = protocol_summary(rows, split)
    assert list(summary) == ["pooled", "fold 0", "fold 1", "low-et", "enhancing", "ET < 1 mL"]
    assert summary["pooled"]["n"] == 6 and summary["fold 0"]["n"] + summary["fold 1"]["n"] == 6
    assert summary["low-et"]["cases"] == ["low0", "low1"] and summary["enhancing"]["n"] == 4
    assert summary["ET < 1 mL"]["cases"] == ["low0"] and summary["ET < 1 mL"]["et_fp"] == 1
    assert summary["pooled"]["et_fp"] == 1 and summary["enhancing"]["et_fp"] == 0
    dice_wt = [r["dice"]["wt"] for r in rows]
    assert summary["pooled"]["dice"]["wt"] == pytest.approx(sum(dice_wt) / 6, abs=1e-4)
    table = format_protocol_table(summary, "demo")
    assert table.count("\n| ") == 6 + 1 and "| ET < 1 mL | 1 |" in table
    empty = protocol_summary([r for r in rows if r["case"] != "low0"], split)
    assert empty["ET < 1 mL"]["n"] == 0 and "| ET < 1 mL | 0 | - |" in format_protocol_table(empty)


def test_protocol_summary_reports_each_source_and_the_volume_bias() -> None:
    """Per source, and the median predicted / reference volume: a network that draws twice the
    edema of one source's references shows it there, whatever its Dice."""
    from bratseg.evaluation.protocol import format_protocol_table, protocol_summary

    old = [CaseInfo(f"Brats18_X_{i}_1", "brats2018", 10.0 + i) for i in range(4)]
    africa = [CaseInfo(f"BraTS-SSA-{i:05d}-000", "extra", 10.0 + i) for i in range(4)]
    split = make_split(old + africa, "demo", n_folds=2, seed=0)

    def row(case: str, ed_factor: float) -> dict:
        ref = {"wt": 40.0, "ed": 20.0, "et": 10.0}
        pred = {"wt": 20.0 + 20.0 * ed_factor, "ed": 20.0 * ed_factor, "et": 10.0}
        return {**_row(case, 0.8, 10.0, 10.0), "volume_ml": pred, "ref_volume_ml": ref}

    rows = [row(c.case_id, 2.0) for c in old] + [row(c.case_id, 0.5) for c in africa]
    summary = protocol_summary(rows, split)
    assert summary["source brats2017-2021"]["n"] == 4 and summary["source brats-africa"]["n"] == 4
    assert "source brats2023-gli" not in summary  # no case of it
    assert summary["source brats2017-2021"]["volume_ratio"] == {"wt": 1.5, "ed": 2.0}
    assert summary["source brats-africa"]["volume_ratio"] == {"wt": 0.75, "ed": 0.5}
    assert summary["pooled"]["volume_ratio"]["ed"] == pytest.approx(1.25)
    table = format_protocol_table(summary)
    assert "| source brats-africa | 4 |" in table and "x0.75 / x0.50" in table
    # one source only: no source groups; no reference edema: no ratio
    alone = protocol_summary(rows[:4], split)
    assert not any(name.startswith("source") for name in alone)
    no_ed = [{**r, "ref_volume_ml": {"wt": 40.0, "ed": 0.0, "et": 10.0}} for r in rows]
    assert protocol_summary(no_ed, split)["pooled"]["volume_ratio"]["ed"] is None


def test_paired_bootstrap_interval_brackets_the_mean_and_widens_with_one_outlier() -> None:
    from bratseg.evaluation.protocol import paired_bootstrap_interval

    steady = [0.02, 0.03, 0.01, 0.02, 0.025, 0.015, 0.02]
    low, high = paired_bootstrap_interval(steady, draws=5000)
    assert low <= sum(steady) / 7 <= high and high - low < 0.02 and low > 0
    assert paired_bootstrap_interval(steady, draws=5000) == (low, high)  # seeded
    # one case losing 0.3 decides the sign of a 7-case mean: the interval spans zero
    outlier = [*steady[:-1], -0.3]
    lo2, hi2 = paired_bootstrap_interval(outlier, draws=5000)
    assert lo2 < 0 < hi2 and hi2 - lo2 > 5 * (high - low)
    assert paired_bootstrap_interval([0.1]) == (pytest.approx(0.1), pytest.approx(0.1))
    with pytest.raises(ValueError, match="no per-case"):
        paired_bootstrap_interval([])


def test_protocol_summary_reports_cases_seen_by_initial_weights_apart() -> None:
    from bratseg.evaluation.protocol import NEVER_SEEN, SEEN_IN_PRETRAINING, protocol_summary

    split = make_split(_infos(2, 4), "demo", n_folds=2, seed=0)
    cases = sorted(split.cases)
    rows = [
        {**_row(c, 0.9 if i < 2 else 0.5, 5.0, 5.0), "seen_in_pretraining": i < 2}
        for i, c in enumerate(cases)
    ]
    summary = protocol_summary(rows, split)
    assert list(summary)[-2:] == [NEVER_SEEN, SEEN_IN_PRETRAINING]
    assert summary[SEEN_IN_PRETRAINING]["cases"] == cases[:2] and summary[NEVER_SEEN]["n"] == 4
    assert summary[NEVER_SEEN]["dice"]["wt"] == pytest.approx(0.5)
    assert NEVER_SEEN not in protocol_summary(
        [{**r, "seen_in_pretraining": False} for r in rows], split
    )
