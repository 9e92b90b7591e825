"""``napari-brats cv-split``: write a fixed, stratified k-fold split of labelled cases."""

from __future__ import annotations

import argparse
from pathlib import Path

from bratseg.errors import BratsInputError


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``cv-split`` command."""
    p = subparsers.add_parser(
        "cv-split",
        help="write a fixed, stratified k-fold cross-validation split of labelled cases",
        description="Read the label map of every labelled case under the --data folders and write a "
        "k-fold split by case, seeded, stratified so that every fold holds tumours with little "
        "enhancement (reference ET < 3 mL) and cases of every data folder. Train fold K with "
        "'napari-brats train --split-file FILE --fold K'.",
    )
    p.add_argument(
        "--data",
        action="append",
        metavar="DIR",
        default=[],
        required=True,
        help="folder of case folders with *_seg label maps; repeatable",
    )
    p.add_argument(
        "-o", "--output", required=True, metavar="FILE", help="split file to write (.json)"
    )
    p.add_argument("--folds", type=int, default=5, help="number of folds (default 5)")
    p.add_argument("--seed", type=int, default=0, help="shuffle seed (default 0)")
    p.add_argument("--name", help="split name (default: the output file's stem)")
    p.add_argument(
        "--extend",
        metavar="BASE_SPLIT",
        help="keep every case of this split file in its fold and deal only the cases it lacks "
        "(stratified by enhancement and source), so its fold models stay leak-free",
    )
    p.add_argument("--overwrite", action="store_true", help="replace FILE if it exists")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Measure each case's ET, deal the folds and write the file; print one line per fold."""
    from bratseg.io import load_label_map
    from bratseg.labels import detect_convention
    from bratseg.metrics import tumour_volumes_ml
    from bratseg.training.data import discover_cases
    from bratseg.training.splits import (
        CaseInfo,
        extend_split,
        make_split,
        read_split_file,
        write_split_file,
    )

    out = Path(args.output)
    if out.exists() and not args.overwrite:
        raise BratsInputError("file exists; refusing to overwrite (use --overwrite)", out)
    base = read_split_file(args.extend) if args.extend else None
    known = {c for f in base.folds for c in f} if base else set()
    infos = []
    for root in args.data:
        for ref in discover_cases([root]):
            if ref.case_id in known:
                continue
            labels = load_label_map(ref.files["seg"])
            convention = detect_convention(labels.data, source=str(labels.path))
            et_ml = tumour_volumes_ml(labels.data, convention, labels.spacing)["et"]
            infos.append(CaseInfo(ref.case_id, Path(root).resolve().name, et_ml))
    name = args.name or out.stem
    if base is not None:
        split = extend_split(base, infos, name=name, seed=args.seed)
    else:
        split = make_split(infos, name=name, n_folds=args.folds, seed=args.seed)
    write_split_file(split, out, overwrite=args.overwrite)
    for k, fold in enumerate(split.folds):
        low = sum(split.cases[c]["stratum"] != "enhancing" for c in fold)
        print(f"fold {k}: {len(fold)} cases ({low} with ET < 3 mL): {', '.join(fold)}")
    n = len(split.cases)
    print(f"wrote {out} ({n} cases, {len(infos)} dealt, {split.n_folds} folds, seed {split.seed})")
    return 0
