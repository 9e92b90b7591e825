"""Collections of case folders (a BraTS training set, a folder of patients)."""

from __future__ import annotations

from pathlib import Path

from bratseg.errors import BratsInputError
from bratseg.io.case import find_case_files


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
