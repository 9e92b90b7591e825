"""``napari-brats sample DEST_DIR``: write the packaged sample case and print its folder."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``sample`` command."""
    p = subparsers.add_parser(
        "sample",
        help="write the sample BraTS case shipped with the package into a folder",
        description="Copy the packaged sample case (Brats18_TCIA02_135_1, a TCIA-derived BraTS 2018 "
        "training case, CC BY 3.0, cropped to its brain box; see ATTRIBUTION.md in it) into DEST_DIR "
        "and print the case folder. The bundled models were trained on this case.",
    )
    p.add_argument(
        "dest", metavar="DEST_DIR", help="folder to write the case folder into (created)"
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Write the case; print its folder."""
    from bratseg.sample import write_sample

    print(write_sample(args.dest))
    return 0
