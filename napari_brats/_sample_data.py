"""npe2 sample data: one real BraTS case, found offline.

Real BraTS scans have their own terms of use, so none is shipped inside the package. The sample
command looks, in order, at:

1. ``$NAPARI_BRATS_SAMPLE`` — a case folder (or a folder holding case folders);
2. ``napari_brats/sample_data/<case>/`` — where an installer may place a case it is allowed to ship;
3. ``../shared/data/brats2018`` next to a source checkout (the project's shared test data).

When none exists it raises an error saying exactly how to point it at a case.
"""

from __future__ import annotations

import os
from pathlib import Path

from bratseg.errors import BratsInputError

from ._layers import LayerDataTuple

#: Environment variable naming a sample case folder.
SAMPLE_ENV = "NAPARI_BRATS_SAMPLE"
#: Preferred case among the shared BraTS 2018 cases (a mid-sized HGG with all three labels).
PREFERRED_CASE = "Brats18_2013_2_1"


def _candidate_roots() -> list[Path]:
    roots = []
    env = os.environ.get(SAMPLE_ENV)
    if env:
        roots.append(Path(env).expanduser())
    here = Path(__file__).resolve().parent
    roots.append(here / "sample_data")
    roots.append(here.parent.parent / "shared" / "data" / "brats2018")
    return roots


def find_sample_case() -> Path:
    """Folder of the sample case.

    Raises:
        BratsInputError: No sample case anywhere; the message says how to provide one.
    """
    from bratseg.io import find_case_files, list_case_folders

    for root in _candidate_roots():
        if not root.is_dir():
            continue
        preferred = root / PREFERRED_CASE
        if preferred.is_dir():
            return preferred
        try:
            folders = list_case_folders(root)
        except BratsInputError:
            continue
        for folder in folders:
            try:
                find_case_files(folder)
            except BratsInputError:
                continue
            return folder
    raise BratsInputError(
        "no sample BraTS case found: BraTS data cannot be shipped with the plugin; set "
        f"{SAMPLE_ENV}=/path/to/a/case_folder (with *_t1, *_t1ce, *_t2, *_flair NIfTI files)"
    )


def load_sample_case() -> list[LayerDataTuple]:
    """npe2 sample-data command: layers of the sample case (images + reference seg)."""
    from ._reader import read_case

    return read_case(str(find_sample_case()))
