"""``napari-brats convert-labels IN OUT --to ...``: relabel tissue by tissue; ``merge-labels A B OUT``:
merge two label maps by Henry et al. 2021's table."""

from __future__ import annotations

import argparse

import numpy as np

from bratseg.errors import BratsInputError
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

    merge = subparsers.add_parser(
        "merge-labels",
        help="merge two label maps of one case (Henry et al. 2021's table: A for ET/NCR, B for edema)",
        description="Merge the label maps of two models of the same case by Henry et al. 2021's "
        "table: A is trusted for enhancing tumour and necrosis (the tumour core), B for edema "
        "(the whole tumour). Both must share one voxel grid; OUT is written atomically in A's "
        "geometry and label convention.",
    )
    merge.add_argument("a", metavar="A", help="label map trusted for ET and NCR")
    merge.add_argument("b", metavar="B", help="label map trusted for edema")
    merge.add_argument("output", metavar="OUT", help="file to write (.nii/.nii.gz)")
    merge.add_argument("--labels", choices=CONVENTIONS, help="convention of both (default: detect)")
    merge.add_argument("--overwrite", action="store_true", help="replace OUT if it exists")
    merge.set_defaults(func=run_merge)


def run_merge(args: argparse.Namespace) -> int:
    """Merge A and B, write OUT; print one summary line."""
    from bratseg.io import AFFINE_TOLERANCE
    from bratseg.io.nifti import affine_difference
    from bratseg.postprocess.labelmaps import merge_labelmaps

    a, b = load_label_map(args.a), load_label_map(args.b)
    if a.shape != b.shape or affine_difference(a.affine, b.affine) > AFFINE_TOLERANCE * min(
        a.spacing
    ):
        raise BratsInputError(f"not on the voxel grid of A {a.path}", b.path)
    conv_a = detect_convention(a.data, override=args.labels, source=str(a.path))
    conv_b = detect_convention(b.data, override=args.labels, default=conv_a, source=str(b.path))
    merged = merge_labelmaps(a.data, convert_labels(b.data, conv_b, conv_a), conv_a)
    out = save_label_map(
        merged,
        args.output,
        affine=a.affine,
        header=a.header,
        convention=conv_a,
        src_convention=conv_a,
        overwrite=args.overwrite,
    )
    changed = int(np.count_nonzero(merged != a.data))
    print(f"wrote {out} (BraTS {conv_a} labels; {changed} voxels differ from A)")
    return 0


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
