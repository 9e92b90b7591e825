"""``napari-brats evaluate PRED REF``: BraTS region metrics of a prediction against a reference."""

from __future__ import annotations

import argparse

from bratseg.cli._common import format_table, print_json, warn
from bratseg.errors import BratsInputError
from bratseg.io import AFFINE_TOLERANCE, load_label_map
from bratseg.io.nifti import affine_difference
from bratseg.labels import CONVENTIONS, REGION_NAMES, detect_convention


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``evaluate`` command."""
    parser = subparsers.add_parser(
        "evaluate",
        help="Dice, HD95, sensitivity, specificity and volumes per region (WT, TC, ET)",
        description="Compare a predicted label map with a reference label map, region by "
        "region (WT, TC, ET), like the official BraTS evaluation: Dice, HD95 (373.13 when "
        "exactly one mask is empty), sensitivity, specificity and volumes in mL. Label "
        "conventions (2021: ET=4, 2023: ET=3, 2024: ET=3 and resection cavity RC=4, nnunet: 1 ED, "
        "2 NCR, 3 ET) are detected from the values where they can be, with a warning where two "
        "are possible, unless forced; RC, when present, is reported as its own region. "
        "Voxel spacing is taken from REF.",
    )
    parser.add_argument("pred", metavar="PRED", help="predicted label map (.nii/.nii.gz)")
    parser.add_argument("ref", metavar="REF", help="reference label map (.nii/.nii.gz)")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead")
    parser.add_argument(
        "--labels", choices=CONVENTIONS, help="label convention of both files (default: detect)"
    )
    parser.add_argument("--pred-labels", choices=CONVENTIONS, help="convention of PRED only")
    parser.add_argument("--ref-labels", choices=CONVENTIONS, help="convention of REF only")
    parser.add_argument(
        "--hd95-mm",
        action="store_true",
        help="HD95 in mm using REF's voxel spacing (default: voxel units, as the official "
        "evaluation; identical for 1 mm isotropic BraTS data)",
    )
    parser.add_argument(
        "--lesionwise",
        action="store_true",
        help="also the lesion-wise metrics of the BraTS 2023+ evaluation: 26-connected lesions "
        "matched one to one, lesion-wise Dice and HD95 (mm, official axis order), TP/FP/FN "
        "(JSON: under the key 'lesionwise')",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Print the per-region metrics."""
    from bratseg.metrics import evaluate_labels

    pred = load_label_map(args.pred)
    ref = load_label_map(args.ref)
    if pred.shape != ref.shape:
        raise BratsInputError(
            f"shape {pred.shape} differs from shape {ref.shape} of REF {ref.path}", pred.path
        )
    diff = affine_difference(pred.affine, ref.affine)
    if diff > AFFINE_TOLERANCE * min(ref.spacing):
        warn(
            f"{pred.path}: affine differs from REF {ref.path} by up to {diff:.4g}; "
            "comparing voxel by voxel with REF spacing"
        )
    ref_conv = detect_convention(
        ref.data, override=args.ref_labels or args.labels, source=str(ref.path)
    )
    pred_conv = detect_convention(
        pred.data,
        override=args.pred_labels or args.labels,
        default=ref_conv,
        source=str(pred.path),
    )
    results = evaluate_labels(
        pred.data,
        ref.data,
        spacing=ref.spacing,
        pred_convention=pred_conv,
        ref_convention=ref_conv,
        hd95_in_mm=args.hd95_mm,
    )
    lesions = None
    if args.lesionwise:
        from bratseg.metrics.lesionwise import lesionwise_metrics

        lesions = lesionwise_metrics(
            pred.data,
            ref.data,
            pred_convention=pred_conv,
            ref_convention=ref_conv,
            spacing=ref.spacing,
        )
    if args.json:
        print_json({**results, "lesionwise": lesions} if lesions is not None else results)
        return 0
    unit = "mm" if args.hd95_mm else "vox"
    rows = []
    for r in results:
        m = results[r]
        hd = f"{m['hd95']:.3f}" + ("*" if m.get("hd95_penalty") else "")
        rows.append(
            [
                f"{r.upper()} ({REGION_NAMES[r].lower()})",
                f"{m['dice']:.4f}",
                hd,
                f"{m['sensitivity']:.4f}",
                f"{m['specificity']:.6f}",
                f"{m['volume_pred_ml']:.2f}",
                f"{m['volume_ref_ml']:.2f}",
            ]
        )
    print(f"PRED {pred.path} (BraTS {pred_conv} labels)")
    print(f"REF  {ref.path} (BraTS {ref_conv} labels)")
    print()
    print(
        format_table(
            ["Region", "Dice", f"HD95 ({unit})", "Sensitivity", "Specificity", "Pred mL", "Ref mL"],
            rows,
        )
    )
    if any(m.get("hd95_penalty") for m in results.values()):
        print("* exactly one mask is empty: BraTS penalty HD95")
    if lesions is not None:
        print()
        print(
            format_table(
                ["Region", "Lesion-wise Dice", "Lesion-wise HD95 (mm)", "TP", "FP", "FN"],
                [
                    [
                        r.upper(),
                        f"{m['lesionwise_dsc']:.4f}",
                        f"{m['lesionwise_hd95']:.2f}",
                        str(m["tp"]),
                        str(m["fp"]),
                        str(m["fn"]),
                    ]
                    for r, m in lesions.items()
                ],
            )
        )
    return 0
