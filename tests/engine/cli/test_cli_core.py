"""The ``napari-brats`` command line: info, evaluate, convert-labels, errors and exit codes."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from bratseg.cli import main as cli_main
from bratseg.io import load_label_map

CLI = [sys.executable, "-m", "bratseg.cli.main"]


def run_cli(*args: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*CLI, *map(str, args)],
        capture_output=True,
        encoding="utf-8",
        errors="replace",
        timeout=120,
        cwd=cwd,
    )


def run_here(capsys: pytest.CaptureFixture, *args: str | Path) -> subprocess.CompletedProcess:
    """Run the CLI in this process (faster than a subprocess; same code path after start-up)."""
    capsys.readouterr()
    try:
        code = cli_main.main([str(a) for a in args])
    except SystemExit as exc:  # argparse --help / usage errors
        code = exc.code if isinstance(exc.code, int) else 1
    out, err = capsys.readouterr()
    return subprocess.CompletedProcess(list(map(str, args)), code, out, err)


def assert_bad_input(proc: subprocess.CompletedProcess, *fragments: str) -> str:
    """Exit code 2, exactly one stderr line 'napari-brats: error: ...', no traceback."""
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("napari-brats: error: ")
    assert "Traceback" not in proc.stderr
    for fragment in fragments:
        assert fragment in lines[0]
    return lines[0]


@pytest.fixture(scope="module")
def seg_file(brats2018_case_dir: Path) -> Path:
    return brats2018_case_dir / f"{brats2018_case_dir.name}_seg.nii.gz"


@pytest.fixture(scope="module")
def met_pair(official_sample_dir: Path) -> tuple[Path, Path, dict]:
    """One official sample (pred, ref) with the official tool's metrics for it."""
    data = official_sample_dir / "sample_data"
    pred = data / "pred" / "00132-000.nii.gz"
    ref = data / "ref" / "BraTS-MET-00132-000-seg.nii.gz"
    metrics = json.loads((official_sample_dir / "sample_mets_metrics.json").read_text())
    official = next(m for m in metrics["metrics"] if m["subject_name"] == ref.name)
    return pred, ref, official


# ----------------------------------------------------------------------------- framework


def test_version_and_help_on_every_command(capsys: pytest.CaptureFixture) -> None:
    proc = run_cli("--version")
    assert proc.returncode == 0 and proc.stdout.strip().startswith("napari-brats ")
    proc = run_cli("--help")
    assert proc.returncode == 0
    for command in ("info", "evaluate", "convert-labels"):
        assert command in proc.stdout
    commands = [a.dest for a in cli_main.build_parser()._subparsers._group_actions]  # noqa: SLF001
    assert commands == ["command"]
    names = cli_main.build_parser()._subparsers._group_actions[0].choices  # noqa: SLF001
    for command in names:
        sub = run_here(capsys, command, "--help")
        assert sub.returncode == 0, (command, sub.stderr)
        assert sub.stdout.startswith(f"usage: napari-brats {command}")


def test_usage_errors_are_one_line(capsys: pytest.CaptureFixture) -> None:
    assert_bad_input(run_cli("info"), "required: CASE_DIR")
    assert_bad_input(run_here(capsys, "no-such-command"), "invalid choice")
    assert_bad_input(run_here(capsys, "evaluate", "a", "b", "--labels", "2019"), "invalid choice")


