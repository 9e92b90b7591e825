"""`napari-brats predict` and `napari-brats models` on real shared cases.

Predictions use the deterministic stand-ins of ``tests/standin.py`` (their probabilities are
known independently of the engine); the listing tests use tiny random-weight checkpoints.
"""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
from scipy import ndimage

from bratseg.checkpoint import load_checkpoint, save_checkpoint
from bratseg.cli.main import main
from bratseg.labels import region_masks, valid_labels
from bratseg.models import build_model
from bratseg.postprocess import PostprocessConfig, postprocess

torch.set_num_threads(2)

DATA = Path(__file__).resolve().parents[3] / ".." / "shared" / "data" / "brats2018"
CASES = ["Brats18_2013_2_1", "Brats18_CBICA_ABM_1"]


@pytest.fixture(scope="module")
def case_dir():
    if not (DATA / CASES[0]).exists():
        pytest.skip(f"shared data not found at {DATA}")
    return DATA / CASES[0]


@pytest.fixture(scope="module")
def ckpts(tmp_path_factory):
    folder = tmp_path_factory.mktemp("models")
    out = []
    for arch, spacing in (("lowrank-resunet", 3.0), ("segresnet-vae", 3.0)):
        torch.manual_seed(1)
        model = build_model(arch, preset="tiny")
        out.append(
            save_checkpoint(
                folder / f"{arch}-tiny.pt",
                model,
                arch=arch,
                config=model.config,
                preprocess={"target_spacing": spacing},
                provenance={"val_dice": {"wt": 0.5, "tc": 0.4, "et": 0.3}},
            )
        )
    return out


@pytest.fixture(scope="module")
def standins(standin, tmp_path_factory):
    """Stand-in checkpoints at the source resolution: ``regions`` and ``classes``."""
    folder = tmp_path_factory.mktemp("standins")
    return {
        kind: standin.save_standin(folder / f"standin-{kind}.pt", kind)
        for kind in ("regions", "classes")
    }


@pytest.fixture(scope="module")
def case_image(case_dir):
    from bratseg.io import load_case

    return load_case(case_dir, load_seg=False).image


@pytest.fixture(autouse=True)
def _home(tmp_path, monkeypatch):
    monkeypatch.setenv("BRATSEG_HOME", str(tmp_path / "home"))


def check_output(path: Path, case_dir: Path, convention: str = "2021") -> np.ndarray:
    img = nib.load(path)
    ref = nib.load(next(case_dir.glob("*_t1.nii.gz")))
    assert img.shape == ref.shape
    np.testing.assert_allclose(img.affine, ref.affine, atol=1e-5)
    assert img.get_data_dtype() == np.uint8
    labels = np.asarray(img.dataobj)
    assert set(np.unique(labels).tolist()) <= set(valid_labels(convention))
    m = region_masks(labels, convention)
    assert not (m["et"] & ~m["tc"]).any() and not (m["tc"] & ~m["wt"]).any()
    return labels


@pytest.mark.slow
def test_predict_single_case(standin, standins, case_dir, case_image, tmp_path, capsys):
    out, prob = tmp_path / "pred.nii.gz", tmp_path / "prob.nii.gz"
    rc = main(
        [
            "predict",
            str(case_dir),
            "-o",
            str(out),
            "--model",
            str(standins["regions"]),
            "--labels",
            "2023",
            "--probabilities",
            str(prob),
            "--device",
            "cpu",
            "--no-amp",  # float32: the formula to float16's precision
            "-q",
        ]
    )
    assert rc == 0
    labels = check_output(out, case_dir, "2023")
    assert 4 not in labels and np.count_nonzero(labels == 3) > 1000
    assert CASES[0] in capsys.readouterr().out
    # the probability file: X, Y, Z, (WT, TC, ET) float32 in [0, 1], the case's geometry, and the
    # network's output (the stand-in's formula, channel by channel)
    p_img = nib.load(prob)
    assert p_img.shape == (*labels.shape, 3) and p_img.get_data_dtype() == np.float32
    np.testing.assert_allclose(p_img.affine, nib.load(out).affine, atol=1e-5)
    probs = np.moveaxis(np.asarray(p_img.dataobj), -1, 0)
    assert probs.min() >= 0.0 and probs.max() <= 1.0
    expected = standin.expected_region_probs(case_image, "regions")
    np.testing.assert_allclose(probs, expected, atol=1e-3, rtol=0)
    config = PostprocessConfig.from_dict(standin.POSTPROCESS)
    np.testing.assert_array_equal(labels, postprocess(probs, config, convention="2023"))
    # existing output is refused (exit 2, file untouched), replaced with --overwrite
    before = out.read_bytes()
    rc = main(["predict", str(case_dir), "-o", str(out), "--model", str(standins["regions"]), "-q"])
    assert rc == 2 and out.read_bytes() == before
    assert "exists" in capsys.readouterr().err
    # the postprocessing flags reach the postprocessing
    rc = main(
        [
            "predict",
            str(case_dir),
            "-o",
            str(out),
            "--model",
            str(standins["regions"]),
            "-q",
            "--overwrite",
            "--no-amp",  # the same precision as the probabilities above
            "--wt-threshold",
            "0.99",
            "--no-et-component-rule",
        ]
    )
    assert rc == 0
    strict = np.asarray(nib.load(out).dataobj)
    flagged = PostprocessConfig.from_dict(
        {**standin.POSTPROCESS, "wt_threshold": 0.99, "et_component_rule": False}
    )
    np.testing.assert_array_equal(strict, postprocess(probs, flagged, convention="2021"))
    assert 0 < np.count_nonzero(strict) < np.count_nonzero(labels)  # WT shrinks at 0.99


