"""Pick the four series (T1, T1Gd, T2, FLAIR) of a raw study folder.

An explicit mapping wins; then BraTS-style file endings and DICOM series descriptions (see
:func:`bratseg.io.find_case_files`); then the protocol words in a NIfTI file's name (``FLAIR``,
``POST_GAD``, ``T2``, ...). Two candidates for one channel are never guessed between: the error
names them and asks for ``--map``.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from bratseg.errors import BratsInputError
from bratseg.io import MODALITIES, MODALITY_NAMES, find_case_files, match_modality
from bratseg.io.dicom import channel_of_description
from bratseg.io.nifti import is_nifti_name, strip_nifti_suffix


def pick_series(
    folder: str | Path, mapping: Mapping[str, str | Path] | None = None
) -> dict[str, Path]:
    """Channel -> series file (or DICOM series folder) of a raw study folder.

    Raises:
        BratsInputError: Folder missing, a channel with no or several candidates (naming them).
    """
    folder = Path(folder)
    try:
        return {k: v for k, v in find_case_files(folder, mapping, seg=False).items() if k != "seg"}
    except BratsInputError as exc:
        if not folder.is_dir() or "missing" not in exc.reason:
            raise
    files = find_case_files_partial(folder, mapping)
    unmatched = [
        p
        for p in sorted(folder.iterdir())
        if p.is_file()
        and is_nifti_name(p.name)
        and p not in files.values()
        and match_modality(p.name) is None
    ]
    candidates: dict[str, list[Path]] = {}
    for path in unmatched:
        channel = channel_of_description(strip_nifti_suffix(path.name).replace("_", " "))
        if channel is not None and channel not in files:
            candidates.setdefault(channel, []).append(path)
    for channel, paths in candidates.items():
        if len(paths) > 1:
            names = ", ".join(p.name for p in paths)
            raise BratsInputError(
                f"several series look like {MODALITY_NAMES[channel]}: {names}; "
                f"pass --map {channel}=FILE",
                folder,
            )
        files[channel] = paths[0]
    missing = [m for m in MODALITIES if m not in files]
    if missing:
        raise BratsInputError(
            f"no series found for {', '.join(MODALITY_NAMES[m] for m in missing)}; "
            f"pass --map {missing[0]}=FILE (channels t1, t1ce, t2, flair)",
            folder,
        )
    return {m: files[m] for m in MODALITIES}


def find_case_files_partial(
    folder: Path, mapping: Mapping[str, str | Path] | None
) -> dict[str, Path]:
    """The channels that the mapping and BraTS-style endings give, without requiring all four."""
    files: dict[str, Path] = {}
    if mapping:
        from bratseg.io.case_files import explicit_files

        files.update(explicit_files(folder, mapping))
    found: dict[str, list[Path]] = {}
    for entry in sorted(folder.iterdir()):
        key = match_modality(entry.name)
        if key in MODALITIES and key not in files and entry.is_file():
            found.setdefault(key, []).append(entry)
    for key, paths in found.items():
        if len(paths) > 1:
            names = ", ".join(p.name for p in paths)
            raise BratsInputError(
                f"several series look like {MODALITY_NAMES[key]}: {names}; pass --map {key}=FILE",
                folder,
            )
        files[key] = paths[0]
    return files
