"""``napari-brats predict``: segment one case folder or a folder of cases.

``predict CASE_DIR -o OUT.nii.gz`` writes one label map; ``predict DATASET_DIR -o OUT_DIR`` writes
``OUT_DIR/<case>.nii.gz`` for every case folder under DATASET_DIR, with a progress bar on stderr;
that path (:mod:`bratseg.cli.predict_cohort`) shards the cases under ``torchrun``, resumes after a
kill, and writes ``OUT_DIR/cases.jsonl`` and ``OUT_DIR/summary.csv``.
Everything the user gave (paths, models, options) is checked before anything is written.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from bratseg.bias_field import BIAS_CORRECTION_CHOICES, bias_correction_choice
from bratseg.cli._common import parse_mapping, warn
from bratseg.cli._settings import add_setting_flags, setting_overrides
from bratseg.devices import DEVICE_CHOICES
from bratseg.errors import BratsInputError
from bratseg.io.align import ALIGN_MODES
from bratseg.io.nifti import is_nifti_name
from bratseg.io.output_guard import add_into_case_argument, guard_case_outputs
from bratseg.io.writing import check_nifti_destination
from bratseg.labels import OUTPUT_CONVENTIONS, region_masks

if TYPE_CHECKING:
    from bratseg.checkpoint import LoadedModel
    from bratseg.inference import Prediction
    from bratseg.io import Case
    from bratseg.postprocess import PostprocessConfig
    from bratseg.predictor import Predictor


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``predict`` command."""
    from bratseg.postprocess import PostprocessConfig

    p = subparsers.add_parser(
        "predict",
        help="segment a case folder (or every case in a folder) with one model or an ensemble",
        description="Predict NCR/ED/ET labels for a BraTS case folder (-o OUT.nii.gz) or for "
        "every case folder inside a dataset folder (-o OUT_DIR, one OUT_DIR/<case>.nii.gz each). "
        "Outputs keep the input's shape and affine (uint8 labels). Without --model the bundled "
        "default model is used; several --model options average their probabilities (ensemble). "
        "A dataset run resumes (verified outputs are kept), writes OUT_DIR/cases.jsonl and "
        "OUT_DIR/summary.csv, and under torchrun each process takes its share of the cases.",
    )
    p.add_argument(
        "input", metavar="CASE_OR_DATASET_DIR", help="case folder, or a folder of case folders"
    )
    p.add_argument(
        "-o",
        "--output",
        required=True,
        metavar="OUT",
        help="output .nii.gz for one case, output folder for a dataset",
    )
    p.add_argument(
        "--model",
        action="append",
        metavar="NAME_OR_CHECKPOINT",
        help="zoo name (see `napari-brats models`) or checkpoint .pt; repeat for an ensemble",
    )
    p.add_argument(
        "--device",
        default="auto",
        choices=DEVICE_CHOICES,
        help="compute device (auto: CUDA, then Apple MPS, then CPU)",
    )
    p.add_argument(
        "--tta", type=int, default=0, choices=(0, 8), help="flip test-time augmentation (8 flips)"
    )
    p.add_argument(
        "--bias-correction",
        choices=tuple(BIAS_CORRECTION_CHOICES),
        default="model",
        help="N4 bias-field correction of each series before the network: as each model was "
        "trained (model, the default), before every model (on), or never (off)",
    )
    p.add_argument(
        "--probabilities",
        metavar="OUT_PROB",
        help="also write region probabilities (X, Y, Z, 3: WT, TC, ET, float32); a folder "
        "for a dataset",
    )
    p.add_argument(
        "--labels",
        default="2021",
        choices=OUTPUT_CONVENTIONS,
        help="label convention of the output (2021: ET=4, 2023: ET=3)",
    )
    p.add_argument("--overwrite", action="store_true", help="replace existing output files")
    add_into_case_argument(p)
    p.add_argument(
        "--align",
        choices=ALIGN_MODES,
        default="none",
        help="series on other grids: resample into the T1Gd grid through the affines, or register "
        "rigidly to T1Gd first (SimpleITK); labels are written in the T1Gd's geometry",
    )
    p.add_argument(
        "--map",
        action="append",
        metavar="CHANNEL=FILE",
        help="explicit file for a channel (t1, t1ce, t2, flair) in a single case folder",
    )
    p.add_argument(
        "--overlap",
        type=float,
        default=None,
        help="sliding-window overlap in [0, 1) (default: the engine's, as in Futrega et al. 2021)",
    )
    p.add_argument(
        "--window",
        type=int,
        metavar="N",
        help="force sliding windows of N^3 voxels (default: whole brain crop when it fits, else 128^3)",
    )
    p.add_argument(
        "--no-input-check",
        action="store_true",
        help="segment a case even when the input check finds it not BraTS-ready (skull, thick "
        "slices, ...): the answer is then not to be trusted",
    )
    p.add_argument(
        "--require-all-sequences",
        action="store_true",
        help="refuse a case that lacks a series (default: T2 stands in for a missing FLAIR and "
        "back, T1 for a missing T1Gd and back, with a warning; without T1Gd no ET is claimed)",
    )
    p.add_argument(
        "--prepare",
        action="store_true",
        help="the input is raw scans (skull, own grids): prepare them first (see `napari-brats "
        "prepare`) and write the labels in the native T1Gd grid",
    )
    p.add_argument(
        "--native",
        action="store_true",
        help="for a case folder written by `napari-brats prepare`: write the labels in the "
        "native T1Gd grid of the source scans (nearest neighbour through the stored transform)",
    )
    p.add_argument(
        "--no-amp",
        action="store_true",
        help="disable mixed precision (float16 on CUDA, bfloat16 on a CPU that has it natively)",
    )
    p.add_argument("--threads", type=int, help="CPU threads (default: all CPUs available)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    pp = p.add_argument_group(
        "postprocessing (default: the bundled default ensemble's cross-validated settings; "
        "with other --model choices, the first model's checkpoint settings)"
    )
    add_setting_flags(pp, PostprocessConfig)
    p.set_defaults(func=run)


