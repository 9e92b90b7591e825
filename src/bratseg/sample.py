"""The sample case shipped inside the package, so a plain install has a real case to open.

One BraTS 2018 training case from a TCIA collection (CC BY 3.0; see ``ATTRIBUTION.md`` beside it),
cropped losslessly to its brain box. ``$NAPARI_BRATS_SAMPLE`` (a case folder, or a folder of case
folders) overrides it.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from bratseg.errors import BratsInputError

#: Environment variable naming another sample case folder.
SAMPLE_ENV = "NAPARI_BRATS_SAMPLE"
#: The packaged case.
SAMPLE_CASE_ID = "Brats18_TCIA02_135_1"
PACKAGED_SAMPLE = Path(__file__).resolve().parent / "sample_data" / SAMPLE_CASE_ID


def sample_case_dir() -> Path:
    """Folder of the sample case: ``$NAPARI_BRATS_SAMPLE`` when set, else the packaged case.

    Raises:
        BratsInputError: The variable names no usable case folder, or the packaged case is
            missing from this installation; the message says how to provide one.
    """
    from bratseg.io import find_case_files, list_case_folders

    env = os.environ.get(SAMPLE_ENV)
    if env:
        root = Path(env).expanduser()
        try:
            find_case_files(root)
            return root
        except BratsInputError:
            pass
        try:
            for folder in list_case_folders(root):
                try:
                    find_case_files(folder)
                    return folder
                except BratsInputError:
                    continue
        except BratsInputError:
            pass
        raise BratsInputError(
            f"${SAMPLE_ENV} names no BraTS case folder (with *_t1, *_t1ce, *_t2, "
            "*_flair NIfTI files)",
            root,
        )
    if PACKAGED_SAMPLE.is_dir():
        return PACKAGED_SAMPLE
    raise BratsInputError(
        f"the sample case is missing from this installation ({PACKAGED_SAMPLE}); set "
        f"{SAMPLE_ENV}=/path/to/a/case_folder"
    )


def write_sample(dest: str | Path) -> Path:
    """Copy the sample case folder into ``dest`` (created); returns the new case folder.

    Raises:
        BratsInputError: ``dest`` is a file, or the case folder already exists there.
    """
    dest = Path(dest).expanduser()
    if dest.exists() and not dest.is_dir():
        raise BratsInputError("destination is a file, expected a folder", dest)
    source = sample_case_dir()
    target = dest / source.name
    if target.exists():
        raise BratsInputError(
            "the sample case folder exists there already; refusing to overwrite", target
        )
    dest.mkdir(parents=True, exist_ok=True)
    tmp = dest / f".{source.name}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(source, tmp)
    tmp.rename(target)  # the case folder appears complete or not at all
    return target
