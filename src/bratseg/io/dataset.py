"""Collections of case folders: reading them (a BraTS training set, a folder of patients), and
the layout a reviewed case is exported in (:mod:`bratseg.review.export` writes it).

Export layout (the one the trainer reads, BraTS 2017-2021 names)::

    <dataset>/<case>/<case>_t1.nii.gz, _t1ce, _t2, _flair   images (copied, hard- or sym-linked)
    <dataset>/<case>/<case>_seg.nii.gz                       corrected labels, chosen convention
    <dataset>/<case>/<case>_aiproposal.nii.gz                the AI proposal before correction
    <dataset>/<case>/<case>_provenance.json                  model, checksums, settings, edits

``*_aiproposal`` does not end in ``_seg``, so case discovery never mistakes it for the label map.
Everything is first written into a hidden temporary folder beside the target, then moved into
place, so an interrupted export never leaves a half-written case; an existing export is only
replaced when ``overwrite=True``.

The provenance JSON records where the case came from, the model(s) (names, checkpoints, sha256),
the postprocessing settings, the hand-edited voxels per label and, for a signed-off review, the
approval (reviewer, UTC time) and the whole sign-off history (:mod:`bratseg.review.signoff`).
The layout's names and link modes live here, beside the readers; the readers here and the trainer
(:func:`bratseg.training.data.discover_cases`) read what
:func:`bratseg.review.export.export_case` writes.
"""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path
from typing import Literal

from bratseg.errors import BratsInputError
from bratseg.io.case_files import find_case_files, match_modality

logger = logging.getLogger(__name__)


def is_case_folder(folder: str | Path, *, allow_missing: bool = False) -> bool:
    """Whether ``folder`` holds the four MRI channels under recognised names (nothing is read;
    with ``allow_missing``, a series may lack whose stand-in is there)."""
    try:
        find_case_files(folder, seg=False, allow_missing=allow_missing)
    except BratsInputError:
        return False
    return True


def list_case_folders(root: str | Path, *, allow_missing: bool = False) -> list[Path]:
    """Case folders directly under ``root`` (sorted by name), or ``[root]`` if it is a case.

    Sub-folders whose files are not recognisable as a case (missing channel, ambiguous names)
    are skipped.

    Args:
        root: A case folder or a folder of case folders.
        allow_missing: Count a folder that lacks a series whose stand-in is there as a case
            (see :func:`bratseg.io.find_case_files`).

    Returns:
        List of case folders; empty when none is found.

    Raises:
        BratsInputError: ``root`` is missing or not a folder.
    """
    root = Path(root)
    if not root.is_dir():
        raise BratsInputError("folder not found" if not root.exists() else "not a folder", root)
    if is_case_folder(root, allow_missing=allow_missing):
        return [root]
    return [
        p
        for p in sorted(root.iterdir())
        if p.is_dir() and is_case_folder(p, allow_missing=allow_missing)
    ]


def scan_case_folders(
    root: str | Path, *, allow_missing: bool = False
) -> list[tuple[Path, BratsInputError | None]]:
    """Every folder under ``root`` that looks like a case, with why it cannot be used if so.

    Like :func:`list_case_folders`, but a sub-folder holding at least one file with a BraTS
    channel name (or a sub-folder of its own: DICOM series) that is still not a usable case is
    listed too, with the one-line error of :func:`bratseg.io.find_case_files` (missing channel,
    ambiguous names). Hidden folders are ignored.

    Args:
        root: A case folder or a folder of case folders.

    Returns:
        ``(folder, error)`` pairs sorted by name; ``error`` is None for a usable case.

    Raises:
        BratsInputError: ``root`` is missing or not a folder.
    """
    root = Path(root)
    if not root.is_dir():
        raise BratsInputError("folder not found" if not root.exists() else "not a folder", root)
    if is_case_folder(root, allow_missing=allow_missing):
        return [(root, None)]
    out: list[tuple[Path, BratsInputError | None]] = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        try:
            find_case_files(folder, seg=False, allow_missing=allow_missing)
        except BratsInputError as exc:
            entries = [e for e in folder.iterdir() if not e.name.startswith(".")]
            if any(match_modality(e.name) for e in entries) or any(e.is_dir() for e in entries):
                out.append((folder, exc))
            continue
        out.append((folder, None))
    return out


# --- the layout of an exported case (written by bratseg.review.export) ---------------------

LinkMode = Literal["copy", "hardlink", "symlink"]
LINK_MODES: tuple[str, ...] = ("copy", "hardlink", "symlink")
#: Suffix of the AI proposal file (deliberately not ``_seg``).
AI_SUFFIX = "aiproposal"


class ExportExistsError(FileExistsError):
    """The case already exists in the dataset folder and overwriting was not allowed."""


def place_image(source: Path, target: Path, link: LinkMode) -> str:
    """Put one image at ``target`` (``.nii.gz``); returns how it was placed (``"copy"``,
    ``"hardlink"``, ``"symlink"`` or ``"converted"`` when a ``.nii`` was recompressed)."""
    if not source.name.lower().endswith(".nii.gz"):
        import nibabel as nib

        nib.save(nib.load(str(source)), str(target))  # recompress .nii -> .nii.gz
        return "converted"
    if link == "symlink":
        os.symlink(source.resolve(), target)
        return "symlink"
    if link == "hardlink":
        try:
            os.link(source, target)
            return "hardlink"
        except OSError as exc:  # other filesystem, or links not allowed
            logger.info("hard link failed (%s), copying %s", exc, source)
    shutil.copy2(source, target)
    return "copy"