def _check_output_dir(folder: Path, existing: list[Path], overwrite: bool) -> None:
    if folder.exists() and not folder.is_dir():
        raise BratsInputError("output for a dataset must be a folder, this is a file", folder)
    if is_nifti_name(folder.name):
        raise BratsInputError(
            "input is a folder of cases: give an output folder, not a .nii.gz file", folder
        )
    if not folder.parent.is_dir():
        raise BratsInputError("parent folder does not exist", folder.parent)
    if existing and not overwrite:
        raise BratsInputError(
            f"{len(existing)} output file(s) exist, e.g. {existing[0].name}; "
            "use --overwrite to replace them",
            folder,
        )


def postprocess_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The PostprocessConfig fields the command line changes (range-checked by the config).

    Raises:
        BratsInputError: A value is out of its range.
    """
    from bratseg.postprocess import PostprocessConfig

    return setting_overrides(args, PostprocessConfig)


def postprocess_config(args: argparse.Namespace, loaded: list[LoadedModel]) -> PostprocessConfig:
    """The postprocessing ``predict`` uses with ``loaded``: the bundled default ensemble's own
    settings, else the first checkpoint's, with the command-line overrides applied."""
    from bratseg.predictor import Predictor

    overrides = postprocess_overrides(args)
    return Predictor.from_loaded(loaded, postprocess_overrides=overrides).postprocess_config()


def load_models(names: list[str] | None) -> list[LoadedModel]:
    """Resolve and load the requested checkpoints (the bundled default when none is given)."""
    from bratseg.predictor import Predictor

    return Predictor.from_names(names).models


