"""``napari-brats predict``: segment one case folder or a folder of cases.

``predict CASE_DIR -o OUT.nii.gz`` writes one label map; ``predict DATASET_DIR -o OUT_DIR`` writes
``OUT_DIR/<case>.nii.gz`` for every case folder under DATASET_DIR, with a progress bar on stderr.
Everything the user gave (paths, models, options) is checked before anything is written.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import numpy as np

from bratseg.cli._common import parse_mapping, warn
from bratseg.devices import DEVICE_CHOICES
from bratseg.errors import BratsInputError
from bratseg.io.nifti import is_nifti_name
from bratseg.io.writing import check_nifti_destination
from bratseg.labels import OUTPUT_CONVENTIONS, region_masks

#: Postprocessing options: CLI flag -> PostprocessConfig field.
_PP_FLAGS = {
    "wt_threshold": "wt_threshold",
    "tc_threshold": "tc_threshold",
    "et_threshold": "et_threshold",
    "et_min_volume": "et_min_volume",
    "et_component_rule": "et_component_rule",
    "et_case_min_prob": "et_case_min_prob",
    "et_sparse_fraction": "et_sparse_fraction",
    "et_sparse_threshold": "et_sparse_threshold",
    "min_island_fraction": "min_island_fraction",
    "wt_needs_core": "wt_needs_core",
    "postprocess_mode": "mode",
}


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``predict`` command."""
    from bratseg.postprocess import PostprocessConfig

    paper = PostprocessConfig()  # the defaults: Futrega et al. 2021's thresholds
    p = subparsers.add_parser(
        "predict",
        help="segment a case folder (or every case in a folder) with one model or an ensemble",
        description="Predict NCR/ED/ET labels for a BraTS case folder (-o OUT.nii.gz) or for "
        "every case folder inside a dataset folder (-o OUT_DIR, one OUT_DIR/<case>.nii.gz each). "
        "Outputs keep the input's shape and affine (uint8 labels). Without --model the bundled "
        "default model is used; several --model options average their probabilities (ensemble).",
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
    p.add_argument(
        "--align",
        choices=("none", "resample", "register"),
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
        default=0.5,
        help="sliding-window overlap (Futrega et al. 2021: 0.5)",
    )
    p.add_argument(
        "--window",
        type=int,
        metavar="N",
        help="force sliding windows of N^3 voxels (default: whole brain crop when it fits, else 128^3)",
    )
    p.add_argument("--no-amp", action="store_true", help="disable mixed precision on CUDA")
    p.add_argument("--threads", type=int, help="CPU threads (default: all CPUs available)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    pp = p.add_argument_group("postprocessing (default: the first model's checkpoint settings)")
    pp.add_argument("--postprocess-mode", choices=("hierarchical", "argmax"))
    pp.add_argument(
        "--wt-threshold",
        type=float,
        help=f"WT probability threshold (Futrega et al. 2021: {paper.wt_threshold:.2f})",
    )
    pp.add_argument(
        "--tc-threshold",
        type=float,
        help=f"TC probability threshold (Futrega et al. 2021: {paper.tc_threshold:.2f})",
    )
    pp.add_argument(
        "--et-threshold",
        type=float,
        help=f"ET probability threshold (Futrega et al. 2021: {paper.et_threshold:.2f})",
    )
    pp.add_argument(
        "--et-min-volume",
        type=int,
        metavar="VOXELS",
        help="ET -> NCR when total ET is below this many voxels (Jiang et al. 2020; 0 disables)",
    )
    pp.add_argument(
        "--et-component-rule",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="Futrega et al. 2021's small-ET-component rule",
    )
    pp.add_argument(
        "--et-case-min-prob",
        type=float,
        metavar="P",
        help="no-enhancement decision: all ET -> NCR when the mean ET probability over the ET "
        "voxels is below P (0 disables)",
    )
    pp.add_argument(
        "--et-sparse-fraction",
        type=float,
        metavar="F",
        help="mostly non-enhancing core: when ET is below F x the tumour core's volume, only "
        "ET voxels with p >= --et-sparse-threshold stay ET (0 disables)",
    )
    pp.add_argument(
        "--et-sparse-threshold",
        type=float,
        metavar="P",
        help="the ET threshold of such a core",
    )
    pp.add_argument(
        "--min-island-fraction",
        type=float,
        metavar="F",
        help="remove tumour components smaller than F x the largest one (0 keeps all, "
        "1 keeps only the largest)",
    )
    pp.add_argument(
        "--wt-needs-core",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="remove tumour components without any tumour-core voxel (edema with no core)",
    )
    p.set_defaults(func=run)


def _check_output_dir(folder: Path, targets: list[Path], overwrite: bool) -> None:
    if folder.exists() and not folder.is_dir():
        raise BratsInputError("output for a dataset must be a folder, this is a file", folder)
    if is_nifti_name(folder.name):
        raise BratsInputError(
            "input is a folder of cases: give an output folder, not a .nii.gz file", folder
        )
    if not folder.parent.is_dir():
        raise BratsInputError("parent folder does not exist", folder.parent)
    existing = [t for t in targets if t.exists()]
    if existing and not overwrite:
        raise BratsInputError(
            f"{len(existing)} output file(s) exist, e.g. {existing[0].name}; "
            "use --overwrite to replace them",
            folder,
        )


def postprocess_config(args: argparse.Namespace, loaded: list[Any]) -> Any:
    """The first checkpoint's PostprocessConfig with the command-line overrides applied."""
    from bratseg.zoo import ensemble_postprocess

    changes = {
        field: getattr(args, flag)
        for flag, field in _PP_FLAGS.items()
        if getattr(args, flag, None) is not None
    }
    for flag in (
        "wt_threshold",
        "tc_threshold",
        "et_threshold",
        "et_case_min_prob",
        "et_sparse_fraction",
        "et_sparse_threshold",
        "min_island_fraction",
    ):
        value = getattr(args, flag, None)
        if value is not None and not 0.0 <= value <= 1.0:
            raise BratsInputError(
                f"--{flag.replace('_', '-')} must be between 0 and 1, got {value}"
            )
    if getattr(args, "et_min_volume", None) is not None and args.et_min_volume < 0:
        raise BratsInputError(f"--et-min-volume must be >= 0, got {args.et_min_volume}")
    return ensemble_postprocess(loaded, **changes)


def load_models(names: list[str] | None) -> list[Any]:
    """Resolve and load the requested checkpoints (the bundled default when none is given)."""
    from bratseg.checkpoint import load_checkpoint
    from bratseg.zoo import load_default_models, resolve_model, verify_bundled

    if not names:
        return load_default_models()  # the bundled files only, checked against their cards
    paths = [resolve_model(n) for n in names]
    return verify_bundled([load_checkpoint(p) for p in paths])


def _summary(
    case_id: str, out: Path, pred: Any, spacing: tuple[float, ...], image: Any = None
) -> str:
    from bratseg.review.plausibility import prediction_plausibility

    voxel_ml = float(np.prod(spacing)) / 1000.0
    masks = region_masks(pred.labels, pred.convention)
    vols = "  ".join(f"{r.upper()} {masks[r].sum() * voxel_ml:.1f} mL" for r in ("wt", "tc", "et"))
    line = f"{case_id}: {out}  [{vols}]  {pred.seconds:.1f} s on {pred.device}"
    reasons = prediction_plausibility(pred, image, spacing)
    return line + (f"  NEEDS REVIEW: {' '.join(reasons)}" if reasons else "")


def _predict_one(case: Any, models: list[Any], options: Any, bar: Any, step_bar: bool) -> Any:
    """Drive the inference generator; a per-step bar for one case, a postfix for a dataset bar."""
    from bratseg.inference import run_inference

    gen = run_inference(case, models, options)
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
    case: Any, pred: Any, out: Path, prob_path: Path | None, overwrite: bool
) -> None:
    from bratseg.io import save_label_map, write_nifti_atomic

    if prob_path is not None:  # written first: the label map is the file callers look for
        probs = np.moveaxis(pred.region_probs, 0, -1).astype(np.float32)
        write_nifti_atomic(
            probs, case.affine, case.header, prob_path, overwrite=overwrite, dtype=np.float32
        )
    save_label_map(
        pred.labels,
        out,
        affine=case.affine,
        header=case.header,
        convention=pred.convention,
        src_convention=pred.convention,
        overwrite=overwrite,
    )


def run(args: argparse.Namespace) -> int:
    """Predict and write the label maps."""
    from tqdm import tqdm

    from bratseg.inference import InferenceOptions
    from bratseg.io import find_case_files, list_case_folders, load_case

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
    if not 0.0 <= args.overlap < 1.0:
        raise BratsInputError(f"--overlap must be in [0, 1), got {args.overlap}")
    folders = [source] if mapping else list_case_folders(source)
    if not folders and any(is_nifti_name(f.name) for f in source.iterdir()):
        find_case_files(source, seg=False)  # a case folder missing a channel: say which one
    if not folders:
        raise BratsInputError(
            "no BraTS case found (expected t1/t1ce/t2/flair files, here or in sub-folders)", source
        )
    single = folders == [source]
    if single:
        check_nifti_destination(out, args.overwrite)
        if prob is not None:
            check_nifti_destination(prob, args.overwrite, "probabilities")
            if prob.resolve() == out.resolve():
                raise BratsInputError("--probabilities must differ from the label output", prob)
    else:
        targets = {f: out / f"{f.name}.nii.gz" for f in folders}
        _check_output_dir(out, list(targets.values()), args.overwrite)
        if prob is not None:
            prob_targets = {f: prob / f"{f.name}_probabilities.nii.gz" for f in folders}
            _check_output_dir(prob, list(prob_targets.values()), args.overwrite)
    models = load_models(args.model)
    options = InferenceOptions(
        device=args.device,
        tta=args.tta,
        overlap=args.overlap,
        window=(args.window,) * 3 if args.window else None,
        amp=not args.no_amp,
        postprocess=postprocess_config(args, models),
        convention=args.labels,
        threads=args.threads,
    )
    quiet = bool(args.quiet)
    if single:
        case = load_case(source, mapping or None, load_seg=False, align=args.align)
        for report in case.alignment:
            (warn if report.poor else lambda m: print(m, file=sys.stderr))(report.line())
        bar = (
            None
            if quiet
            else tqdm(total=1, desc=case.case_id, file=sys.stderr, leave=False, unit="step")
        )
        try:
            pred = _predict_one(case, models, options, bar, step_bar=True)
        finally:
            if bar is not None:
                bar.close()
        _write_outputs(case, pred, out, prob, args.overwrite)
        print(_summary(case.case_id, out, pred, case.spacing, case.image))
        return 0

    out.mkdir(exist_ok=True)
    if prob is not None:
        prob.mkdir(exist_ok=True)
    failures = 0
    bar = tqdm(folders, desc="predict", file=sys.stderr, unit="case", disable=quiet)
    for folder in bar:
        try:
            case = load_case(folder, load_seg=False, align=args.align)
            pred = _predict_one(case, models, options, None if quiet else bar, step_bar=False)
            _write_outputs(
                case, pred, targets[folder], prob_targets[folder] if prob else None, args.overwrite
            )
        except BratsInputError as exc:
            failures += 1
            bar.write(f"napari-brats: error: {' '.join(str(exc).split())}", file=sys.stderr)
            continue
        bar.write(
            _summary(case.case_id, targets[folder], pred, case.spacing, case.image),
            file=sys.stdout,
        )
    bar.close()
    if failures:
        warn(f"{failures} of {len(folders)} case(s) failed; the others were written")
        return 2
    return 0
