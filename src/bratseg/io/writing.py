"""Atomic NIfTI writing in the source geometry.

Every write goes through :func:`bratseg.atomic.atomic_write` (hidden temporary file in the
destination folder, fsync, :func:`os.replace`, folder fsync): the destination is either the old
file or the complete new one, never a partial file.
"""

from __future__ import annotations

import gzip
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any, cast

import nibabel as nib
import numpy as np
from nibabel.spatialimages import HeaderDataError

from bratseg.atomic import atomic_write_all
from bratseg.errors import BratsInputError
from bratseg.io.nifti import is_nifti_name
from bratseg.labels import Convention, check_convention, convert_labels

logger = logging.getLogger(__name__)

#: Data types a NIfTI-1 file can hold that we write as they are.
_WRITABLE_DTYPES = {
    np.dtype(t)
    for t in (
        np.uint8,
        np.int8,
        np.int16,
        np.uint16,
        np.int32,
        np.uint32,
        np.int64,
        np.uint64,
        np.float32,
        np.float64,
    )
}


def write_nifti_atomic(
    array: np.ndarray,
    affine: np.ndarray,
    header: nib.Nifti1Header | None,
    path: str | Path,
    *,
    overwrite: bool = False,
    dtype: np.dtype | type | str | None = None,
) -> Path:
    """Write ``array`` as NIfTI in the given geometry, atomically.

    The header is copied (so orientation codes, units and description carry over), the data
    type set to ``dtype`` (default: the array's; bool becomes uint8 and float16 float32 since
    NIfTI has neither) and scaling reset (slope 1, intercept 0) so values are stored exactly.
    The file is first written to a hidden temporary file in the same folder, flushed and
    fsync'ed, then renamed over ``path``; on any failure the temporary file is removed and an
    existing ``path`` is left untouched.

    Args:
        array: Voxel data, shape (X, Y, Z) (or (X, Y, Z, C)).
        affine: (4, 4) voxel-to-world matrix.
        header: Source NIfTI header to copy, or ``None`` for a fresh one.
        path: Destination, ending in ``.nii`` or ``.nii.gz`` (the latter is gzip-compressed).
        overwrite: Replace an existing file.
        dtype: Type stored on disk. Integer types require integer values within range.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.

    Raises:
        BratsInputError: Existing file without ``overwrite``, missing folder, bad file name,
            values that do not fit ``dtype``, or an OS error while writing.
    """
    path = Path(path)
    write_nifti_group([(array, path, dtype)], affine, header, overwrite=overwrite)
    return path


