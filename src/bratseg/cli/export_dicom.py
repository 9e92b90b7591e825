"""``napari-brats export-dicom CASE_DIR -o DIR``: the segmentation as DICOM SEG, RTSTRUCT and a
burned-in overlay series with a summary image, in the case's own DICOM study (or a new one)."""

from __future__ import annotations

import argparse
from pathlib import Path

from bratseg.cli._common import print_json
from bratseg.errors import BratsInputError
from bratseg.io.align import ALIGN_MODES
from bratseg.labels import CONVENTIONS


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``export-dicom`` command."""
    parser = subparsers.add_parser(
        "export-dicom",
        help="write a segmentation as DICOM SEG, RTSTRUCT and a burned-in overlay series",
        description="Write a case's label map as DICOM into a new folder: SEG.dcm (segments NCR, "
        "ED, ET; SNOMED-CT/DCMQI codes, the model and the reviewer), RTSTRUCT.dcm (ROIs WT, TC, "
        "ET), OVERLAY/ (the T1Gd slices with the tissues burned in, for PACS without SEG support) "
        "and SUMMARY.dcm (key slice and volume table). A case read from DICOM series is "
        "referenced (its study, T1Gd series and frame of reference, on its geometry); a case "
        "read from NIfTI gets a new study, and its T1Gd is written as SOURCE_T1GD/ so the "
        "objects reference real images (said in the output and in every file). Model, reviewer "
        "and approval come from a provenance or review-session JSON "
        "(CASE_DIR/<case>_provenance.json when present) or the options.",
    )
    parser.add_argument(
        "case", metavar="CASE_DIR", help="case folder (NIfTI files or DICOM series)"
    )
    parser.add_argument(
        "--labels",
        metavar="LABELS",
        dest="labels_file",
        help="label map to export (.nii/.nii.gz; default: the session's labels, else the case "
        "folder's seg)",
    )
    parser.add_argument(
        "--convention", choices=CONVENTIONS, help="label convention (default: detect)"
    )
    parser.add_argument(
        "-o", "--output", metavar="DIR", required=True, help="new folder to write (must not exist)"
    )
    parser.add_argument(
        "--provenance",
        metavar="JSON",
        help="provenance or review-session JSON naming model, reviewer and approval",
    )
    parser.add_argument(
        "--align",
        choices=ALIGN_MODES,
        default="none",
        help="series on different grids: resample or register them into the T1Gd grid (the "
        "outputs then lie on the T1Gd series; labels must be on that grid)",
    )
    parser.add_argument("--reviewer", help="reviewer's name")
    parser.add_argument("--status", help="review status, e.g. approved")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.set_defaults(func=run)


def _from_session(ident: str, align: str):
    """``(case, labels, affine, convention, record, what)`` of a saved review session."""
    from bratseg.io import load_case
    from bratseg.review import SessionStore

    folder = Path(ident)
    if (folder / "session.json").is_file():
        store = SessionStore(folder.parent)
        saved = store.get(folder.name)
        if saved is None:
            raise BratsInputError("unreadable review session", folder)
    else:
        store = SessionStore()
        saved = store.find(ident)
    meta = saved.meta
    files = {k: v for k, v in (meta.get("files") or {}).items() if k != "seg"}
    case = load_case(
        meta["case_folder"],
        mapping=files,
        load_seg=False,
        case_id=meta.get("case_id"),
        align=align,
    )
    labels, _proposal, _overrides = store.load_arrays(saved)
    affine, _header = store.geometry(saved)
    return case, labels, affine, meta["convention"], meta, f"session {saved.key}"


def run(args: argparse.Namespace) -> int:
    """Check every input, then write the folder (all or nothing)."""
    from bratseg.cli.report import _load_labels, case_seg
    from bratseg.io import load_case
    from bratseg.report import load_json_record

    try:
        from bratseg.report.dicom import Provenance, check_labels, export_dicom
        from bratseg.report.dicom.export import check_destination
    except ImportError as exc:
        raise BratsInputError(
            f"DICOM export needs highdicom, scikit-image and matplotlib ({exc.name} is missing): "
            'pip install "napari-brats[dicom]"'
        ) from None

    output = Path(args.output)
    check_destination(output)  # before the slow reading
    record: dict = {}
    is_case = Path(args.case).is_dir() and not (Path(args.case) / "session.json").is_file()
    if is_case:
        case = load_case(args.case, load_seg=False, align=args.align)
        labels_path = Path(args.labels_file) if args.labels_file else case_seg(case)
        label_map, convention = _load_labels(labels_path, case, args.convention, "labels")
        labels, affine, source = label_map.data, label_map.affine, str(labels_path)
    else:
        case, labels, affine, convention, record, source = _from_session(args.case, args.align)
        if args.labels_file:
            label_map, convention = _load_labels(
                Path(args.labels_file), case, args.convention, "labels"
            )
            labels, affine, source = label_map.data, label_map.affine, args.labels_file
    check_labels(labels, affine, case, convention, source)
    if args.provenance:
        record = load_json_record(args.provenance, "provenance")
    elif is_case and case.folder is not None:
        beside = case.folder / f"{case.case_id}_provenance.json"
        if beside.is_file():
            record = load_json_record(beside, "provenance")
    provenance = Provenance.from_record(record, args.reviewer, args.status)
    result = export_dicom(case, labels, convention, output, provenance)
    if args.json:
        print_json(result.to_dict())
        return 0
    for kind, files in result.files.items():
        print(f"{kind:9s} {len(files):4d} file(s)  {output / Path(files[0]).parts[0]}")
    print(f"study     {result.study_uid}")
    for note in result.notes:
        print(note)
    return 0