def _summary(case: Case, out: Path, pred: Prediction) -> str:
    """The line ``predict`` prints for a case: volumes, time, the ET-rule note and, when the
    case needs review, the same reasons the viewer and the worklist give
    (:func:`bratseg.review.assessment.prediction_reasons`)."""
    from bratseg.review.assessment import prediction_reasons

    voxel_ml = float(np.prod(case.spacing)) / 1000.0
    masks = region_masks(pred.labels, pred.convention)
    vols = "  ".join(f"{r.upper()} {masks[r].sum() * voxel_ml:.1f} mL" for r in ("wt", "tc", "et"))
    line = f"{case.case_id}: {out}  [{vols}]  {pred.seconds:.1f} s on {pred.device}"
    reasons = prediction_reasons(pred, case)
    notes = "".join(f"  ({note})" for note in pred.notes)  # e.g. ET removed: no enhancement
    return line + notes + (f"  NEEDS REVIEW: {' '.join(reasons)}" if reasons else "")


def _predict_one(case: Case, predictor: Predictor, bar: Any, step_bar: bool) -> Prediction:
    """Drive the prediction generator; a per-step bar for one case, a postfix for a dataset bar."""
    gen = predictor.run(case)
    while True:
        try:
            report = next(gen)
        except StopIteration as stop:
            return stop.value
        if report.message.startswith("out of memory"):
            warn(report.message)
        if bar is None:
            continue
        if step_bar:
            bar.total = report.total
            bar.update(report.step - bar.n)
        bar.set_postfix_str(
            f"{case.case_id}: {report.message}"[:70] if not step_bar else report.message[:60]
        )


def _write_outputs(
    case: Case, pred: Prediction, out: Path, prob_path: Path | None, overwrite: bool
) -> None:
    from bratseg.io.writing import labels_for_writing, write_nifti_group

    labels = labels_for_writing(pred.labels, out, pred.convention, pred.convention)
    items: list[tuple[Any, Path, Any]] = [(labels, out, np.uint8)]
    if prob_path is not None:  # both files or neither (a failed label map leaves no probabilities)
        probs = np.moveaxis(pred.region_probs, 0, -1).astype(np.float32)
        items.append((probs, prob_path, np.float32))
    write_nifti_group(items, case.affine, case.header, overwrite=overwrite)


def allows_missing(args: argparse.Namespace) -> bool:
    """Whether a case may lack a series (see ``--require-all-sequences``)."""
    return not getattr(args, "require_all_sequences", False)


def _input_check(case: Case, args: argparse.Namespace) -> None:
    """Refuse a case that is not BraTS-ready (a warning with ``--no-input-check``); warn about
    each missing series and its stand-in."""
    from bratseg.io.readiness import readiness_line, require_ready

    for note in case.missing_sequence_notes():
        warn(f"{case.folder}: {note}")
    if getattr(args, "no_input_check", False):
        if case.findings:
            warn(f"{case.folder}: {readiness_line(case.findings)}")
        return
    require_ready(case.findings, case.folder)


