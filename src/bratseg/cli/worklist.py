"""``napari-brats worklist FOLDER``: the review status of a folder of cases, batch segmentation,
sign-off and the export of the approved cases (the Worklist dock's rules, without the viewer)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from bratseg.cli._common import format_table, print_json
from bratseg.devices import DEVICE_CHOICES
from bratseg.labels import BRATS_CONVENTIONS
from bratseg.text import one_line


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``worklist`` command."""
    p = subparsers.add_parser(
        "worklist",
        help="review status of a folder of cases; segment all, approve/reopen, export the approved",
        description="List the case folders of FOLDER with their review status (new, segmented, edited, "
        "approved; from the review sessions in $BRATSEG_HOME/sessions or $BRATSEG_SESSIONS), model, "
        "hand-edited voxels, volumes and needs-review flag. --segment-all segments every new case "
        "(resumable: done cases are skipped) and saves each as a review session; --approve / --reopen "
        "sign one case off or reopen it; --export-approved DIR writes the approved cases as a dataset "
        "that 'napari-brats train --data DIR' reads.",
    )
    p.add_argument("folder", metavar="FOLDER", help="folder of case folders")
    p.add_argument("--segment-all", action="store_true", help="segment every new case")
    p.add_argument(
        "--model",
        action="append",
        metavar="NAME_OR_CHECKPOINT",
        help="model for --segment-all (default: the bundled default); repeat for an ensemble",
    )
    p.add_argument("--device", default="auto", choices=DEVICE_CHOICES, help="compute device")
    p.add_argument("--tta", type=int, default=0, choices=(0, 8), help="flip test-time augmentation")
    p.add_argument("--approve", metavar="CASE_ID", help="approve this case's review")
    p.add_argument("--reopen", metavar="CASE_ID", help="reopen this case's approved review")
    p.add_argument("--reviewer", help="who signs (default: the OS user)")
    p.add_argument("--export-approved", metavar="DIR", help="export every approved case into DIR")
    p.add_argument(
        "--export-dicom",
        metavar="DIR",
        help="write every approved case as DICOM (SEG, RTSTRUCT, overlay) into DIR/<case>_dicom",
    )
    p.add_argument(
        "--labels",
        default="2021",
        choices=BRATS_CONVENTIONS,
        help="label convention of the exported masks",
    )
    p.add_argument(
        "--overwrite", action="store_true", help="replace existing exports of the same cases"
    )
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run)


def _row(row: Any) -> list[str]:
    volumes = row.volumes_ml or {}
    flag = "" if row.needs_review is None else ("yes" if row.needs_review else "no")
    note = row.error or "; ".join(row.reasons)
    if row.approval is not None:
        note = row.approval.line() + (f"; {note}" if note else "")
    return [
        row.case_id,
        row.status,
        "+".join(row.models) or "-",
        str(row.n_edited),
        *(f"{volumes[k]:.2f}" if k in volumes else "-" for k in ("wt", "tc", "et")),
        flag or "-",
        note,
    ]


def _drive(events: Any, desc: str, quiet: bool) -> list[str]:
    """Run a batch generator with a progress bar; returns the failure lines."""
    from tqdm import tqdm

    failures: list[str] = []
    bar = None
    try:
        for event in events:
            if bar is None:
                bar = tqdm(
                    total=event.total, desc=desc, file=sys.stderr, unit="case", disable=quiet
                )
            if event.kind in ("done", "skipped", "failed"):
                bar.update(1)
            if event.kind == "failed":
                failures.append(event.message)
                bar.write(f"napari-brats: error: {one_line(event.message)}", file=sys.stderr)
            elif event.kind in ("done", "finished", "cancelled"):
                bar.write(one_line(event.message), file=sys.stderr)
    finally:  # also on Ctrl-C / SIGTERM: the error line then starts a line of its own
        if bar is not None:
            bar.close()
    return failures


def run(args: argparse.Namespace) -> int:
    """List (and segment, sign, export) the worklist; exit 2 when a case failed."""
    from bratseg.errors import BratsInputError
    from bratseg.review.worklist import Worklist, export_approved, segment_all

    worklist = Worklist(args.folder)
    quiet = bool(args.json)
    failures: list[str] = []
    if args.segment_all:
        from bratseg.inference import InferenceOptions
        from bratseg.zoo import default_model_names, no_default_model_message, resolve_model

        names = args.model or default_model_names()
        if not names:
            raise BratsInputError(no_default_model_message())
        options = InferenceOptions(device=args.device, tta=args.tta)
        failures += _drive(
            segment_all(worklist, [resolve_model(n) for n in names], options), "segment", quiet
        )
    for action, ident in (("approve", args.approve), ("reopen", args.reopen)):
        if ident:
            try:
                index = worklist.index_of(ident)
            except KeyError:
                raise BratsInputError(f"no case {ident!r} in the worklist", worklist.root) from None
            entry = getattr(worklist, action)(index, args.reviewer)
            if not quiet:
                print(one_line(f"{ident}: {entry.line()}"), file=sys.stderr)
    written: list[str] = []
    exports = [(args.export_approved, False), (args.export_dicom, True)]
    for target, dicom in ((t, d) for t, d in exports if t):
        events = export_approved(
            worklist, target, convention=args.labels, overwrite=args.overwrite, dicom=dicom
        )
        failures += _drive(events, "export", quiet)
        written = [
            worklist.rows[i].case_id
            for i, r in enumerate(worklist.rows)
            if r.status == "approved" and not any(f.startswith(f"{r.case_id}:") for f in failures)
        ]
    if args.json:
        print_json(
            {
                "folder": str(worklist.root),
                "cases": [r.to_dict() for r in worklist.rows],
                "exported": written,
                "failures": failures,
            }
        )
    else:
        header = ["Case", "Status", "Model", "Edited", "WT mL", "TC mL", "ET mL", "Review", "Note"]
        print(format_table(header, [_row(r) for r in worklist.rows], align="lllrrrrll"))
    return 2 if failures else 0
