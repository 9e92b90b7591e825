"""Which files of a case folder are its four MRI series and its label map (nothing is read).

Recognised file names (case-insensitive, ``.nii`` or ``.nii.gz``), matched on the end of the
name so that ``_t1`` never matches ``_t1ce``:

========  =====================  ==================
channel   BraTS 2017-2021        BraTS 2023+
========  =====================  ==================
t1        ``*_t1``               ``*-t1n``
t1ce      ``*_t1ce``             ``*-t1c``
t2        ``*_t2``               ``*-t2w``
flair     ``*_flair``            ``*-t2f``
seg       ``*_seg``              ``*-seg``
========  =====================  ==================

Either separator (``_`` or ``-``) is accepted with either naming, as are the clinical names
``t1gd``, ``t1post`` and ``t1_post`` for T1Gd and a bare name such as ``flair.nii.gz``.
Anything else needs an explicit mapping, e.g. ``{"flair": "X_fla_bet.nii.gz"}`` (relative to the case folder, or absolute).

"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

from bratseg.errors import BratsInputError
from bratseg.io.channels import MODALITIES, MODALITY_NAMES, NAME_TOKENS, SUBSTITUTES
from bratseg.io.nifti import is_nifti_name, strip_nifti_suffix

_ALIASES = {tok: key for key, toks in NAME_TOKENS.items() for tok in toks}


def match_modality(filename: str) -> str | None:
    """Which channel (``t1`` ... ``flair``) or ``"seg"`` a file name denotes by BraTS naming.

    Returns:
        The key, or ``None`` when the name is not a recognised NIfTI name.
    """
    if not is_nifti_name(filename) or filename.startswith("."):
        return None
    parts = re.split(r"[_-]", strip_nifti_suffix(filename).lower())
    if len(parts) >= 2 and f"{parts[-2]}_{parts[-1]}" in _ALIASES:  # two-word names: t1_post
        return _ALIASES[f"{parts[-2]}_{parts[-1]}"]
    return _ALIASES.get(parts[-1])


def find_case_files(
    folder: str | Path,
    mapping: Mapping[str, str | Path] | None = None,
    *,
    seg: bool = True,
    allow_missing: bool = False,
) -> dict[str, Path]:
    """Find the files of a case folder without reading them.

    Args:
        folder: Case folder.
        mapping: Optional explicit channel -> file (``t1``, ``t1ce``, ``t2``, ``flair``,
            ``seg``; BraTS 2023 names such as ``t2f`` accepted as keys). Relative paths are
            taken relative to ``folder``. Channels not in the mapping are found by name.
        seg: Also look for the label map; ``False`` ignores seg files (and their ambiguity).
        allow_missing: Accept a case that lacks a series whose stand-in
            (:data:`~bratseg.io.channels.SUBSTITUTES`) is there; the missing one is left out.

    Returns:
        Channel -> file for the four channels (fewer with ``allow_missing``), plus ``"seg"``
        when a label map is present.

    Raises:
        BratsInputError: Folder missing, a channel missing (naming the names looked for),
            two files for one channel, or a mapped file that does not exist.
    """
    folder = Path(folder)
    if not folder.exists():
        raise BratsInputError("case folder not found", folder)
    if not folder.is_dir():
        raise BratsInputError("expected a case folder holding the four MRI files", folder)
    files = explicit_files(folder, mapping or {})
    found: dict[str, list[Path]] = {}
    for entry in sorted(folder.iterdir()):
        key = match_modality(entry.name)
        if key is not None and key not in files and entry.is_file() and (seg or key != "seg"):
            found.setdefault(key, []).append(entry)
    for key, paths in found.items():
        if len(paths) > 1:
            names = ", ".join(p.name for p in paths)
            raise BratsInputError(
                f"ambiguous {_display(key)} files: {names}; pass an explicit mapping", folder
            )
        files[key] = paths[0]
    if any(m not in files for m in MODALITIES):  # DICOM series sub-folders, by SeriesDescription
        from bratseg.io.dicom import find_dicom_channels

        files.update(find_dicom_channels(folder, files))
    missing = [m for m in MODALITIES if m not in files]
    unknown = _unrecognised_entries(folder, files) if missing else []
    if allow_missing and not unknown:  # a series named otherwise is never taken for missing
        missing = [m for m in missing if SUBSTITUTES[m] not in files]
    if missing:
        m = missing[0]
        looked = ", ".join(f"*_{t}, *-{t}" for t in NAME_TOKENS[m])
        if unknown:
            hint = f" (not recognised here: {', '.join(unknown[:4])})"
        elif allow_missing:
            hint = f" (a case needs {MODALITY_NAMES[m]} or {MODALITY_NAMES[SUBSTITUTES[m]]})"
        else:
            hint = ""
        raise BratsInputError(
            f"missing {MODALITY_NAMES[m]} ({m}) image: looked for {looked} "
            f"(.nii or .nii.gz); pass an explicit mapping for other names{hint}",
            folder,
        )
    return {k: files[k] for k in (*MODALITIES, "seg") if k in files}


def _display(key: str) -> str:
    return f"{MODALITY_NAMES[key]} ({key})" if key in MODALITY_NAMES else "label map (seg)"


def _unrecognised_entries(folder: Path, files: Mapping[str, Path]) -> list[str]:
    """Names of NIfTI files and sub-folders (DICOM series) of ``folder`` that are none of the
    case's files: a missing series may be one of them under another name."""
    used = {Path(f).resolve() for f in files.values()}
    return [
        entry.name
        for entry in sorted(folder.iterdir())
        if not entry.name.startswith(".")
        and entry.resolve() not in used
        and (entry.is_dir() or (is_nifti_name(entry.name) and match_modality(entry.name) is None))
    ]


def explicit_files(folder: Path, mapping: Mapping[str, str | Path]) -> dict[str, Path]:
    """Channel -> file of an explicit mapping (keys as :func:`find_case_files` takes them)."""
    files: dict[str, Path] = {}
    for raw_key, value in mapping.items():
        key = _ALIASES.get(str(raw_key).lower().strip())
        if key is None:
            raise BratsInputError(
                f"unknown channel {raw_key!r} in mapping; use one of "
                f"{', '.join((*MODALITIES, 'seg'))}"
            )
        if key in files:
            raise BratsInputError(f"channel {key} given twice in mapping")
        file = Path(value).expanduser()
        if not file.is_absolute():
            file = folder / file
        if not (file.is_file() or file.is_dir()):  # a folder: a DICOM series
            raise BratsInputError(f"mapped {_display(key)} file not found", file)
        files[key] = file
    return files