def test_engine_commands_import_strictly_and_plugin_commands_come_from_entry_points(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import importlib.metadata

    names = [m.__name__ for m in cli_main.command_modules()]
    assert names[: len(cli_main.COMMAND_MODULES)] == list(cli_main.COMMAND_MODULES)
    assert "napari_brats._view_command" in names  # the installed plugin's entry point
    assert not any(n.startswith("bratseg.") and "view" in n for n in names)
    monkeypatch.setattr(cli_main, "COMMAND_MODULES", ("bratseg.cli.info", "bratseg.cli.nope"))
    with pytest.raises(ModuleNotFoundError, match="bratseg.cli.nope"):
        cli_main.command_modules()  # an engine command missing is a broken install, not skipped
    (tmp_path / "brats_cli_broken.py").write_text("import brats_cli_dependency_that_is_absent\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    broken = importlib.metadata.EntryPoint(
        name="broken", value="brats_cli_broken", group=cli_main.COMMAND_ENTRY_POINTS
    )
    monkeypatch.setattr(cli_main, "COMMAND_MODULES", ("bratseg.cli.info",))
    monkeypatch.setattr(importlib.metadata, "entry_points", lambda group: [broken])
    with caplog.at_level("WARNING"):
        assert [m.__name__ for m in cli_main.command_modules()] == ["bratseg.cli.info"]
    assert "brats_cli_dependency_that_is_absent" in caplog.text and "'broken'" in caplog.text


def test_unexpected_errors_exit_1_without_traceback_unless_verbose(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    (tmp_path / "brats_cli_crash.py").write_text(
        textwrap.dedent("""
        def register(subparsers):
            parser = subparsers.add_parser("crash", help="always fails")
            parser.set_defaults(func=run)

        def run(args):
            raise RuntimeError("boom\\nsecond line")
    """)
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(cli_main, "COMMAND_MODULES", ("brats_cli_crash",))
    assert cli_main.main(["crash"]) == 1
    err = capsys.readouterr().err
    assert err.strip().splitlines() == [
        "napari-brats: error: unexpected RuntimeError: boom second line "
        "(run with --verbose for details)"
    ]
    assert cli_main.main(["crash", "-v"]) == 1
    err = capsys.readouterr().err
    assert "Traceback" in err and "boom" in err


# ----------------------------------------------------------------------------- info


def test_info_brats2018(brats2018_case_dir: Path) -> None:
    proc = run_cli("info", brats2018_case_dir)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    for text in (
        "240 x 240 x 155",
        "1 x 1 x 1 mm",
        "LPS",
        "T1Gd",
        "_t1ce.nii.gz",
        "BraTS 2021",
        "ET=4",
        "WT",
        "61.09",
    ):
        assert text in out, text
    # 4 without 3 could also be a 2024 post-treatment map: one warning line says how to decide
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "--labels 2024" in lines[0] and "_seg.nii.gz" in lines[0]
    quiet = run_cli("info", brats2018_case_dir, "--labels", "2021")
    assert quiet.returncode == 0 and quiet.stderr == ""


def test_info_json_brats2023(brats2023_case_dir: Path) -> None:
    proc = run_cli("info", brats2023_case_dir, "--json")
    assert proc.returncode == 0, proc.stderr
    info = json.loads(proc.stdout)
    assert info["shape"] == [240, 240, 155] and info["spacing_mm"] == [1.0, 1.0, 1.0]
    assert info["orientation"] == "LPS"
    assert info["files"]["t1"].endswith("-t1n.nii.gz")
    assert info["files"]["flair"].endswith("-t2f.nii.gz")
    seg = info["seg"]
    assert seg["convention"] == "2023" and seg["labels"]["et"] == 3
    vols = seg["volumes_ml"]
    assert set(vols) == {"ncr", "ed", "et", "tc", "wt"}
    assert vols["wt"] == pytest.approx(vols["ncr"] + vols["ed"] + vols["et"])
    assert vols["tc"] == pytest.approx(vols["ncr"] + vols["et"]) and vols["et"] > 0


def test_info_explicit_mapping_and_errors(brats2018_case_dir, tmp_path, capsys) -> None:
    name = brats2018_case_dir.name
    for key, odd in {
        "t1": "a.nii.gz",
        "t1ce": "b.nii.gz",
        "t2": "c.nii.gz",
        "flair": "X_fla_bet.nii.gz",
    }.items():
        (tmp_path / odd).symlink_to(brats2018_case_dir / f"{name}_{key}.nii.gz")
    proc = run_cli("info", tmp_path)
    assert_bad_input(proc, str(tmp_path), "missing T1 (t1)")
    proc = run_here(
        capsys,
        "info",
        tmp_path,
        "--json",
        "--map",
        "t1=a.nii.gz",
        "--map",
        "t1ce=b.nii.gz",
        "--map",
        "t2=c.nii.gz",
        "--map",
        "flair=X_fla_bet.nii.gz",
    )
    assert proc.returncode == 0, proc.stderr
    info = json.loads(proc.stdout)
    assert info["files"]["flair"].endswith("X_fla_bet.nii.gz") and info["seg"] is None
    assert_bad_input(
        run_here(capsys, "info", tmp_path, "--map", "flair"), "--map expects CHANNEL=FILE"
    )
    assert_bad_input(run_here(capsys, "info", tmp_path / "none"), "case folder not found")


# ----------------------------------------------------------------------------- evaluate


def test_evaluate_json_matches_official(met_pair) -> None:
    pred, ref, official = met_pair
    proc = run_cli("evaluate", pred, ref, "--json")
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)  # exactly one JSON object on stdout
    assert list(result) == ["wt", "tc", "et"]
    for region in ("wt", "tc", "et"):
        r = result[region]
        assert set(r) >= {
            "dice",
            "hd95",
            "sensitivity",
            "specificity",
            "volume_pred_ml",
            "volume_ref_ml",
            "hd95_penalty",
        }
        assert r["dice"] == pytest.approx(official[region]["global_bin_dsc"], abs=1e-6)
        assert r["hd95"] == pytest.approx(official[region]["global_bin_hd95"], abs=1e-3)
        assert r["volume_ref_ml"] == pytest.approx(
            official[region]["global_bin_volume_ref"] / 1000.0
        )


def test_evaluate_table_and_identity(seg_file: Path, capsys: pytest.CaptureFixture) -> None:
    proc = run_here(capsys, "evaluate", seg_file, seg_file)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    header = next(line for line in lines if line.startswith("Region"))
    for col in ("Dice", "HD95", "Sensitivity", "Specificity", "Pred mL", "Ref mL"):
        assert col in header
    rows = [line for line in lines if line[:2] in ("WT", "TC", "ET")]
    assert len(rows) == 3 and all(len(r) == len(rows[0]) for r in rows)  # aligned
    assert all(r.split()[3] == "1.0000" for r in rows)  # Dice column
    assert "61.09" in rows[0]


def test_evaluate_conventions(seg_file: Path, tmp_path: Path, capsys) -> None:
    out23 = tmp_path / "seg23.nii.gz"
    assert run_here(capsys, "convert-labels", seg_file, out23, "--to", "2023").returncode == 0
    # 2023 pred vs 2021 ref, both detected
    proc = run_here(capsys, "evaluate", out23, seg_file, "--json")
    assert proc.returncode == 0, proc.stderr
    assert all(v["dice"] == 1.0 for v in json.loads(proc.stdout).values())
    # forcing a convention that contradicts the values is a clear input error
    assert_bad_input(
        run_here(capsys, "evaluate", out23, seg_file, "--labels", "2021"),
        str(out23),
        "not valid in the BraTS 2021 convention",
    )
    proc = run_here(
        capsys,
        "evaluate",
        out23,
        seg_file,
        "--pred-labels",
        "2023",
        "--ref-labels",
        "2021",
        "--json",
    )
    assert proc.returncode == 0 and json.loads(proc.stdout)["et"]["dice"] == 1.0


def test_evaluate_errors_and_affine_warning(met_pair, seg_file, tmp_path, capsys) -> None:
    pred, ref, _ = met_pair
    other_ref = ref.parent / "BraTS-MET-00630-001-seg.nii.gz"
    assert_bad_input(
        run_cli("evaluate", pred, other_ref),
        str(pred),
        "(240, 240, 155)",
        "(256, 256, 106)",
        str(other_ref),
    )
    assert_bad_input(run_here(capsys, "evaluate", tmp_path / "none.nii.gz", ref), "file not found")
    text = tmp_path / "pred.nii.gz"
    text.write_text("not an image")
    assert_bad_input(run_here(capsys, "evaluate", text, ref), str(text), "not a gzip file")
    img = nib.load(seg_file)
    shifted = tmp_path / "shifted.nii"
    affine = img.affine.copy()
    affine[0, 3] += 2.0
    nib.save(nib.Nifti1Image(np.asanyarray(img.dataobj), affine, img.header), shifted)
    proc = run_cli("evaluate", shifted, seg_file, "--json", "--labels", "2021")
    assert proc.returncode == 0
    warning = proc.stderr.strip().splitlines()
    assert len(warning) == 1 and warning[0].startswith("napari-brats: warning: ")
    assert "affine differs" in warning[0] and "2" in warning[0]
    assert json.loads(proc.stdout)["wt"]["dice"] == 1.0


# ----------------------------------------------------------------------------- convert-labels


def test_convert_labels(seg_file: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "seg23.nii.gz"
    proc = run_cli("convert-labels", seg_file, out, "--to", "2023")
    assert proc.returncode == 0, proc.stderr
    assert "ET 4 -> 3" in proc.stdout and "21677 voxels changed" in proc.stdout
    converted = load_label_map(out)
    original = load_label_map(seg_file)
    np.testing.assert_array_equal(converted.data == 3, original.data == 4)
    assert set(np.unique(converted.data).tolist()) == {0, 1, 2, 3}
    np.testing.assert_array_equal(converted.affine, original.affine)
    assert nib.load(out).get_data_dtype() == np.uint8
    before = out.read_bytes()
    assert_bad_input(
        run_here(capsys, "convert-labels", seg_file, out, "--to", "2021"),
        str(out),
        "refusing to overwrite",
    )
    assert out.read_bytes() == before
    proc = run_here(capsys, "convert-labels", out, out, "--to", "2021", "--overwrite")
    assert proc.returncode == 0, proc.stderr
    np.testing.assert_array_equal(load_label_map(out).data, original.data)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["seg23.nii.gz"]


def test_convert_labels_bad_input_writes_nothing(seg_file, tmp_path, capsys) -> None:
    bad = tmp_path / "bad.nii.gz"
    raw = seg_file.read_bytes()
    bad.write_bytes(raw[: len(raw) // 3])
    assert_bad_input(
        run_cli("convert-labels", bad, tmp_path / "out.nii.gz", "--to", "2023"),
        str(bad),
        "truncated or corrupt",
    )
    assert_bad_input(
        run_here(
            capsys,
            "convert-labels",
            seg_file,
            tmp_path / "out.nii.gz",
            "--to",
            "2023",
            "--from",
            "2023",
        ),
        "not valid in the BraTS 2023 convention",
    )
    assert_bad_input(
        run_here(
            capsys, "convert-labels", seg_file, tmp_path / "no" / "out.nii.gz", "--to", "2023"
        ),
        "output folder does not exist",
    )
    assert_bad_input(
        run_here(capsys, "convert-labels", seg_file, tmp_path / "out.png", "--to", "2023"),
        "must end in .nii or .nii.gz",
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.nii.gz"]
