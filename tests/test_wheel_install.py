"""A wheel built from this checkout, installed into a fresh virtual environment away from the
checkout, carries its bundled weights and the sample case: the sample is written, opened and
segmented by the installed engine (no editable install, no ../shared data)."""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


def test_the_installed_wheel_segments_its_own_sample(tmp_path: Path) -> None:
    setuptools = pytest.importorskip("setuptools", reason="setuptools builds the wheel")
    if int(setuptools.__version__.split(".")[0]) < 77:
        pytest.skip(
            f"setuptools {setuptools.__version__} < 77 cannot build the SPDX licence metadata"
        )
    dist = tmp_path / "dist"
    built = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(dist),
            str(REPO),
        ],
        capture_output=True,
        encoding="utf-8",
        errors="replace",
        timeout=600,
    )
    assert built.returncode == 0, built.stderr[-2000:]
    [wheel] = list(dist.glob("napari_brats-*.whl"))
    venv = tmp_path / "venv"
    subprocess.run(
        [sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120
    )
    python = venv / "bin" / "python"
    # dependencies (torch, numpy, nibabel, ...) from this environment's site-packages on the path;
    # a path entry does not run .pth files, so the checkout's editable install stays invisible
    deps = sysconfig.get_paths()["purelib"]
    target = (
        venv / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}" / "site-packages"
    )
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--no-deps",
            "-q",
            "--target",
            str(target),
            str(wheel),
        ],
        check=True,
        timeout=300,
    )
    work = tmp_path / "elsewhere"
    work.mkdir()
    env = {
        "PATH": os.environ.get("PATH", ""),
        "PYTHONPATH": deps,
        "HOME": str(tmp_path / "home"),
        "OMP_NUM_THREADS": "2",
        "PYTHONWARNINGS": "ignore",
    }
    script = (
        "import bratseg, pathlib, sys;"
        "assert 'site-packages' in bratseg.__file__ and str(pathlib.Path.cwd()) not in bratseg.__file__, bratseg.__file__;"
        "from bratseg.cli.main import main;"
        "from bratseg.sample import write_sample;"
        "case = write_sample('cases');"
        "sys.exit(main(['predict', str(case), '-o', 'pred.nii.gz', '--threads', '2', '-q']))"
    )
    run = subprocess.run(
        [str(python), "-c", script],
        cwd=work,
        env=env,
        capture_output=True,
        encoding="utf-8",
        errors="replace",
        timeout=600,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    import nibabel as nib
    import numpy as np

    pred = np.asarray(nib.load(work / "pred.nii.gz").dataobj)
    seg = np.asarray(nib.load(next((work / "cases").glob("*/*_seg.nii.gz"))).dataobj)
    wt_pred, wt_ref = pred > 0, seg > 0
    dice = 2 * (wt_pred & wt_ref).sum() / (wt_pred.sum() + wt_ref.sum())
    assert dice > 0.8  # the bundled default finds the tumour (it trained on this case)
