"""``napari-brats report CASE_DIR``: the clinical report of a segmented case (table, JSON, PDF)."""

from __future__ import annotations

import argparse
from pathlib import Path

from bratseg.cli._common import format_table, print_json
from bratseg.errors import BratsInputError
from bratseg.io.output_guard import guard_case_outputs
from bratseg.labels import CONVENTIONS


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``report`` command."""
    parser = subparsers.add_parser(
        "report",
        help="clinical report of a segmentation: volumes, lesions, RANO products, sides, PDF",
        description="Report a case's label map: volume of each tissue and region (NCR, ED, ET, "
        "TC, WT; the volumes of 'evaluate'), the 26-connected lesions with their volume and side "
        "(patient's left/right of the brain's mid-sagittal plane), the RANO bidimensional product "
        "of each measurable enhancing lesion (longest axial diameter times the longest "
        "perpendicular one, both >= 10 mm) and their sum, the ET/TC ratio; with --proposal the AI "
        "proposal's volumes and Dice, with --prior the change since an earlier report of the same "
        "patient. Reviewer, status and model come from a provenance or session JSON "
        "(CASE_DIR/<case>_provenance.json when present) or the options.",
    )
    parser.add_argument("case", metavar="CASE_DIR", help="case folder with the four MRI series")
    parser.add_argument(
        "--labels",
        metavar="LABELS",
        dest="labels_file",
        help="label map to report (.nii/.nii.gz; default: the case folder's seg)",
    )
    parser.add_argument(
        "--convention", choices=CONVENTIONS, help="label convention (default: detect)"
    )
    parser.add_argument(
        "--proposal", metavar="AI", help="AI proposal label map, compared with LABELS"
    )
    parser.add_argument(
        "--prior", metavar="PRIOR.json", help="earlier report of the same patient (--json output)"
    )
    parser.add_argument(
        "--provenance",
        metavar="JSON",
        help="provenance or review-session JSON naming model, reviewer and status",
    )
    parser.add_argument("--reviewer", help="reviewer's name")
    parser.add_argument("--status", help="review status, e.g. draft, reviewed, final")
    parser.add_argument(
        "--json", action="store_true", help="print one JSON object instead of tables"
    )
    parser.add_argument("--pdf", metavar="OUT.pdf", help="also write the one-page PDF report")
    parser.add_argument("--overwrite", action="store_true", help="replace OUT.pdf if it exists")
    parser.set_defaults(func=run)


def _load_labels(path: Path, case, convention: str | None, what: str):
    from bratseg.io import AFFINE_TOLERANCE, load_label_map
    from bratseg.io.nifti import affine_difference
    from bratseg.labels import detect_convention

    label_map = load_label_map(path)
    if label_map.shape != case.shape:
        raise BratsInputError(
            f"{what} shape {label_map.shape} differs from the case images' {case.shape}", path
        )
    if affine_difference(label_map.affine, case.affine) > AFFINE_TOLERANCE * min(case.spacing):
        raise BratsInputError(
            f"{what} affine differs from the case images' (not on the same grid)", path
        )
    return label_map, detect_convention(label_map.data, override=convention, source=str(path))


def run(args: argparse.Namespace) -> int:
    """Build the report; print it; write the PDF when asked."""
    from bratseg.io import MODALITIES, load_case
    from bratseg.labels import convert_labels
    from bratseg.report import ReportInfo, build_report, load_json_record
    from bratseg.report.table import info_lines, lesion_table, region_table, summary_lines
    from bratseg.review.assessment import report_notes

    pdf = Path(args.pdf) if args.pdf else None
    if pdf is not None and pdf.exists() and not args.overwrite:
        raise BratsInputError("file exists; refusing to overwrite (use --overwrite)", pdf)
    if pdf is not None:
        extra = (args.labels_file, args.proposal, args.prior, args.provenance)
        guard_case_outputs(args.case, [(pdf, "PDF")], extra_inputs=extra)
    prior = load_json_record(args.prior, "report") if args.prior else None
    case = load_case(args.case, load_seg=False)
    labels_path = Path(args.labels_file) if args.labels_file else case_seg(case)
    labels, conv = _load_labels(labels_path, case, args.convention, "labels")
    proposal = None
    if args.proposal:
        ai, ai_conv = _load_labels(Path(args.proposal), case, None, "AI proposal")
        proposal = convert_labels(ai.data, ai_conv, conv, drop_rc=True)
    record_path = (
        Path(args.provenance)
        if args.provenance
        else (case.folder / f"{case.case_id}_provenance.json" if case.folder is not None else None)
    )
    record = {}
    if record_path is not None and (args.provenance or record_path.is_file()):
        record = load_json_record(record_path, "provenance")
    info = ReportInfo.from_record(
        record,
        case_id=case.case_id,
        reviewer=args.reviewer,
        status=args.status,
        notes=report_notes(record.get("assessment"), record.get("et_rule")) or None,
    )
    report = build_report(
        labels.data,
        conv,
        labels.affine,
        labels.spacing,
        images=case.image,
        proposal=proposal,
        prior=prior,
        info=info,
    )
    data = report.to_dict()
    data["labels_file"] = str(labels_path)
    if pdf is not None:
        from bratseg.report.pdf import write_report_pdf

        write_report_pdf(
            data,
            pdf,
            labels.data,
            labels.affine,
            labels.spacing,
            case.image[MODALITIES.index("t1ce")],
            overwrite=args.overwrite,
        )
        data["pdf"] = str(pdf)
    if args.json:
        print_json(data)
        return 0
    print("\n".join(info_lines(data)))
    print()
    print(format_table(*region_table(data)))
    print()
    print("\n".join(summary_lines(data)))
    if data["lesions"]:
        print()
        print(format_table(*lesion_table(data)))
    if pdf is not None:
        print(f"\nPDF: {pdf}")
    return 0


def case_seg(case) -> Path:
    """The label map of a case folder (when --labels is not given)."""
    from bratseg.io import find_case_files

    files = find_case_files(case.folder) if case.folder is not None else {}
    if "seg" not in files:
        raise BratsInputError(
            "no label map in the case folder; pass --labels LABELS.nii.gz", case.folder
        )
    return files["seg"]