def run(args: argparse.Namespace) -> int:
    """Predict and write the label maps."""
    from tqdm import tqdm

    from bratseg.inference import DEFAULT_OVERLAP, InferenceOptions
    from bratseg.io import find_case_files, list_case_folders, load_case
    from bratseg.predictor import Predictor

    if getattr(args, "prepare", False):
        from bratseg.cli.prepare import predict_prepared

        return predict_prepared(args, run)
    source = Path(args.input)
    out = Path(args.output)
    prob = Path(args.probabilities) if args.probabilities else None
    mapping = parse_mapping(args.map)
    if not source.exists():
        raise BratsInputError("input folder not found", source)
    if not source.is_dir():
        raise BratsInputError("input must be a case folder or a folder of case folders", source)
    if args.window is not None and args.window < 8:
        raise BratsInputError(f"--window must be at least 8 voxels, got {args.window}")
    if args.overlap is not None and not 0.0 <= args.overlap < 1.0:
        raise BratsInputError(f"--overlap must be in [0, 1), got {args.overlap}")
    folders = [source] if mapping else list_case_folders(source, allow_missing=allows_missing(args))
    if not folders and any(is_nifti_name(f.name) for f in source.iterdir()):
        # a case folder missing a channel: say which one
        find_case_files(source, seg=False, allow_missing=allows_missing(args))
    if not folders:
        raise BratsInputError(
            "no BraTS case found (expected t1/t1ce/t2/flair files, here or in sub-folders)", source
        )
    single = folders == [source]
    if getattr(args, "native", False):  # before the models load, not after the prediction
        from bratseg.cli.prepare import check_native

        check_native(source if single else None, prob)
    if single:
        check_nifti_destination(out, args.overwrite)
        if prob is not None:
            check_nifti_destination(prob, args.overwrite, "probabilities")
            if prob.resolve() == out.resolve():
                raise BratsInputError("--probabilities must differ from the label output", prob)
        guard_case_outputs(
            source,
            [(out, "output"), (prob, "probabilities")],
            mapping=mapping,
            into_case=args.into_case,
        )
    else:
        from bratseg.review.cohort import unrecorded_outputs

        targets = {f: out / f"{f.name}.nii.gz" for f in folders}
        found = unrecorded_outputs(out, {f.name: [t] for f, t in targets.items()})
        _check_output_dir(out, found, args.overwrite)
        if prob is not None:
            prob_targets = {f: prob / f"{f.name}_probabilities.nii.gz" for f in folders}
            found = unrecorded_outputs(out, {f.name: [t] for f, t in prob_targets.items()})
            _check_output_dir(prob, found, args.overwrite)
        for f in folders:
            guard_case_outputs(
                f,
                [(targets[f], "output"), (prob and prob_targets[f], "probabilities")],
                into_case=args.into_case,
            )
    from bratseg.review.cohort_shard import shard_device, shard_from_env, shard_threads

    shard = None if single else shard_from_env()
    options = InferenceOptions(
        device=args.device if shard is None else shard_device(args.device, shard),
        tta=args.tta,
        overlap=DEFAULT_OVERLAP if args.overlap is None else args.overlap,
        window=(args.window,) * 3 if args.window else None,
        amp=not args.no_amp,
        convention=args.labels,
        threads=args.threads if shard is None else shard_threads(args.threads, shard),
        bias_correction=bias_correction_choice(args.bias_correction),
    )
    overrides = postprocess_overrides(args)
    predictor = Predictor.from_names(args.model, options, postprocess_overrides=overrides)
    predictor.postprocess_config()  # loads the models: a bad checkpoint stops before any output
    quiet = bool(args.quiet)
    if single:
        case = load_case(
            source,
            mapping or None,
            load_seg=False,
            align=args.align,
            allow_missing=allows_missing(args),
        )
        for report in case.alignment:
            (warn if report.poor else lambda m: print(m, file=sys.stderr))(report.line())
        _input_check(case, args)
        bar = (
            None
            if quiet
            else tqdm(total=1, desc=case.case_id, file=sys.stderr, leave=False, unit="step")
        )
        try:
            pred = _predict_one(case, predictor, bar, step_bar=True)
        finally:
            if bar is not None:
                bar.close()
        written = (case, pred)
        if getattr(args, "native", False):
            from bratseg.cli.prepare import native_outputs

            written = native_outputs(case, pred, prob)
        _write_outputs(*written, out, prob, args.overwrite)
        # volumes and plausibility on the grid the models saw (with --native: the prepared one)
        print(_summary(case, out, pred))
        return 0

    out.mkdir(exist_ok=True)
    if prob is not None:
        prob.mkdir(exist_ok=True)
    outputs = {f: [targets[f]] + ([prob_targets[f]] if prob is not None else []) for f in folders}
    from bratseg.cli.predict_cohort import predict_dataset

    return predict_dataset(folders, out, outputs, predictor, args, shard or shard_from_env())