@pytest.mark.slow
def test_probabilities_of_a_class_model_are_nested_regions(standins, case_dir, tmp_path):
    out, prob = tmp_path / "pred.nii.gz", tmp_path / "prob.nii.gz"
    assert (
        main(
            [
                "predict",
                str(case_dir),
                "-o",
                str(out),
                "--model",
                str(standins["classes"]),
                "--probabilities",
                str(prob),
                "-q",
            ]
        )
        == 0
    )
    wt, tc, et = np.moveaxis(np.asarray(nib.load(prob).dataobj), -1, 0)
    # WT = 1 - p(background) >= TC = p(NCR) + p(ET) >= ET = p(ET), up to float16 rounding
    assert (wt >= tc - 1e-3).all() and (tc >= et - 1e-3).all()
    assert np.count_nonzero(et > 0.5) > 1000 and np.count_nonzero(wt > tc + 0.1) > 1000
    labels = np.asarray(nib.load(out).dataobj)
    config = PostprocessConfig.from_dict(
        dict(load_checkpoint(standins["classes"]).meta["postprocess"])
    )
    np.testing.assert_array_equal(labels, postprocess(np.stack([wt, tc, et]), config))


@pytest.mark.slow
def test_predict_dataset_with_ensemble(standin, standins, tmp_path, capsys):
    if not all((DATA / c).exists() for c in CASES):
        pytest.skip("shared cases missing")
    from bratseg.io import load_case

    dataset = tmp_path / "dataset"
    dataset.mkdir()
    for c in CASES:
        (dataset / c).symlink_to(DATA / c, target_is_directory=True)
    (dataset / "notes").mkdir()  # not a case: skipped
    out, prob = tmp_path / "preds", tmp_path / "probs"
    rc = main(
        [
            "predict",
            str(dataset),
            "-o",
            str(out),
            "--model",
            str(standins["regions"]),
            "--model",
            str(standins["classes"]),
            "--device",
            "cpu",
            "--no-amp",  # float32: the mean of the formulas to float16's precision
            "--et-threshold",
            "0.6",
            "--min-island-fraction",
            "1",
            "--probabilities",
            str(prob),
        ]
    )
    assert rc == 0
    assert sorted(p.name for p in out.glob("*.nii.gz")) == [f"{c}.nii.gz" for c in CASES]
    assert {p.name for p in out.iterdir()} - {p.name for p in out.glob("*.nii.gz")} == {
        ".cohort",  # per-case records (resume), see test_cli_predict_cohort.py
        "cases.jsonl",
        "summary.csv",
    }
    config = PostprocessConfig.from_dict({**standin.POSTPROCESS, "et_threshold": 0.6})
    structure = np.ones((3, 3, 3))
    for c in CASES:
        labels = check_output(out / f"{c}.nii.gz", DATA / c)
        probs = np.moveaxis(np.asarray(nib.load(prob / f"{c}_probabilities.nii.gz").dataobj), -1, 0)
        image = load_case(DATA / c, load_seg=False).image
        ensemble = 0.5 * (
            standin.expected_region_probs(image, "regions")
            + standin.expected_region_probs(image, "classes")
        )
        np.testing.assert_allclose(probs, ensemble, atol=1e-3, rtol=0)  # the mean of the two models
        # the FLAIR rule leaves scattered tumour islands; --min-island-fraction 1 keeps the largest
        assert ndimage.label(postprocess(probs, config) > 0, structure=structure)[1] > 1
        assert ndimage.label(labels > 0, structure=structure)[1] == 1
        islands = PostprocessConfig.from_dict({**config.to_dict(), "min_island_fraction": 1.0})
        np.testing.assert_array_equal(labels, postprocess(probs, islands))
    stdout = capsys.readouterr().out
    assert all(c in stdout for c in CASES)
    rc = main(["predict", str(dataset), "-o", str(out), "--model", str(standins["regions"]), "-q"])
    assert rc == 2  # outputs exist


