"""Hostile-input probes of the newer commands: prepare, predict --prepare/--native, the input
check, export-dicom (and worklist --export-dicom), compare, and predict --et-enhancement-min.

Each probe runs the CLI in a subprocess on copies of real data (``../shared/data``) in a temporary
folder and records: exit code, first line of stderr, and what changed on disk (new, changed or
removed files anywhere under the temporary folder, hidden temporaries included). A probe that
expects a refusal (exit 2) is OK only when nothing changed; one that expects success is OK on
exit 0 and its own check. The table is printed as Markdown (``--out FILE`` also writes it).

Run from the repository root::

    python tools/probe_new_features.py [--only ID,ID] [--out table.md]

(``PROBE_SRC=/other/checkout/src`` probes another source tree, e.g. the code before a fix.)

It needs the shared data and the ``dicom``/``prepare`` extras (SimpleITK, highdicom, deepbet); a
full run takes a few minutes on 2 CPU cores (two probes run ``prepare`` to its writing step).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
CASE_SRC = DATA / "brats2018" / "Brats18_2013_2_1"
RAW_SRC = DATA / "raw-clinical" / "TCGA-FG-6692" / "native"
CID = "Brats18_2013_2_1"
#: Source tree under test (e.g. another checkout's ``src`` to compare before/after a fix).
SRC = Path(os.environ.get("PROBE_SRC", ROOT / "src"))
MEMORY_LIMIT = 10 * 2**30  # address-space limit of every probe: a runaway allocation fails


@dataclass
class Probe:
    """One hostile input: CLI arguments (``{T}`` = the temporary folder) and what must happen."""

    pid: str
    title: str
    argv: list[str]
    expect: int  # 0 success, 2 refusal (one line, nothing written), 143 SIGTERM (nothing left)
    check: Callable[[Path, subprocess.CompletedProcess], str | None] | None = None
    term_when: Callable[[Path], bool] | None = None  # send SIGTERM once this holds
    timeout: float = 400.0
    extra_env: dict[str, str] = field(default_factory=dict)


# ----------------------------------------------------------------------------------- fixtures
def _nib():
    import nibabel as nib

    return nib


def _raw_file(folder: Path, ending: str) -> Path:
    return next(p for p in folder.iterdir() if p.name.endswith(ending))


def _rewrite(path: Path, edit: Callable) -> None:
    """Load a NIfTI file, let ``edit(img)`` return a new image, save it in place."""
    nib = _nib()
    img = nib.load(str(path))
    out = edit(img)
    path.unlink()
    nib.save(out, str(path))


def make_fixtures(t: Path) -> None:
    """Case copies, raw-series variants, label-map variants and DICOM series under ``t``."""
    import numpy as np

    nib = _nib()
    shutil.copytree(CASE_SRC, t / "case")
    shutil.copytree(CASE_SRC, t / "fu")
    shutil.copytree(RAW_SRC, t / "raw")
    (t / "out").mkdir()
    (t / "tmp").mkdir()
    (t / "empty").mkdir()
    (t / "out" / "exists").mkdir()
    (t / "out" / "exists" / "keep.txt").write_text("keep\n")
    (t / "out" / "exists.pdf").write_text("old pdf\n")
    shutil.copy(t / "case" / f"{CID}_seg.nii.gz", t / "out" / "exists.nii.gz")
    t1_end, t2_end, fl_end = "_t1.nii.gz", "_t2.nii.gz", "_fla.nii.gz"

    def raw_variant(name: str, ending: str, edit: Callable | None) -> Path:
        folder = t / name
        shutil.copytree(RAW_SRC, folder)
        target = _raw_file(folder, ending)
        if edit is not None:
            _rewrite(target, edit)
        return target

    (t / "raw_named").mkdir()
    for ending, key in ((t1_end, "t1"), ("_t1c.nii.gz", "t1ce"), (t2_end, "t2"), (fl_end, "flair")):
        shutil.copy(_raw_file(t / "raw", ending), t / "raw_named" / f"TCGA_{key}.nii.gz")
    (t / "dataset").mkdir()
    shutil.copytree(CASE_SRC, t / "dataset" / CID)
    raw_variant("raw_dup", t2_end, None)
    shutil.copy(_raw_file(t / "raw_dup", t2_end), t / "raw_dup" / "second_T2_AX_repeat_t2.nii.gz")
    missing = raw_variant("raw_missing", fl_end, None)
    missing.unlink()

    def patch_header(path: Path, edit: Callable) -> None:
        """Edit the header bytes of a .nii.gz in place (nibabel's save would repair them)."""
        import gzip

        raw = gzip.decompress(path.read_bytes())
        hdr = nib.Nifti1Header.from_fileobj(__import__("io").BytesIO(raw[:348]))
        edit(hdr)
        path.write_bytes(gzip.compress(hdr.binaryblock + raw[348:]))

    def nan_affine(hdr) -> None:
        hdr["qform_code"] = 0
        hdr["sform_code"] = 1
        hdr["srow_x"][0] = np.nan

    def zero_pixdim(hdr) -> None:
        hdr["qform_code"] = 0
        hdr["sform_code"] = 0
        hdr["pixdim"][1:4] = 0.0

    patch_header(raw_variant("raw_nanaff", t1_end, None), nan_affine)
    patch_header(raw_variant("raw_zero", t1_end, None), zero_pixdim)

    huge = raw_variant("raw_huge", t1_end, None)
    hdr = nib.Nifti1Header()
    hdr.set_data_shape((32767, 32767, 32767))
    hdr.set_data_dtype(np.int16)
    huge.unlink()
    with open(huge.with_suffix(""), "wb") as fh:  # plain .nii named .nii: header + 1 KB
        fh.write(hdr.binaryblock + b"\0" * 4 + b"\0" * 1024)
    raw_variant(
        "raw_4d",
        t1_end,
        lambda img: nib.Nifti1Image(np.stack([np.asarray(img.dataobj)] * 2, -1), img.affine),
    )
    empty = raw_variant("raw_zerobyte", fl_end, None)
    empty.write_bytes(b"")

    seg = nib.load(str(t / "case" / f"{CID}_seg.nii.gz"))
    small = nib.Nifti1Image(np.zeros((100, 100, 100), np.uint8), np.eye(4))
    nib.save(small, str(t / "seg_grid.nii.gz"))
    bad = np.asarray(seg.dataobj).astype(np.uint8)
    bad[bad == 4] = 7
    nib.save(nib.Nifti1Image(bad, seg.affine), str(t / "seg7.nii.gz"))
    (t / "prov_bad.json").write_text("{not json")

    make_dicom_fixtures(t)


def make_dicom_fixtures(t: Path) -> None:
    """A DICOM case (four series folders made from a real T1Gd export) and broken variants."""
    import pydicom
    from pydicom.uid import generate_uid

    env = _env(t)
    subprocess.run(
        [
            sys.executable,
            "-m",
            "bratseg.cli.main",
            "export-dicom",
            str(t / "case"),
            "-o",
            str(t / "seed"),
        ],
        check=True,
        env=env,
        capture_output=True,
    )
    source = sorted((t / "seed" / "SOURCE_T1GD").glob("*.dcm"))

    def series(folder: Path, description: str, edit: Callable | None = None) -> None:
        folder.mkdir(parents=True)
        uid = generate_uid()
        for i, path in enumerate(source):
            ds = pydicom.dcmread(path)
            ds.SeriesDescription = description
            ds.SeriesInstanceUID = uid
            ds.SOPInstanceUID = generate_uid()
            if edit is not None:
                edit(ds, i)
            ds.save_as(folder / path.name)

    def study(name: str, edit: Callable | None = None, which: str = "t1ce") -> Path:
        root = t / name
        for key, desc in (
            ("t1", "T1 AX SE"),
            ("t1ce", "T1 AX POST GAD"),
            ("t2", "T2 AX TSE"),
            ("flair", "FLAIR AX"),
        ):
            series(root / key, desc, edit if key == which else None)
        return root

    study("dcase")
    shutil.copy(t / "case" / f"{CID}_seg.nii.gz", t / "dcase" / f"{CID}_seg.nii.gz")
    study("dnofor", lambda ds, i: delattr(ds, "FrameOfReferenceUID"))
    shutil.copy(t / "case" / f"{CID}_seg.nii.gz", t / "dnofor" / f"{CID}_seg.nii.gz")

    def stretch(ds, i):
        x, y, z = (float(v) for v in ds.ImagePositionPatient)
        ds.ImagePositionPatient = [x, y, z * 1000.0]
        ds.SliceThickness = 1000.0

    study("dspacing", stretch)
    shutil.copy(t / "case" / f"{CID}_seg.nii.gz", t / "dspacing" / f"{CID}_seg.nii.gz")
    broken = study("dbroken")
    victim = sorted((broken / "t1ce").iterdir())[70]
    victim.write_bytes(victim.read_bytes()[:2000])
    mixed = study("dmixed")
    for path in (mixed / "t2").iterdir():
        shutil.copy(path, mixed / "t1ce" / f"t2_{path.name}")


# ------------------------------------------------------------------------------------- checks
def file_contains_no_newline_user_text(t: Path, res) -> str | None:
    """The exported objects hold the reviewer/status text without line breaks."""
    import pydicom

    out = t / "out" / "e_text"
    if not out.is_dir():
        return "no export folder"
    for name in ("SEG.dcm", "RTSTRUCT.dcm", "SUMMARY.dcm"):
        ds = pydicom.dcmread(out / name)
        for elem in ds.iterall():
            if isinstance(elem.value, (str, pydicom.valuerep.PersonName)):
                text = str(elem.value)
                if "Dr" in text and ("\n" in text or "\r" in text):
                    return f"{name} {elem.keyword} holds a line break: {text!r}"
    if any("\n" in line for line in res.stdout.splitlines()):
        return "stdout line broken"
    return None


def case_still_reads(folder: str) -> Callable:
    def check(t: Path, res) -> str | None:
        run = subprocess.run(
            [sys.executable, "-m", "bratseg.cli.main", "info", str(t / folder)],
            env=_env(t),
            capture_output=True,
            encoding="utf-8",
            errors="replace",
        )
        return None if run.returncode == 0 else f"afterwards `info {folder}`: {_first(run.stderr)}"

    return check


# ------------------------------------------------------------------------------------- probes
def probes() -> list[Probe]:
    case, fu = "{T}/case", "{T}/fu"
    seg = f"{case}/{CID}_seg.nii.gz"
    t1 = f"{case}/{CID}_t1.nii.gz"
    model = ["--model", "nnunet-small-cv44-f0"]

    def exists(pattern: str) -> Callable[[Path], bool]:
        return lambda t: any(t.glob(pattern))

    return [
        # --- prepare: the input folder
        Probe(
            "P1", "prepare: input folder missing", ["prepare", "{T}/nope", "-o", "{T}/out/p1"], 2
        ),
        Probe("P2", "prepare: input is a file", ["prepare", t1, "-o", "{T}/out/p2"], 2),
        Probe("P3", "prepare: empty folder", ["prepare", "{T}/empty", "-o", "{T}/out/p3"], 2),
        Probe(
            "P4",
            "prepare: FLAIR series missing",
            ["prepare", "{T}/raw_missing", "-o", "{T}/out/p4"],
            2,
        ),
        Probe(
            "P5",
            "prepare: two T2 series (ambiguous)",
            ["prepare", "{T}/raw_dup", "-o", "{T}/out/p5"],
            2,
        ),
        Probe(
            "P6",
            "prepare: --map t1= a missing file",
            ["prepare", "{T}/raw", "--map", "t1=nope.nii.gz", "-o", "{T}/out/p6"],
            2,
        ),
        Probe(
            "P7",
            "prepare: --map t1=../../../../etc/passwd (traversal, not NIfTI)",
            ["prepare", "{T}/raw", "--map", "t1=../../../../../../etc/passwd", "-o", "{T}/out/p7"],
            2,
        ),
        Probe(
            "P8",
            "prepare: --map with an unknown channel",
            ["prepare", "{T}/raw", "--map", "t3=x.nii.gz", "-o", "{T}/out/p8"],
            2,
        ),
        Probe(
            "P9",
            "prepare: NaN in the T1 affine",
            ["prepare", "{T}/raw_nanaff", "-o", "{T}/out/p9"],
            2,
        ),
        Probe(
            "P10",
            "prepare: zero pixdim, no qform/sform",
            ["prepare", "{T}/raw_zero", "-o", "{T}/out/p10"],
            2,
        ),
        Probe(
            "P11",
            "prepare: T1 header declares 32767^3 (1 KB of data)",
            ["prepare", "{T}/raw_huge", "-o", "{T}/out/p11"],
            2,
        ),
        Probe(
            "P12", "prepare: 4-D T1 (2 volumes)", ["prepare", "{T}/raw_4d", "-o", "{T}/out/p12"], 2
        ),
        Probe(
            "P13",
            "prepare: zero-byte FLAIR",
            ["prepare", "{T}/raw_zerobyte", "-o", "{T}/out/p13"],
            2,
        ),
        Probe(
            "P14",
            "prepare: DICOM study, T1Gd folder mixes two series",
            ["prepare", "{T}/dmixed", "-o", "{T}/out/p14"],
            2,
        ),
        Probe(
            "P15",
            "prepare: DICOM study, one T1Gd slice truncated",
            ["prepare", "{T}/dbroken", "-o", "{T}/out/p15"],
            2,
        ),
        Probe(
            "P16",
            "prepare: DICOM study, T1Gd slices 1000 mm apart",
            ["prepare", "{T}/dspacing", "--no-n4", "-o", "{T}/out/p16"],
            2,
        ),
        # --- prepare: the output folder
        Probe(
            "P17",
            "prepare: -o an existing non-empty folder",
            ["prepare", "{T}/raw", "-o", "{T}/out/exists"],
            2,
        ),
        Probe(
            "P18",
            "prepare: -o parent folder missing",
            ["prepare", "{T}/raw", "-o", "{T}/out/no/p18"],
            2,
        ),
        Probe(
            "P19", "prepare: -o the input folder itself", ["prepare", "{T}/raw", "-o", "{T}/raw"], 2
        ),
        Probe(
            "P20",
            "prepare: -o a file of the input (the T1 via --map)",
            ["prepare", "{T}/raw", "--map", f"t1={t1}", "-o", t1],
            2,
        ),
        Probe(
            "P21",
            "prepare: -o CASE/x_flair.nii.gz (a channel name inside a case folder)",
            ["prepare", "{T}/raw_missing", "-o", f"{case}/x_flair.nii.gz"],
            2,
        ),
        Probe(
            "P22",
            "prepare: stale '.p22.<deadpid>-*' folder of a killed run beside -o",
            ["prepare", "{T}/raw_missing", "-o", "{T}/out/p22"],
            2,
            check=stale_removed("P22"),
        ),
        Probe(
            "P23",
            "prepare: SIGTERM 6 s in (registration)",
            ["prepare", "{T}/raw", "--no-n4", "-q", "-o", "{T}/out/p23"],
            143,
            term_when=lambda t: False,
            timeout=6,
        ),
        Probe(
            "P24",
            "prepare: SIGTERM while the case folder is written",
            ["prepare", "{T}/raw", "--no-n4", "-q", "-o", "{T}/out/p24"],
            143,
            term_when=exists("out/.p24.*"),
        ),
        # --- predict --prepare / --native / input check / ET rule
        Probe(
            "R1",
            "predict --native on a case not written by prepare",
            ["predict", case, "-o", "{T}/out/r1.nii.gz", "--native", *model],
            2,
        ),
        Probe(
            "R2",
            "predict --prepare with --probabilities",
            [
                "predict",
                "{T}/raw",
                "--prepare",
                "-o",
                "{T}/out/r2.nii.gz",
                "--probabilities",
                "{T}/out/r2p.nii.gz",
            ],
            2,
        ),
        Probe(
            "R3",
            "predict --prepare -o the raw T1 itself --overwrite",
            [
                "predict",
                "{T}/raw",
                "--prepare",
                "--overwrite",
                "-o",
                "{T}/raw/T1_AX_OtherEXampleTCIA_TCGA-FG-6692_Si_TCGA-FG-6692_T1_AX_SE_10_se2d1_t1.nii.gz",
            ],
            2,
        ),
        Probe(
            "R4",
            "predict --prepare -o an existing file (no --overwrite)",
            ["predict", "{T}/raw", "--prepare", "-o", "{T}/out/exists.nii.gz"],
            2,
        ),
        Probe(
            "R5",
            "predict --prepare on a missing folder",
            ["predict", "{T}/nope", "--prepare", "-o", "{T}/out/r5.nii.gz"],
            2,
        ),
        Probe(
            "R6",
            "predict raw (skull, 5.5 mm slices; BraTS names, --align resample), no --prepare",
            ["predict", "{T}/raw_named", "--align", "resample", "-o", "{T}/out/r6.nii.gz", *model],
            2,
        ),
        Probe(
            "R12",
            "predict a folder of cases with --native (was silently ignored)",
            ["predict", "{T}/dataset", "--native", "-o", "{T}/out/r12", *model],
            2,
        ),
        Probe(
            "R7",
            "predict --et-enhancement-min -1",
            ["predict", case, "-o", "{T}/out/r7.nii.gz", "--et-enhancement-min", "-1", *model],
            2,
        ),
        Probe(
            "R8",
            "predict --et-enhancement-min nan",
            ["predict", case, "-o", "{T}/out/r8.nii.gz", "--et-enhancement-min", "nan", *model],
            2,
        ),
        Probe(
            "R9",
            "predict --et-enhancement-min inf",
            ["predict", case, "-o", "{T}/out/r9.nii.gz", "--et-enhancement-min", "inf", *model],
            2,
        ),
        Probe(
            "R10",
            "predict --et-enhancement-min abc",
            ["predict", case, "-o", "{T}/out/r10.nii.gz", "--et-enhancement-min", "abc", *model],
            2,
        ),
        Probe(
            "R11",
            "predict --prepare: SIGTERM 6 s in (temporary case folder)",
            ["predict", "{T}/raw", "--prepare", "-q", "-o", "{T}/out/r11.nii.gz"],
            143,
            term_when=lambda t: False,
            timeout=6,
        ),
        # --- export-dicom
        Probe(
            "E1",
            "export-dicom: -o an existing folder",
            ["export-dicom", case, "-o", "{T}/out/exists"],
            2,
        ),
        Probe(
            "E2", "export-dicom: -o the case folder itself", ["export-dicom", case, "-o", case], 2
        ),
        Probe(
            "E3",
            "export-dicom: -o parent folder missing",
            ["export-dicom", case, "-o", "{T}/out/no/e3"],
            2,
        ),
        Probe(
            "E4",
            "export-dicom: -o CASE/new_seg.nii.gz (a folder: case discovery reads files only)",
            ["export-dicom", case, "-o", f"{case}/new_seg.nii.gz"],
            0,
            check=case_still_reads("case"),
        ),
        Probe(
            "E5",
            "export-dicom: DICOM case, -o a folder inside that case (the case still reads)",
            ["export-dicom", "{T}/dcase", "-o", "{T}/dcase/export"],
            0,
            check=case_still_reads("dcase"),
        ),
        Probe(
            "E6",
            "export-dicom: --labels on another grid (100^3)",
            ["export-dicom", case, "--labels", "{T}/seg_grid.nii.gz", "-o", "{T}/out/e6"],
            2,
        ),
        Probe(
            "E7",
            "export-dicom: --labels with value 7",
            ["export-dicom", case, "--labels", "{T}/seg7.nii.gz", "-o", "{T}/out/e7"],
            2,
        ),
        Probe(
            "E8",
            "export-dicom: case not BraTS-ready (raw series on own grids)",
            ["export-dicom", "{T}/raw", "-o", "{T}/out/e8"],
            2,
        ),
        Probe(
            "E9",
            "export-dicom: case without a label map",
            ["export-dicom", "{T}/raw_dup", "-o", "{T}/out/e9"],
            2,
        ),
        Probe(
            "E10",
            "export-dicom: --provenance not JSON",
            ["export-dicom", case, "--provenance", "{T}/prov_bad.json", "-o", "{T}/out/e10"],
            2,
        ),
        Probe(
            "E11",
            "export-dicom: --provenance /etc/passwd",
            ["export-dicom", case, "--provenance", "/etc/passwd", "-o", "{T}/out/e11"],
            2,
        ),
        Probe(
            "E12",
            "export-dicom: --reviewer/--status with newlines, $...$ and ^",
            [
                "export-dicom",
                case,
                "-o",
                "{T}/out/e_text",
                "--reviewer",
                'Dr "x";\nrm -rf / $\\frac{$',
                "--status",
                "cost $5 and $6^{\napproved",
            ],
            0,
            check=file_contains_no_newline_user_text,
        ),
        Probe(
            "E13",
            "export-dicom: DICOM case without FrameOfReferenceUID",
            ["export-dicom", "{T}/dnofor", "-o", "{T}/out/e13"],
            2,
        ),
        Probe(
            "E14",
            "export-dicom: DICOM case with slices 1000 mm apart",
            ["export-dicom", "{T}/dspacing", "-o", "{T}/out/e14"],
            2,
        ),
        Probe(
            "E15",
            "export-dicom: DICOM case with a truncated slice",
            ["export-dicom", "{T}/dbroken", "-o", "{T}/out/e15"],
            2,
        ),
        Probe(
            "E16",
            "export-dicom: DICOM case whose T1Gd folder mixes two series",
            ["export-dicom", "{T}/dmixed", "-o", "{T}/out/e16"],
            2,
        ),
        Probe(
            "E17",
            "export-dicom: stale '.e17.partial-<deadpid>' of a killed run",
            ["export-dicom", case, "-o", "{T}/out/e17"],
            0,
            check=stale_removed("E17"),
        ),
        Probe(
            "E18",
            "export-dicom: SIGTERM while writing",
            ["export-dicom", case, "-o", "{T}/out/e18"],
            143,
            term_when=exists("out/.e18.partial-*/OVERLAY"),
        ),
        Probe(
            "E19",
            "worklist --export-dicom DIR (a file) with no approved case: nothing to do, nothing written",
            ["worklist", "{T}/empty", "--export-dicom", t1],
            0,
            check=lambda t, r: None if r.stdout.count("\n") <= 3 else "unexpected output",
        ),
        Probe(
            "E20",
            "export-dicom: saved-session path that does not exist",
            ["export-dicom", "{T}/nope/session-x", "-o", "{T}/out/e20"],
            2,
        ),
        # --- compare
        Probe(
            "C1",
            "compare --pdf = the baseline T1, --overwrite",
            ["compare", case, fu, "--pdf", t1, "--overwrite"],
            2,
        ),
        Probe(
            "C2",
            "compare --registered = the baseline seg, --overwrite",
            ["compare", case, fu, "--registered", seg, "--overwrite"],
            2,
        ),
        Probe(
            "C3",
            "compare --registered = the follow-up's own seg, --overwrite",
            ["compare", case, fu, "--registered", f"{fu}/{CID}_seg.nii.gz", "--overwrite"],
            2,
        ),
        Probe(
            "C4",
            "compare --registered CASE/pred_flair.nii.gz (channel name in a case)",
            ["compare", case, fu, "--registered", f"{case}/pred_flair.nii.gz"],
            2,
        ),
        Probe(
            "C5",
            "compare --pdf an existing file (no --overwrite)",
            ["compare", case, fu, "--pdf", "{T}/out/exists.pdf"],
            2,
        ),
        Probe(
            "C6",
            "compare --registered an existing file (no --overwrite)",
            ["compare", case, fu, "--registered", "{T}/out/exists.nii.gz"],
            2,
        ),
        Probe(
            "C7",
            "compare --no-register with --pdf",
            ["compare", case, fu, "--no-register", "--pdf", "{T}/out/c7.pdf"],
            2,
        ),
        Probe(
            "C8",
            "compare: follow-up without a label map",
            ["compare", case, "{T}/raw_dup", "--no-register"],
            2,
        ),
        Probe(
            "C9",
            "compare: follow-up labels on another grid",
            ["compare", case, fu, "--followup-labels", "{T}/seg_grid.nii.gz", "--no-register"],
            2,
        ),
        Probe(
            "C10",
            "compare: follow-up labels with value 7",
            ["compare", case, fu, "--followup-labels", "{T}/seg7.nii.gz", "--no-register"],
            2,
        ),
        Probe(
            "C11",
            "compare: follow-up not BraTS-ready (raw series)",
            ["compare", case, "{T}/raw", "--no-register"],
            2,
        ),
        Probe(
            "C12",
            "compare --pdf into a missing folder",
            ["compare", case, fu, "--pdf", "{T}/out/no/c12.pdf"],
            2,
        ),
        Probe(
            "C13",
            "compare --registered with a non-NIfTI name",
            ["compare", case, fu, "--registered", "{T}/out/c13.txt"],
            2,
        ),
        Probe(
            "C14",
            "compare: SIGTERM during registration (--pdf)",
            ["compare", case, fu, "--pdf", "{T}/out/c14.pdf"],
            143,
            term_when=lambda t: False,
            timeout=8,
        ),
    ]


# ------------------------------------------------------------------------------------- runner
def _env(t: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(SRC), str(SRC.parent), env.get("PYTHONPATH", "")])
    env["BRATSEG_HOME"] = str(t / "home")
    env["TMPDIR"] = str(t / "tmp")
    env.setdefault("OMP_NUM_THREADS", "2")
    return env


