"""Identity of a case: a hash over the bytes of its image files, not their paths.

:func:`case_key` names a case's saved review session (:mod:`bratseg.review.store`) and its
worklist row (:mod:`bratseg.review.worklist`): a moved or renamed case folder is the same case,
a changed or added series makes another one.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

_CHUNK = 1 << 20


def file_digest(path: str | Path) -> str:
    """sha256 of a file's bytes (of a folder's files, by name, for a DICOM series)."""
    h = hashlib.sha256()
    path = Path(path)
    for item in sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]:
        h.update(item.name.encode())
        with open(item, "rb") as fh:
            for chunk in iter(lambda: fh.read(_CHUNK), b""):
                h.update(chunk)
    return h.hexdigest()


def case_key(files: dict[str, Path]) -> str:
    """Identity of a case: a hash over the bytes of its four image files (T1, T1Gd, T2, FLAIR;
    a series the case lacks counts as ``missing``, so adding it later makes another case).

    Args:
        files: Channel -> file, as in :attr:`bratseg.io.Case.files`.
    """
    from bratseg.io import MODALITIES

    h = hashlib.sha256()
    for m in MODALITIES:
        h.update(f"{m}:{file_digest(files[m]) if m in files else 'missing'};".encode())
    return h.hexdigest()[:24]


__all__ = ["case_key", "file_digest"]
