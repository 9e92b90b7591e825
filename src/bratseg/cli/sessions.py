"""``napari-brats sessions``: list autosaved review sessions and export their labels."""

from __future__ import annotations

import argparse
from pathlib import Path

from bratseg.cli._common import format_table, print_json
from bratseg.io.output_guard import add_into_case_argument
from bratseg.labels import OUTPUT_CONVENTIONS
from bratseg.text import one_line


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``sessions`` command (and ``sessions export``)."""
    p = subparsers.add_parser(
        "sessions",
        help="list autosaved review sessions (hand edits kept across crashes), export their labels",
        description="Every edit stroke, settings change and model run in the viewer is saved to a "
        "review session per case ($BRATSEG_HOME/sessions, or $BRATSEG_SESSIONS), keyed "
        "by a hash of the case's image files. Without an action: list them. 'sessions export "
        "CASE_ID -o OUT.nii.gz' writes a session's labels in the case's source geometry.",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run_list)
    actions = p.add_subparsers(dest="action", metavar="ACTION", parser_class=type(p))
    e = actions.add_parser("export", help="write a saved session's labels as NIfTI")
    e.add_argument(
        "ident", metavar="CASE_ID", help="case id, or the session key (a prefix is enough)"
    )
    e.add_argument(
        "-o", "--output", required=True, metavar="OUT", help="label file to write (.nii/.nii.gz)"
    )
    e.add_argument(
        "--labels",
        choices=OUTPUT_CONVENTIONS,
        help="label convention to write (default: the session's)",
    )
    e.add_argument("--overwrite", action="store_true", help="replace OUT if it exists")
    add_into_case_argument(e)
    e.set_defaults(func=run_export)


def run_list(args: argparse.Namespace) -> int:
    """Print the saved sessions, most recent first."""
    from bratseg.review import SessionStore

    store = SessionStore()
    rows = [s.summary() for s in store.list()]
    if args.json:
        print_json({"folder": str(store.root), "sessions": rows})
        return 0
    if not rows:
        print(f"no saved review sessions in {store.root}")
        return 0
    table = []
    for r in rows:
        if r["damaged"]:  # listed, never used: one line saying why
            table.append(
                [r["case_id"] or "?", r["key"][:12], "?", "damaged", r["damaged"], "-", "?"]
            )
            continue
        per = r["edited_voxels"] or {}
        edits = (
            ", ".join(
                f"{t.upper()} +{v['added']}/-{v['removed']}"
                for t, v in per.items()
                if v["added"] or v["removed"]
            )
            or "none"
        )
        table.append(
            [
                r["case_id"],
                r["key"][:12],
                r["last_change"] or "?",
                str(r["n_edited"]),
                edits,
                "yes" if r["exported"] else "no",
                r["case_folder"] or "?",
            ]
        )
    print(
        format_table(
            ["Case", "Key", "Last change", "Edited", "Edits per label", "Exported", "Folder"], table
        )
    )
    return 0


def run_export(args: argparse.Namespace) -> int:
    """Write the labels of one saved session (one line; exit 2 on bad input, nothing written)."""
    from bratseg.io import save_label_map
    from bratseg.io.output_guard import guard_output
    from bratseg.io.writing import check_nifti_destination
    from bratseg.review import SessionStore

    store = SessionStore()
    saved = store.find(args.ident)
    out = Path(args.output)
    check_nifti_destination(out, args.overwrite)  # before the session's arrays are read
    files, folder = saved.meta.get("files"), saved.meta.get("case_folder")
    guard_output(  # the session's case files are never replaced, nor its channel names taken
        out,
        [str(f) for f in files.values() if f] if isinstance(files, dict) else [],
        case_folders=[str(folder)] if isinstance(folder, str) and folder else [],
        into_case=args.into_case,
    )
    labels, _proposal, _overrides = store.load_arrays(saved)
    affine, header = store.geometry(saved)
    version = saved.version  # the save these labels come from
    convention = saved.meta["convention"]
    written = save_label_map(
        labels,
        out,
        affine=affine,
        header=header,
        convention=args.labels or convention,
        src_convention=convention,
        overwrite=args.overwrite,
    )
    store.mark_exported(saved.key, written, version)
    print(
        one_line(
            f"wrote {written} ({saved.case_id}: {saved.n_edited} hand-edited voxels, BraTS "
            f"{args.labels or convention} labels)"
        )
    )
    return 0
