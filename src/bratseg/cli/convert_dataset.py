"""``napari-brats convert-dataset SRC DEST --to nnunet|brats2021|brats2023``: dataset layouts."""

from __future__ import annotations

import argparse
from pathlib import Path

from bratseg.labels import BRATS_CONVENTIONS


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``convert-dataset`` command."""
    p = subparsers.add_parser(
        "convert-dataset",
        help="write a labelled dataset in nnU-Net v2's raw layout or as BraTS case folders",
        description="Read the labelled cases of SRC (a folder of BraTS case folders in any naming the "
        "loader knows, the plugin's export layout, or an nnU-Net v2 raw dataset) and write them to the "
        "new folder DEST. --to nnunet: imagesTr/{case}_0000..0003.nii.gz (0 T1, 1 T1Gd, 2 T2, 3 FLAIR), "
        "labelsTr/{case}.nii.gz in nnU-Net's BraTS labels (1 ED, 2 NCR, 3 ET) and dataset.json with the "
        "regions (whole tumor 1,2,3; tumor core 2,3; enhancing tumor 3). --to brats2021|brats2023: "
        "<case>/<case>_{t1,t1ce,t2,flair,seg}.nii.gz with ET = 4 or 3. DEST appears complete or not at all.",
    )
    p.add_argument("src", metavar="SRC", help="dataset folder to read")
    p.add_argument("dest", metavar="DEST", help="new dataset folder to write (must not exist)")
    p.add_argument(
        "--to",
        required=True,
        choices=("nnunet", *(f"brats{c}" for c in BRATS_CONVENTIONS)),
        help="layout to write",
    )
    p.add_argument("--name", help="dataset name in dataset.json (default: DEST's name)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Convert and print one summary line."""
    from bratseg.io.nnunet import write_brats_dataset, write_nnunet_dataset
    from bratseg.training.data import discover_cases

    refs = discover_cases([args.src])
    if args.to == "nnunet":
        if any(r.mapped for r in refs):  # nnU-Net to nnU-Net: go through BraTS folders
            from bratseg.errors import BratsInputError

            raise BratsInputError("SRC is an nnU-Net dataset already", Path(args.src))
        out = write_nnunet_dataset([r.folder for r in refs], args.dest, name=args.name)
    else:
        from bratseg.io.nifti import load_label_map
        from bratseg.labels import check_convention, detect_convention

        cases = []
        for r in refs:
            labels = (
                check_convention(r.labels)
                if r.labels
                else detect_convention(
                    load_label_map(r.files["seg"]).data, source=str(r.files["seg"])
                )
            )
            cases.append((r.case_id, dict(r.files), labels))
        out = write_brats_dataset(cases, args.dest, args.to.removeprefix("brats"))
    print(f"wrote {out} ({len(refs)} labelled cases, {args.to} layout)")
    return 0
