"""``napari-brats prepare INPUT -o CASE_DIR``: raw clinical series -> a BraTS-ready case folder.

INPUT is a folder of NIfTI series or a DICOM study folder (one sub-folder per series). The steps
(bias-field correction, rigid registration to T1Gd, 1 mm resampling, brain extraction) run with a
progress bar; each step's time and the quality checks are printed at the end and kept in
``CASE_DIR/prepare.json``. Unusable input: one line, exit code 2, nothing written.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from bratseg.cli._common import parse_mapping, warn
from bratseg.errors import BratsInputError

if TYPE_CHECKING:
    from bratseg.inference import Prediction
    from bratseg.io import Case
    from bratseg.prepare import PrepareOptions, PrepareResult


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``prepare`` command."""
    p = subparsers.add_parser(
        "prepare",
        help="prepare raw clinical scans (skull, own grids, thick slices) into a BraTS-ready case",
        description="Pick the T1, T1Gd, T2 and FLAIR series of INPUT (NIfTI files or DICOM "
        "series folders; --map decides), correct the bias field (N4), register T1/T2/FLAIR "
        "rigidly to T1Gd, resample to 1 mm isotropic, extract the brain (deepbet) and write "
        "a BraTS-ready case folder with prepare.json (steps, times, versions, QC) and the "
        "transforms back to each series (predict --native writes labels in the T1Gd's grid).",
    )
    p.add_argument("input", metavar="INPUT", help="folder of raw series (NIfTI or DICOM)")
    p.add_argument("-o", "--output", required=True, metavar="CASE_DIR", help="new case folder")
    p.add_argument(
        "--map",
        action="append",
        metavar="CHANNEL=FILE",
        help="explicit series for a channel (t1, t1ce, t2, flair); relative to INPUT or absolute",
    )
    p.add_argument("--no-n4", action="store_true", help="skip the bias-field correction")
    p.add_argument(
        "--device", default="cpu", help="torch device of the brain extraction (default cpu)"
    )
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def prepare_with_bar(
    source: Path, out: Path, mapping: dict[str, str], options: PrepareOptions, quiet: bool
) -> PrepareResult:
    """Run the preparation with a progress bar on stderr; its :class:`PrepareResult`."""
    from tqdm import tqdm

    from bratseg.prepare import iter_prepare

    if not source.is_dir():
        raise BratsInputError("input must be a folder of series (NIfTI files or DICOM)", source)
    job = iter_prepare(source, out, mapping or None, options)
    bar = None if quiet else tqdm(total=10, desc="prepare", file=sys.stderr, leave=False)
    try:
        while True:
            try:
                report = next(job)
            except StopIteration as done:
                return done.value
            if bar is not None:
                bar.update(report.step - bar.n)
                bar.set_postfix_str(report.message[:60])
    finally:
        job.close()
        if bar is not None:
            bar.close()


def print_result(result: PrepareResult) -> None:
    """Step times and QC lines on stderr, then the case folder on stdout."""
    prov = result.provenance
    for step in prov["steps"]:
        sys.stderr.write(f"  {step['step']:<18} {step['seconds']:6.1f} s\n")
    for line in prov["qc"]["registration"]:
        sys.stderr.write(f"  {line}\n")
    for reason in result.review:
        warn(f"needs review: {reason}")
    total = sum(s["seconds"] for s in prov["steps"])
    print(f"{result.folder}  [brain {prov['qc']['brain_ml']:,.0f} mL]  {total:.1f} s")


def run(args: argparse.Namespace) -> int:
    """Prepare the case folder."""
    from bratseg.prepare import PrepareOptions

    options = PrepareOptions(n4=not args.no_n4, device=args.device)
    result = prepare_with_bar(
        Path(args.input), Path(args.output), parse_mapping(args.map), options, args.quiet
    )
    print_result(result)
    return 0


def predict_prepared(args: argparse.Namespace, predict: Any) -> int:
    """``predict --prepare``: prepare INPUT into a temporary case folder, then run ``predict``
    on it with the labels written in the native T1Gd grid (``--native``)."""
    import tempfile

    from bratseg.io.writing import check_nifti_destination
    from bratseg.prepare import PrepareOptions

    source, out = Path(args.input), Path(args.output)
    check_nifti_destination(out, args.overwrite)  # before the minute of preparing
    if args.probabilities:
        raise BratsInputError("--probabilities is not available with --prepare / --native")
    if source.is_dir():  # the raw series are inputs too: never replaced, nor their names taken
        from bratseg.io.output_guard import guard_output
        from bratseg.prepare import pick_series

        series = pick_series(source, parse_mapping(args.map) or None).values()
        guard_output(out, series, case_folders=[source], into_case=args.into_case)
    with tempfile.TemporaryDirectory(prefix="napari-brats-prepare-") as tmp:
        case_dir = Path(tmp) / (source.resolve().name or "case")
        result = prepare_with_bar(
            source, case_dir, parse_mapping(args.map), PrepareOptions(), args.quiet
        )
        if not args.quiet:
            print_result(result)
        args.input, args.map, args.prepare, args.native = str(case_dir), None, False, True
        return int(predict(args))


def check_native(folder: Path | None, probabilities: Path | None = None) -> None:
    """Refuse ``--native`` where it cannot apply (called before the work, and again at the end).

    Raises:
        BratsInputError: ``--probabilities`` given, or ``folder`` is not one case folder written
            by ``napari-brats prepare`` (no ``prepare.json``; e.g. a folder of cases).
    """
    from bratseg.prepare import read_provenance

    if probabilities is not None:
        raise BratsInputError("--probabilities is not available with --native", probabilities)
    if folder is None or read_provenance(folder) is None:
        raise BratsInputError(
            "--native needs one case folder written by napari-brats prepare (prepare.json)",
            folder,
        )


def native_outputs(
    case: Case, pred: Prediction, probabilities: Path | None = None, series: str = "t1ce"
) -> tuple[Any, Prediction]:
    """``(case, pred)`` with the labels and geometry of a prepared case's source series grid.

    The case returned is a stand-in with what writing and the summary read (``case_id``,
    ``affine``, ``header``, ``spacing``; ``image`` None): the native grid has no case image."""
    import dataclasses
    from types import SimpleNamespace

    from bratseg.prepare import labels_to_native

    check_native(case.folder, probabilities)
    assert case.folder is not None  # check_native refuses a case without its folder
    img = labels_to_native(pred.labels, case.affine, case.folder, series)
    native_case = SimpleNamespace(
        case_id=case.case_id,
        affine=img.affine,
        header=img.header,
        spacing=tuple(float(z) for z in img.header.get_zooms()[:3]),
        image=None,  # the native grid has no case image: the summary skips the brain-share rules
    )
    return native_case, dataclasses.replace(pred, labels=np.asarray(img.dataobj))
