"""The one rule every writer of a user-named output follows: never destroy or pollute an input.

:func:`guard_output` is called by every command that writes a file or folder the user named
(``predict -o`` and ``--probabilities``, ``report --pdf``, ``sessions export -o``, the worklist's
export of approved cases), before any work is done:

- an output may never be a file the command reads, even with ``--overwrite``: paths are
  compared resolved (symlinks, ``./`` and ``..`` spellings) and by inode (hard links), and a
  symlink named as output counts as the file it points to;
- an output inside a case folder whose name case discovery would pick up as one of that case's
  channels or its reference label (``<case>_seg.nii.gz``, ``pred_flair.nii.gz``) is refused
  unless the caller allows it explicitly (``--into-case``): such a file would silently become
  the case's "expert" label map or make the case ambiguous.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from bratseg.errors import BratsInputError
from bratseg.io.case_files import match_modality
from bratseg.io.channels import MODALITY_NAMES

__all__ = [
    "INTO_CASE_FLAG",
    "add_into_case_argument",
    "case_input_files",
    "guard_case_outputs",
    "guard_output",
    "same_file",
]

#: The command-line flag that allows a channel or label-map name inside a case folder.
INTO_CASE_FLAG = "--into-case"


def same_file(a: str | Path, b: str | Path) -> bool:
    """Whether ``a`` and ``b`` name one file: same resolved path, or same inode (hard links).

    A path that does not exist is compared by its resolved spelling only.
    """
    a, b = Path(a), Path(b)
    if os.path.realpath(a) == os.path.realpath(b):  # symlinks, ./ and .. spellings
        return True
    if os.path.abspath(a) == os.path.abspath(b):
        return True
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def guard_output(
    output: str | Path,
    inputs: Iterable[str | Path] = (),
    *,
    case_folders: Iterable[str | Path] = (),
    into_case: bool = False,
    what: str = "output",
) -> None:
    """Refuse an output that is an input, or that a case would read as one of its files.

    Args:
        output: The file (or folder) about to be written.
        inputs: Every file the command reads (images, label maps, provenance...).
        case_folders: Case folders involved (the input case); an output whose parent folder is
            one of them, or is any case folder, and whose name is a channel or label-map name
            (see :func:`bratseg.io.case_files.match_modality`) is refused unless ``into_case``.
        into_case: Allow such a name (the user asked for it explicitly).
        what: How the message names the output (``"output"``, ``"probabilities"``, ``"PDF"``).

    Raises:
        BratsInputError: One line naming the output and the input it would replace.
    """
    output = Path(output)
    for source in inputs:
        if same_file(output, source) or _inside(source, output):
            raise BratsInputError(
                f"{what} would replace the input {source}; choose another name "
                "(inputs are never overwritten, even with --overwrite)",
                output,
            )
    if into_case:
        return
    key = match_modality(output.name)
    if key is None:
        return
    parent = output.parent
    in_case = any(same_file(parent, folder) for folder in case_folders)
    if not in_case:
        from bratseg.io.dataset import is_case_folder

        in_case = parent.is_dir() and is_case_folder(parent, allow_missing=True)
    if in_case:
        role = "reference label map" if key == "seg" else f"{MODALITY_NAMES[key]} ({key}) image"
        raise BratsInputError(
            f"{what} lies in the case folder {parent} under a name the case would read as its "
            f"{role}; choose another name or folder (or pass {INTO_CASE_FLAG} to write it there "
            "on purpose)",
            output,
        )


def case_input_files(
    case_folder: str | Path, mapping: Mapping[str, str | Path] | None = None
) -> list[Path]:
    """The files of a case folder that its readers use: four channels and the label map.

    The label map is included even where the command does not read it (``predict``): it is the
    expert's reference and must never be replaced by an output.
    """
    from bratseg.io.case_files import find_case_files

    try:  # a case lacking a series (predicted with a stand-in) still protects the rest
        files = find_case_files(case_folder, mapping, allow_missing=True)
    except BratsInputError:  # e.g. two label maps: still protect the channels
        files = find_case_files(case_folder, mapping, seg=False, allow_missing=True)
    return list(files.values())


def guard_case_outputs(
    case_folder: str | Path,
    outputs: Iterable[tuple[str | Path | None, str]],
    *,
    mapping: Mapping[str, str | Path] | None = None,
    into_case: bool = False,
    extra_inputs: Iterable[str | Path | None] = (),
) -> None:
    """:func:`guard_output` for each ``(path, what)`` of ``outputs`` (``None`` paths skipped),
    against the files of ``case_folder`` and ``extra_inputs``.

    Raises:
        BratsInputError: See :func:`guard_output`.
    """
    inputs = [*case_input_files(case_folder, mapping), *(p for p in extra_inputs if p)]
    for path, what in outputs:
        if path is not None:
            guard_output(path, inputs, case_folders=[case_folder], into_case=into_case, what=what)


def add_into_case_argument(parser: Any) -> None:
    """Add :data:`INTO_CASE_FLAG` to a command's :class:`argparse.ArgumentParser`."""
    parser.add_argument(
        INTO_CASE_FLAG,
        action="store_true",
        help="allow an output inside a case folder under a name the case then reads as a channel "
        "or as its reference label map (e.g. CASE/CASE_seg.nii.gz); inputs are never replaced",
    )


def _inside(path: str | Path, folder: Path) -> bool:
    """Whether ``path`` lies inside ``folder`` (resolved), so replacing the folder loses it."""
    return os.path.realpath(path).startswith(os.path.realpath(folder) + os.sep)