def _first(text: str) -> str:
    lines = [line for line in text.splitlines() if line.strip()]
    errors = [line for line in lines if "error:" in line]
    return (errors or lines or [""])[0][:200]


def _limit_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))


def snapshot(t: Path) -> dict[str, tuple[int, int]]:
    """Every path under ``t`` (hidden included) with its size and mtime."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(t):
        for name in dirnames + filenames:
            path = os.path.join(dirpath, name)
            try:
                st = os.lstat(path)
            except OSError:
                continue
            is_dir = stat.S_ISDIR(st.st_mode)
            out[os.path.relpath(path, t)] = (
                0 if is_dir else st.st_size,
                0 if is_dir else st.st_mtime_ns,
            )
    return out


def diff(before: dict, after: dict) -> list[str]:
    ignored = ("home", "tmp/torchinductor_")  # BRATSEG_HOME; torch's own cache under TMPDIR
    new = sorted(p for p in after if p not in before and not p.startswith(ignored))
    gone = sorted(p for p in before if p not in after)
    changed = sorted(p for p in after if p in before and after[p] != before[p])
    out = [f"+{p}" for p in new] + [f"-{p}" for p in gone] + [f"~{p}" for p in changed]
    return out


#: Leftovers of a killed earlier run planted before a probe (as the code of that time names them:
#: prepare's hidden ``.<name>.<pid>-<random>``, export-dicom's ``.<name>.partial-<pid>``).
PLANTED = {"P22": "out/.p22.99999999-deadbeef", "E17": "out/.e17.partial-99999999"}


def setup_probe(t: Path, probe: Probe) -> None:
    """Per-probe state: a stale leftover of a 'killed' earlier run, two hours old."""
    if probe.pid in PLANTED:
        stale = t / PLANTED[probe.pid]
        stale.mkdir()
        (stale / "SEG.dcm").write_bytes(b"partial")
        old = time.time() - 7200
        os.utime(stale, (old, old))


def stale_removed(pid: str) -> Callable:
    """Check: the leftover planted for probe ``pid`` is gone after the run."""

    def check(t: Path, res) -> str | None:
        return f"the stale {PLANTED[pid]} is still there" if (t / PLANTED[pid]).exists() else None

    return check


def run_probe(t: Path, probe: Probe) -> dict:
    setup_probe(t, probe)
    argv = [a.replace("{T}", str(t)) for a in probe.argv]
    before = snapshot(t)
    cmd = [sys.executable, "-m", "bratseg.cli.main", *argv]
    start = time.time()
    if probe.term_when is None:
        try:
            res = subprocess.run(
                cmd,
                env=_env(t),
                capture_output=True,
                encoding="utf-8",
                errors="replace",
                timeout=probe.timeout,
                preexec_fn=_limit_memory,
                cwd=t,
            )
        except subprocess.TimeoutExpired:
            res = subprocess.CompletedProcess(cmd, -1, "", "timed out")
    else:
        proc = subprocess.Popen(
            cmd,
            env=_env(t),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            encoding="utf-8",
            errors="replace",
            preexec_fn=_limit_memory,
            cwd=t,
        )
        while proc.poll() is None and time.time() - start < probe.timeout:
            if probe.term_when(t):
                break
            time.sleep(0.02)
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=120)
        res = subprocess.CompletedProcess(cmd, proc.returncode, out, err)
    seconds = time.time() - start
    planted = PLANTED.get(probe.pid)
    changes = [c for c in diff(before, snapshot(t)) if not (planted and c[1:].startswith(planted))]
    problems = []
    rc = res.returncode
    if probe.expect == 143:
        if rc not in (143, 2, 0):
            problems.append(f"rc {rc}")
        if rc == 143 and changes:
            problems.append("left behind")
    elif rc != probe.expect:
        problems.append(f"rc {rc}, expected {probe.expect}")
    if probe.expect == 2 and changes:
        problems.append("wrote or changed files")
    if probe.check is not None:
        note = probe.check(t, res)
        if note:
            problems.append(note)
    return {
        "id": probe.pid,
        "probe": probe.title,
        "command": "napari-brats " + " ".join(a.replace(str(t), "$T") for a in argv),
        "expected": {
            0: "success",
            2: "exit 2, one line, nothing written",
            143: "stops (143), nothing left",
        }[probe.expect],
        "rc": rc,
        "stderr": _first(res.stderr).replace(str(t), "$T"),
        "left": [c.replace(str(t), "$T") for c in changes[:4]]
        + (["..."] if len(changes) > 4 else []),
        "verdict": "OK" if not problems else "DEFECT: " + "; ".join(problems),
        "seconds": round(seconds, 1),
    }


def table(rows: list[dict]) -> str:
    lines = [
        "| # | probe | rc | stderr (first error line) | left on disk | verdict |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        stderr = r["stderr"].replace("|", "\\|").replace("napari-brats: error: ", "")
        left = ", ".join(r["left"]) or "nothing"
        lines.append(
            f"| {r['id']} | {r['probe']} | {r['rc']} | `{stderr}` | {left} | {r['verdict']} |"
        )
    ok = sum(r["verdict"] == "OK" for r in rows)
    lines.append("")
    lines.append(f"**{len(rows)} probes, {ok} OK, {len(rows) - ok} DEFECT.**")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", help="comma-separated probe ids")
    parser.add_argument("--out", help="also write the Markdown table here")
    parser.add_argument("--json", help="also write the rows as JSON here")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args = parser.parse_args()
    if not CASE_SRC.is_dir() or not RAW_SRC.is_dir():
        print(f"shared data not found at {DATA}", file=sys.stderr)
        return 2
    wanted = set(args.only.split(",")) if args.only else None
    t = Path(tempfile.mkdtemp(prefix="probe-new-"))
    try:
        make_fixtures(t)
        rows = []
        for probe in probes():
            if wanted and probe.pid not in wanted:
                continue
            row = run_probe(t, probe)
            rows.append(row)
            print(
                f"{row['id']:4s} rc={row['rc']:<4} {row['seconds']:6.1f}s {row['verdict'][:70]}  "
                f"{row['stderr'][:110]}",
                file=sys.stderr,
                flush=True,
            )
        text = table(rows)
        print(text)
        if args.out:
            Path(args.out).write_text(text + "\n")
        if args.json:
            Path(args.json).write_text(json.dumps(rows, indent=1) + "\n")
    finally:
        if args.keep:
            print(f"kept {t}", file=sys.stderr)
        else:
            shutil.rmtree(t, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
