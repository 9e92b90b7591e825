"""``napari-brats compare BASELINE FOLLOWUP``: two scans of one patient, the change per region and
a suggested response category (with its rule)."""

from __future__ import annotations

import argparse
from pathlib import Path

from bratseg.cli._common import format_table, print_json
from bratseg.errors import BratsInputError
from bratseg.io.output_guard import case_input_files, guard_output
from bratseg.labels import CONVENTIONS


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``compare`` command."""
    parser = subparsers.add_parser(
        "compare",
        help="follow-up: compare two scans of one patient (volumes, RANO products, suggestion)",
        description="Compare a baseline and a follow-up case of one patient: NCR, ED, ET, TC and "
        "WT volumes at each time point (each measured on its own grid) and their change in mL "
        "and %, the RANO sum of products and its change, and a SUGGESTED response category for "
        "enhancing disease (RANO 2.0, bidimensional and volumetric) and non-enhancing disease "
        "(RANO-LGG on the T2/FLAIR abnormality), each with the rule it applied. The follow-up "
        "T1Gd is rigidly registered onto the baseline's (SimpleITK) to overlay the two.",
    )
    parser.add_argument("baseline", metavar="BASELINE", help="earlier case folder")
    parser.add_argument("followup", metavar="FOLLOWUP", help="later case folder")
    parser.add_argument(
        "--baseline-labels", metavar="LABELS", help="baseline label map (default: its seg)"
    )
    parser.add_argument(
        "--followup-labels", metavar="LABELS", help="follow-up label map (default: its seg)"
    )
    parser.add_argument(
        "--convention", choices=CONVENTIONS, help="label convention of both (default: detect)"
    )
    parser.add_argument(
        "--no-register",
        action="store_true",
        help="skip the registration (volumes and suggestion only; no page, no overlay)",
    )
    parser.add_argument(
        "--registered",
        metavar="OUT.nii.gz",
        help="write the follow-up labels registered onto the baseline grid",
    )
    parser.add_argument("--pdf", metavar="OUT.pdf", help="write the follow-up report page")
    parser.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.set_defaults(func=run)


def load_case_and_labels(folder: str, labels: str | None, convention: str | None):
    """A case folder, its label map (``labels``, else the folder's seg) and their convention;
    also used by the plugin's follow-up view."""
    from bratseg.cli.report import _load_labels, case_seg
    from bratseg.io import load_case

    case = load_case(folder, load_seg=False)
    path = Path(labels) if labels else case_seg(case)
    label_map, conv = _load_labels(path, case, convention, "labels")
    return case, label_map.data, conv


def run(args: argparse.Namespace) -> int:
    """Compare; print the table and the suggestions; write the page / registered labels."""
    from bratseg.io import save_label_map
    from bratseg.io.writing import check_nifti_destination
    from bratseg.report.followup import compare_cases

    if args.no_register and (args.pdf or args.registered):
        raise BratsInputError("--pdf and --registered need the registration (drop --no-register)")
    pdf = Path(args.pdf) if args.pdf else None
    if pdf is not None and pdf.exists() and not args.overwrite:
        raise BratsInputError("file exists; refusing to overwrite (use --overwrite)", pdf)
    if args.registered:
        check_nifti_destination(args.registered, args.overwrite)
    folders = (args.baseline, args.followup)
    inputs = [*case_input_files(folders[0]), *case_input_files(folders[1])]
    inputs += [p for p in (args.baseline_labels, args.followup_labels) if p]
    for path, what in ((pdf, "PDF"), (args.registered, "registered labels")):
        if path is not None:  # never an input (even with --overwrite), nor a case's file name
            guard_output(path, inputs, case_folders=folders, what=what)
    baseline, b_labels, b_conv = load_case_and_labels(
        args.baseline, args.baseline_labels, args.convention
    )
    followup, f_labels, f_conv = load_case_and_labels(
        args.followup, args.followup_labels, args.convention
    )
    comparison = compare_cases(
        baseline, b_labels, b_conv, followup, f_labels, f_conv, register=not args.no_register
    )
    data = comparison.to_dict()
    if args.registered and comparison.followup_on_baseline is not None:
        data["registered"] = str(
            save_label_map(
                comparison.followup_on_baseline,
                args.registered,
                affine=baseline.affine,
                header=baseline.header,
                convention=b_conv,
                src_convention=b_conv,
                overwrite=args.overwrite,
            )
        )
    if pdf is not None:
        from bratseg.report.followup_pdf import write_followup_pdf

        write_followup_pdf(comparison, pdf, baseline, b_labels, b_conv, overwrite=args.overwrite)
        data["pdf"] = str(pdf)
    if args.json:
        print_json(data)
        return 0
    rows = [
        [
            key.upper(),
            _num(row["baseline_ml"], ".2f"),
            _num(row["followup_ml"], ".2f"),
            _num(row["change_ml"], "+.2f"),
            _num(row["change_pct"], "+.1f"),
        ]
        for key, row in data["changes"].items()
    ]
    spd = data["sum_of_products_mm2"]
    rows.append(
        [
            "SPD mm²",
            _num(spd["baseline"], ".0f"),
            _num(spd["followup"], ".0f"),
            _num(spd["change_mm2"], "+.0f"),
            _num(spd["change_pct"], "+.1f"),
        ]
    )
    print(f"baseline {baseline.case_id}  ->  follow-up {followup.case_id}")
    print(format_table(["", "baseline mL", "follow-up mL", "change mL", "change %"], rows))
    if comparison.registration is not None:
        print(comparison.registration.line())
    print()
    for suggestion in comparison.suggestions:
        print(suggestion.text)
    print(data["caveat"])
    for key in ("registered", "pdf"):
        if key in data:
            print(f"{key}: {data[key]}")
    return 0


def _num(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)
