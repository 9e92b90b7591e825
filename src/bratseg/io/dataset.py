"""Collections of case folders (a BraTS training set, a folder of patients)."""

from __future__ import annotations

from pathlib import Path

from bratseg.errors import BratsInputError
from bratseg.io.case import find_case_files, match_modality


def is_case_folder(folder: str | Path) -> bool:
    """Whether ``folder`` holds the four MRI channels under recognised names (nothing is read)."""
    try:
        find_case_files(folder, seg=False)
    except BratsInputError:
        return False
    return True


def list_case_folders(root: str | Path) -> list[Path]:
    """Case folders directly under ``root`` (sorted by name), or ``[root]`` if it is a case.

    Sub-folders whose files are not recognisable as a case (missing channel, ambiguous names)
    are skipped.

    Args:
        root: A case folder or a folder of case folders.

    Returns:
        List of case folders; empty when none is found.

    Raises:
        BratsInputError: ``root`` is missing or not a folder.
    """
    root = Path(root)
    if not root.is_dir():
        raise BratsInputError("folder not found" if not root.exists() else "not a folder", root)
    if is_case_folder(root):
        return [root]
    return [p for p in sorted(root.iterdir()) if p.is_dir() and is_case_folder(p)]


def scan_case_folders(root: str | Path) -> list[tuple[Path, BratsInputError | None]]:
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
    if is_case_folder(root):
        return [(root, None)]
    out: list[tuple[Path, BratsInputError | None]] = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        try:
            find_case_files(folder, seg=False)
        except BratsInputError as exc:
            entries = [e for e in folder.iterdir() if not e.name.startswith(".")]
            if any(match_modality(e.name) for e in entries) or any(e.is_dir() for e in entries):
                out.append((folder, exc))
            continue
        out.append((folder, None))
    return out