def test_predict_postprocessing_flags_reach_the_config(standins):
    from bratseg.checkpoint import load_checkpoint
    from bratseg.cli.main import build_parser
    from bratseg.cli.predict import postprocess_config

    loaded = [load_checkpoint(standins["regions"])]
    parse = build_parser().parse_args
    base = postprocess_config(parse(["predict", "case", "-o", "x.nii.gz"]), loaded)
    on = postprocess_config(
        parse(
            [
                "predict",
                "case",
                "-o",
                "x.nii.gz",
                "--wt-needs-core",
                "--min-island-fraction",
                "0.2",
                "--et-sparse-fraction",
                "0.25",
                "--et-sparse-threshold",
                "0.85",
            ]
        ),
        loaded,
    )
    off = postprocess_config(
        parse(["predict", "case", "-o", "x.nii.gz", "--no-wt-needs-core"]), loaded
    )
    assert base.wt_needs_core is False and on.wt_needs_core is True and off.wt_needs_core is False
    assert on.min_island_fraction == 0.2 and base.min_island_fraction == 0.0
    assert (on.et_sparse_fraction, on.et_sparse_threshold) == (0.25, 0.85)
    assert base.et_sparse_fraction == 0.0


@pytest.mark.parametrize(
    "make_args, message",
    [
        (lambda d, o, m: [str(d / "missing"), "-o", str(o), "--model", m], "not found"),
        (lambda d, o, m: [str(d), "-o", str(o.with_suffix(".txt")), "--model", m], ".nii"),
        (lambda d, o, m: [str(d), "-o", str(o), "--model", "no-such-model"], "unknown model"),
        (
            lambda d, o, m: [str(d), "-o", str(o), "--model", m, "--wt-threshold", "1.5"],
            "between 0 and 1",
        ),
        (
            lambda d, o, m: [str(d), "-o", str(o), "--model", m, "--min-island-fraction", "2"],
            "between 0 and 1",
        ),
        (
            lambda d, o, m: [str(d), "-o", str(o.parent / "nofolder" / "x.nii.gz"), "--model", m],
            "does not exist",
        ),
        (
            lambda d, o, m: [str(d), "-o", str(o), "--model", str(Path(m).parent / "junk.pt")],
            "checkpoint",
        ),
    ],
)
def test_bad_input_exit_2_nothing_written(case_dir, ckpts, tmp_path, capsys, make_args, message):
    (ckpts[0].parent / "junk.pt").write_bytes(b"not a checkpoint at all")
    out = tmp_path / "out" / "pred.nii.gz"
    out.parent.mkdir()
    rc = main(["predict", *make_args(case_dir, out, str(ckpts[0]))])
    err = capsys.readouterr().err
    assert rc == 2
    assert len(err.strip().splitlines()) == 1 and message in err and "Traceback" not in err
    assert list(out.parent.iterdir()) == []


def test_no_model_and_none_bundled(case_dir, tmp_path, capsys, monkeypatch):
    import bratseg.zoo as zoo
    from bratseg.zoo import catalogue

    empty = tmp_path / "no-weights"
    empty.mkdir()
    monkeypatch.setattr(catalogue, "BUNDLED_DIR", empty)
    assert zoo.default_model_names() == []
    rc = main(["predict", str(case_dir), "-o", str(tmp_path / "x.nii.gz")])
    err = capsys.readouterr().err
    assert rc == 2 and "no bundled default model" in err and "--model" in err
    assert len(err.strip().splitlines()) == 1
    assert not (tmp_path / "x.nii.gz").exists()


