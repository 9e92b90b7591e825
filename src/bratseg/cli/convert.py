"""``napari-brats convert-labels IN OUT --to 2021|2023``: switch the ET label (4 <-> 3)."""

from __future__ import annotations

import argparse

import numpy as np

from bratseg.io import load_label_map, save_label_map
from bratseg.labels import CONVENTIONS, LABEL_VALUES, detect_convention


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``convert-labels`` command."""
    parser = subparsers.add_parser(
        "convert-labels",
        help="convert a label map between the BraTS 2021 (ET=4) and 2023 (ET=3) conventions",
        description="Read a label map, convert it to the requested BraTS label convention and "
        "write it (uint8, same geometry and header) atomically. The source convention is "
        "detected from the values unless --from is given.",
    )
    parser.add_argument("input", metavar="IN", help="label map to convert (.nii/.nii.gz)")
    parser.add_argument("output", metavar="OUT", help="file to write (.nii/.nii.gz)")
    parser.add_argument("--to", required=True, choices=CONVENTIONS, help="target convention")
    parser.add_argument(
        "--from", dest="src", choices=CONVENTIONS, help="source convention (default: detect)"
    )
    parser.add_argument("--overwrite", action="store_true", help="replace OUT if it exists")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Convert and write; print one summary line."""
    labels = load_label_map(args.input)
    src = detect_convention(labels.data, override=args.src, source=str(labels.path))
    changed = 0
    if src != args.to:
        changed = int(np.count_nonzero(labels.data == LABEL_VALUES[src]["et"]))
    out = save_label_map(
        labels.data, args.output, affine=labels.affine, header=labels.header,
        convention=args.to, src_convention=src, overwrite=args.overwrite,
    )
    et_src, et_dst = LABEL_VALUES[src]["et"], LABEL_VALUES[args.to]["et"]
    print(
        f"wrote {out} (BraTS {args.to} labels; from {src}: ET {et_src} -> {et_dst}, "
        f"{changed} voxels changed)"
    )
    return 0