def write_nifti_group(
    items: Sequence[tuple[np.ndarray, str | Path, np.dtype | type | str | None]],
    affine: np.ndarray,
    header: nib.Nifti1Header | None,
    *,
    overwrite: bool = False,
) -> list[Path]:
    """Write several NIfTI files in one geometry, all or nothing (e.g. labels and probabilities).

    Each ``(array, path, dtype)`` is written as by :func:`write_nifti_atomic`; every file is
    complete in its hidden temporary file before the first is put in place
    (:func:`bratseg.atomic.atomic_write_all`), so a failure (disk full, a file that appeared
    meanwhile, an interrupt) leaves none of them.

    Returns:
        The paths written.

    Raises:
        BratsInputError: See :func:`write_nifti_atomic`, naming the file that failed.
    """
    paths = [Path(p) for _a, p, _d in items]
    for path in paths:
        check_nifti_destination(path, overwrite)
    images = [_nifti_image(a, affine, header, d, p) for (a, _p, d), p in zip(items, paths)]
    current = paths[0]
    try:
        with atomic_write_all(paths, overwrite=overwrite) as handles:
            for img, path, fh in zip(images, paths, handles):
                current = path
                _encode(img, path, fh)
    except (OSError, HeaderDataError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
        failed = Path(exc.filename) if isinstance(exc, OSError) and exc.filename else current
        raise BratsInputError(f"cannot write file ({reason})", failed) from None
    for path in paths:
        logger.info("wrote %s", path)
    return paths


def _nifti_image(
    array: np.ndarray,
    affine: np.ndarray,
    header: nib.Nifti1Header | None,
    dtype: np.dtype | type | str | None,
    path: Path,
) -> nib.Nifti1Image:
    """The image to write: header copied, data type set, scaling reset (values stored exactly)."""
    data = _cast_for_writing(np.asanyarray(array), dtype, path)
    hdr = header.copy() if header is not None else None
    try:
        img = nib.Nifti1Image(data, np.asarray(affine, dtype=np.float64), hdr)
        img.set_data_dtype(data.dtype)
    except HeaderDataError as exc:
        raise BratsInputError(f"cannot write file ({exc})", path) from None
    img.header.set_slope_inter(1.0, 0.0)
    if data.dtype.kind in "iu" and data.size:
        img.header["cal_min"] = float(data.min())
        img.header["cal_max"] = float(data.max())
    return img


def _encode(img: nib.Nifti1Image, path: Path, fh: Any) -> None:
    """Write ``img``'s bytes to the open file ``fh`` (gzip-compressed for a ``.gz`` name)."""
    if path.name.lower().endswith(".gz"):
        # compresslevel 1 like nibabel's default; mtime 0 for reproducible bytes.
        with gzip.GzipFile(filename="", mode="wb", fileobj=fh, compresslevel=1, mtime=0) as stream:
            img.to_file_map({"image": nib.FileHolder(fileobj=cast(Any, stream))})
    else:
        img.to_file_map({"image": nib.FileHolder(fileobj=cast(Any, fh))})


def save_label_map(
    labels: np.ndarray,
    path: str | Path,
    *,
    affine: np.ndarray,
    header: nib.Nifti1Header | None,
    convention: Convention = "2021",
    src_convention: Convention = "2021",
    overwrite: bool = False,
    drop_rc: bool = False,
) -> Path:
    """Save a label map as uint8 NIfTI in the source geometry and the chosen convention.

    Args:
        labels: Integer label map of shape (X, Y, Z) in ``src_convention``.
        path: Destination ``.nii`` / ``.nii.gz``.
        affine: (4, 4) matrix of the source image.
        header: Header of the source image (copied).
        convention: Convention written to disk.
        src_convention: Convention of ``labels``.
        overwrite: Replace an existing file.
        drop_rc: Write a resection cavity as background when ``convention`` has no RC label.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.

    Raises:
        BratsInputError: See :func:`write_nifti_atomic`; also a label map that is not 3D.
    """
    out = labels_for_writing(labels, path, convention, src_convention, drop_rc=drop_rc)
    return write_nifti_atomic(out, affine, header, path, overwrite=overwrite, dtype=np.uint8)


def labels_for_writing(
    labels: np.ndarray,
    path: str | Path,
    convention: Convention = "2021",
    src_convention: Convention = "2021",
    *,
    drop_rc: bool = False,
) -> np.ndarray:
    """The (X, Y, Z) label map as :func:`save_label_map` stores it at ``path`` (in ``convention``).

    Raises:
        BratsInputError: A label map that is not 3D or not integer (naming ``path``).
    """
    labels = np.asarray(labels)
    if labels.ndim != 3:
        raise BratsInputError(f"label map must be 3D, got shape {labels.shape}", path)
    if labels.dtype.kind not in "biu":
        raise BratsInputError(f"label map must be integer, got {labels.dtype}", path)
    return convert_labels(
        labels, check_convention(src_convention), check_convention(convention), drop_rc=drop_rc
    )


# --------------------------------------------------------------------------- helpers


def check_nifti_destination(path: str | Path, overwrite: bool, what: str = "output") -> None:
    """Refuse a NIfTI output path before any work is done: the one check of every writer.

    Args:
        path: The file to be written.
        overwrite: Whether an existing file may be replaced.
        what: How the message names the file (``"output"``, ``"probabilities"``).

    Raises:
        BratsInputError: Not a ``.nii``/``.nii.gz`` name, a folder, a missing parent folder, or
            an existing file without ``overwrite``.
    """
    path = Path(path)
    if not is_nifti_name(path.name):
        raise BratsInputError(f"{what} file name must end in .nii or .nii.gz", path)
    if path.is_dir():
        raise BratsInputError(f"{what} is a folder, expected a file name", path)
    if not path.parent.is_dir():
        raise BratsInputError(f"{what} folder does not exist", path.parent)
    if path.exists() and not overwrite:
        raise BratsInputError(
            f"{what} file exists; refusing to overwrite it (pass --overwrite to replace it)", path
        )


def _cast_for_writing(data: np.ndarray, dtype, path: Path) -> np.ndarray:
    target = np.dtype(dtype) if dtype is not None else data.dtype
    if target == np.bool_:
        target = np.dtype(np.uint8)
    elif target == np.float16:
        target = np.dtype(np.float32)
    if target not in _WRITABLE_DTYPES:
        raise BratsInputError(f"cannot store data of type {target} in NIfTI", path)
    if data.dtype.kind not in "biuf":
        raise BratsInputError(f"cannot store data of type {data.dtype} in NIfTI", path)
    if target.kind in "iu" and data.dtype != target and data.size:
        if data.dtype.kind == "f" and not np.array_equal(data, np.round(data)):
            raise BratsInputError(f"non-integer values cannot be stored as {target}", path)
        info = np.iinfo(target)
        if data.min() < info.min or data.max() > info.max:
            raise BratsInputError(f"values {data.min()}..{data.max()} do not fit in {target}", path)
    return data.astype(target, copy=False)
