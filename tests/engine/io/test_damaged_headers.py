"""Damaged NIfTI headers, unreadable files and cases too large: one line naming the file, exit 2
(DEF-15, DEF-16). Real BraTS 2018 case copies whose headers are rewritten byte by byte (nibabel
itself refuses to write most of these headers)."""

from __future__ import annotations

import gzip
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

import bratseg
from bratseg.cli.main import main
from bratseg.errors import BratsInputError
from bratseg.io import load_case
from bratseg.io.nifti import MAX_VOLUME_VOXELS

CASE = "Brats18_2013_2_1"
#: The source tree of the ``bratseg`` under test (child processes run the same code).
SRC = Path(bratseg.__file__).resolve().parents[1]
REPO = Path(__file__).resolve().parents[3]


def _write_raw(path: Path, header: nib.Nifti1Header, data: bytes) -> None:
    """A ``.nii.gz`` holding exactly ``header``'s bytes and ``data`` (no repair by nibabel)."""
    header = header.copy()
    header["vox_offset"] = 352
    with gzip.open(path, "wb", compresslevel=1) as fh:
        fh.write(header.binaryblock + b"\0" * 4 + data)


def _damage(case: Path, edit: Callable[[nib.Nifti1Header], None], data: bytes | None = None):
    """Apply ``edit`` to the header of all four channels of ``case`` (the label map removed)."""
    (case / f"{CASE}_seg.nii.gz").unlink()
    for channel in ("t1", "t1ce", "t2", "flair"):
        path = case / f"{CASE}_{channel}.nii.gz"
        img = nib.load(path)
        header = img.header.copy()
        raw = data
        if raw is None:
            raw = np.asanyarray(img.dataobj).astype(header.get_data_dtype()).tobytes(order="F")
        edit(header)
        _write_raw(path, header, raw)


@pytest.fixture()
def case(brats2018_case_dir: Path, tmp_path: Path) -> Path:
    folder = tmp_path / CASE
    shutil.copytree(brats2018_case_dir, folder)
    return folder


def _nan_affine(h: nib.Nifti1Header) -> None:
    h["qform_code"], h["sform_code"] = 0, 1
    h["srow_x"][0] = np.nan


def _singular_affine(h: nib.Nifti1Header) -> None:
    h["qform_code"], h["sform_code"] = 0, 1
    for row in ("srow_x", "srow_y", "srow_z"):
        h[row][2] = 0.0  # the third voxel axis has no length


def _zero_voxel_size(h: nib.Nifti1Header) -> None:
    h["qform_code"], h["sform_code"] = 0, 0
    h["pixdim"][1:4] = 0.0


def _huge(h: nib.Nifti1Header) -> None:
    h.set_data_shape((1200, 1200, 1200))


@pytest.mark.parametrize(
    ("edit", "data", "fragment"),
    [
        (_nan_affine, None, "non-finite"),  # probes 1.20, 1.21
        (_singular_affine, None, "singular"),  # probes 1.18, 1.19
        (_zero_voxel_size, None, "voxel size (pixdim) is 0"),  # probe 1.17 (DEF-16)
        (_huge, b"\0" * 1024, "more than the limit"),  # probes 1.8, 1.9
    ],
    ids=["nan-affine", "singular-affine", "zero-voxel-size", "huge-shape"],
)
def test_damaged_geometry_is_one_line_naming_the_file(case, tmp_path, capsys, edit, data, fragment):
    _damage(case, edit, data)
    t1 = case / f"{CASE}_t1.nii.gz"
    with pytest.raises(BratsInputError, match=re.escape(fragment)) as info:
        load_case(case, load_seg=False)
    assert info.value.path == t1
    for command in (["info", str(case)], ["predict", str(case), "-o", str(tmp_path / "o.nii.gz")]):
        assert main(command) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and str(t1) in err and fragment in err, err
    assert not (tmp_path / "o.nii.gz").exists()


def test_the_size_limit_is_checked_before_any_allocation(case):
    """A NIfTI-1 maximum header (32767^3 int16, 64 TiB per channel) over 1 KB of data."""
    _damage(case, lambda h: h.set_data_shape((32767,) * 3), b"\0" * 1024)
    with pytest.raises(BratsInputError, match="more than the limit"):
        load_case(case, load_seg=False)
    assert 240 * 240 * 155 < MAX_VOLUME_VOXELS < 1200**3


def test_a_real_case_still_loads(brats2018_case_dir):
    loaded = load_case(brats2018_case_dir)
    assert loaded.shape == (240, 240, 155) and loaded.spacing == (1.0, 1.0, 1.0)


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX permissions")
def test_unreadable_file_is_one_line_naming_it(brats2018_case_dir, capsys):
    """Probe 1.39: a T1 without read permission (checked as an unprivileged user when root)."""
    folder = Path(tempfile.mkdtemp(prefix="bratseg-unreadable-"))
    try:
        folder.chmod(0o755)
        case = folder / CASE
        shutil.copytree(brats2018_case_dir, case)
        case.chmod(0o755)
        t1 = case / f"{CASE}_t1.nii.gz"
        assert main(["info", str(case)]) == 0  # imports everything "info" needs, as root
        capsys.readouterr()
        t1.chmod(0)
        if os.geteuid() == 0:  # root reads anything: drop to "nobody" for the check
            os.seteuid(65534)
        try:
            rc = main(["info", str(case)])
        finally:
            if os.getuid() == 0:
                os.seteuid(0)
        err = capsys.readouterr().err
        assert rc == 2, err
        assert err.count("\n") == 1 and str(t1) in err and "cannot read file" in err, err
    finally:
        shutil.rmtree(folder)


@pytest.mark.skipif(sys.platform != "linux", reason="address-space limit (RLIMIT_AS) of Linux")
def test_case_too_large_for_memory_is_a_clear_refusal(case, tmp_path):
    """Probe 7.2: four 800^3 series (8 GiB as float32) under a 3 GiB address-space limit."""
    _damage(case, lambda h: h.set_data_shape((800, 800, 800)), b"\0" * 1024)

    import resource

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (3 * 2**30, 3 * 2**30))

    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(SRC), str(REPO)])}
    proc = subprocess.run(
        [sys.executable, "-m", "bratseg.cli.main", "info", str(case)],
        env=env,
        capture_output=True,
        encoding="utf-8",
        errors="replace",
        preexec_fn=limit,
        timeout=300,
    )
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "case too large for this machine's memory" in lines[0], lines
    assert str(case) in lines[0]


def test_bad_stored_postprocessing_names_the_checkpoint(
    brats2018_case_dir, standin, tmp_path, capsys
):
    """Probe 2.14: a checkpoint whose stored postprocessing holds a non-number."""
    model = standin.save_standin(
        tmp_path / "badpp.pt", postprocess={**standin.POSTPROCESS, "wt_threshold": "lots"}
    )
    out = tmp_path / "o.nii.gz"
    rc = main(["predict", str(brats2018_case_dir), "-o", str(out), "--model", str(model), "-q"])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and str(model) in err and "wt_threshold" in err, err
    assert not out.exists()
