"""``napari-brats convert-labels IN OUT --to 2021|2023|2024|nnunet``: relabel tissue by tissue."""

from __future__ import annotations

import argparse

import numpy as np

from bratseg.io import load_label_map, save_label_map
from bratseg.labels import CONVENTIONS, LABEL_VALUES, convert_labels, detect_convention


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``convert-labels`` command."""
    parser = subparsers.add_parser(
        "convert-labels",
        help="convert a label map between the BraTS 2021 (ET=4), 2023 (ET=3), 2024 (ET=3, RC=4) "
        "and nnU-Net (1 ED, 2 NCR, 3 ET) conventions",
        description="Read a label map, convert it to the requested BraTS label convention and "
        "write it (uint8, same geometry and header) atomically. The source convention is "
        "detected from the values unless --from is given (where values allow two conventions, "
        "a warning says which was taken). A resection cavity (2024) has no label in the other "
        "conventions: converting it is an error unless --drop-rc makes it background.",
    )
    parser.add_argument("input", metavar="IN", help="label map to convert (.nii/.nii.gz)")
    parser.add_argument("output", metavar="OUT", help="file to write (.nii/.nii.gz)")
    parser.add_argument("--to", required=True, choices=CONVENTIONS, help="target convention")
    parser.add_argument(
        "--from", dest="src", choices=CONVENTIONS, help="source convention (default: detect)"
    )
    parser.add_argument(
        "--drop-rc",
        action="store_true",
        help="write a 2024 resection cavity as background when converting to 2021/2023/nnunet",
    )
    parser.add_argument("--overwrite", action="store_true", help="replace OUT if it exists")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Convert and write; print one summary line."""
    labels = load_label_map(args.input)
    src = detect_convention(labels.data, override=args.src, source=str(labels.path))
    converted = convert_labels(
        labels.data, src, args.to, drop_rc=args.drop_rc
    )  # errors before writing
    changed = int(np.count_nonzero(converted != labels.data))
    out = save_label_map(
        labels.data,
        args.output,
        affine=labels.affine,
        header=labels.header,
        convention=args.to,
        src_convention=src,
        overwrite=args.overwrite,
        drop_rc=args.drop_rc,
    )
    moves = ", ".join(
        f"{t.upper()} {v} -> {LABEL_VALUES[args.to].get(t, 0)}"
        for t, v in LABEL_VALUES[src].items()
        if LABEL_VALUES[args.to].get(t, 0) != v
    )
    print(
        f"wrote {out} (BraTS {args.to} labels; from {src}: {moves or 'no value changes'}, "
        f"{changed} voxels changed)"
    )
    return 0