def test_models_command_lists_user_models_and_architectures(ckpts, tmp_path, capsys, monkeypatch):
    home = tmp_path / "home"
    (home / "models").mkdir(parents=True)
    (home / "models" / "mine.pt").write_bytes(ckpts[0].read_bytes())
    (home / "models" / "broken.pt").write_bytes(b"junk")  # skipped, not fatal
    assert main(["models", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    names = [m["name"] for m in data["models"]]
    assert "mine" in names and "broken" not in names
    mine = next(m for m in data["models"] if m["name"] == "mine")
    assert mine["arch"] == "lowrank-resunet" and not mine["bundled"] and mine["parameters"] > 0
    assert mine["val_dice"] == {"wt": 0.5, "tc": 0.4, "et": 0.3}
    archs = {a["name"]: a for a in data["architectures"]}
    assert {"lowrank-resunet", "cascade-unet", "ds-unet", "nnunet", "segresnet-vae"} <= set(archs)
    assert archs["nnunet"]["parameters_paper"] > archs["nnunet"]["parameters_small"] > 0
    assert main(["models"]) == 0
    table = capsys.readouterr().out
    assert "mine" in table and "Futrega" in table and "WT 0.500" in table
    # the zoo resolves the user model by name
    from bratseg.zoo import resolve_model

    assert resolve_model("mine") == home / "models" / "mine.pt"


def test_case_folder_missing_a_channel_names_it(case_dir, ckpts, tmp_path, capsys):
    partial = tmp_path / "partial"
    partial.mkdir()
    for channel in ("t1", "t2", "flair"):
        (partial / f"x_{channel}.nii.gz").symlink_to(next(case_dir.glob(f"*_{channel}.nii.gz")))
    out = tmp_path / "pred.nii.gz"
    command = ["predict", str(partial), "-o", str(out), "--model", str(ckpts[0])]
    rc = main([*command, "--require-all-sequences"])
    err = capsys.readouterr().err
    assert rc == 2 and "missing T1Gd (t1ce)" in err and len(err.strip().splitlines()) == 1
    assert not out.exists()
    for channel in ("t2", "flair"):  # neither of a pair: refused even where a series may lack
        (partial / f"x_{channel}.nii.gz").unlink()
    rc = main(command)
    err = capsys.readouterr().err
    assert rc == 2 and "missing T2 (t2)" in err and "a case needs T2 or FLAIR" in err
    assert not out.exists()


def test_a_case_without_t1gd_is_segmented_with_a_warning_and_no_et(
    standin, standins, case_dir, tmp_path, capsys
):
    """T1 stands in for a missing T1Gd: the case is segmented, one warning names the missing
    series, and no enhancing tumour is claimed (the no-enhancement rule, on for this case even
    though the model's own postprocessing has it off)."""
    full = tmp_path / "full.nii.gz"
    assert (
        main(["predict", str(case_dir), "-o", str(full), "--model", str(standins["regions"])]) == 0
    )
    with_et = check_output(full, case_dir)
    assert region_masks(with_et, "2021")["et"].sum() > 1000  # the model does claim ET here
    capsys.readouterr()

    partial = tmp_path / "no-t1gd"
    partial.mkdir()
    for channel in ("t1", "t2", "flair"):
        (partial / f"x_{channel}.nii.gz").symlink_to(next(case_dir.glob(f"*_{channel}.nii.gz")))
    out = tmp_path / "pred.nii.gz"
    rc = main(["predict", str(partial), "-o", str(out), "--model", str(standins["regions"]), "-q"])
    out_text, err = capsys.readouterr()
    assert rc == 0, err
    assert "[WT " in out_text
    warnings = [line for line in err.splitlines() if "warning" in line]
    assert len(warnings) == 1 and "T1Gd missing: T1 used in its place" in warnings[0]
    labels = check_output(out, case_dir)
    masks = region_masks(labels, "2021")
    assert masks["et"].sum() == 0 and masks["tc"].sum() > 0  # ET became NCR, the core stays


def test_the_summary_line_says_when_the_no_enhancement_rule_removed_et(
    standin, standins, case_dir, tmp_path, capsys
):
    out = tmp_path / "pred.nii.gz"
    model = str(standins["regions"])
    command = ["predict", str(case_dir), "-o", str(out), "--model", model, "-q"]
    assert main([*command, "--et-enhancement-min", "3"]) == 0  # no tumour enhances 3-fold
    line = capsys.readouterr().out
    assert "ET 0.0 mL]" in line and "(ET removed: no enhancement (T1Gd/T1 " in line
    assert " < 3.00; " in line and "mL became NCR)" in line
