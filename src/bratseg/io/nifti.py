"""NIfTI reading and validation (writing lives in :mod:`bratseg.io.writing`).

Every read is forced at load time (nibabel maps files lazily), so a truncated or corrupt
``.nii.gz`` is reported here, naming the file, and never later in the middle of inference.
"""

from __future__ import annotations

import gzip
import logging
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import nibabel as nib
import numpy as np
from nibabel.filebasedimages import ImageFileError
from nibabel.openers import ImageOpener
from nibabel.spatialimages import HeaderDataError

from bratseg.errors import BratsInputError

logger = logging.getLogger(__name__)

#: Largest number of voxels accepted in one volume (1024^3: 4 GiB as float32). Real MRI series
#: are far smaller (BraTS 240 x 240 x 155 = 8.9 million); a larger declared shape is a damaged
#: or hostile header and is refused before anything is allocated.
MAX_VOLUME_VOXELS = 1024**3

#: |det| of the affine's 3 x 3 part, relative to the product of its column lengths, below which
#: the voxel axes are taken as degenerate (linearly dependent).
_SINGULAR_TOLERANCE = 1e-6

#: File name endings recognised as NIfTI.
NIFTI_SUFFIXES: tuple[str, ...] = (".nii.gz", ".nii")


def is_nifti_name(path: str | Path) -> bool:
    """Whether ``path`` ends in ``.nii`` or ``.nii.gz`` (case-insensitive)."""
    return str(path).lower().endswith(NIFTI_SUFFIXES)


def strip_nifti_suffix(name: str) -> str:
    """File name without its ``.nii`` / ``.nii.gz`` ending (unchanged if it has neither)."""
    lower = name.lower()
    for suffix in NIFTI_SUFFIXES:
        if lower.endswith(suffix):
            return name[: -len(suffix)]
    return name


def open_nifti(path: str | Path) -> nib.Nifti1Image:
    """Open a NIfTI file lazily and check it is a 3D NIfTI image (header only, no voxel read).

    Args:
        path: A ``.nii`` or ``.nii.gz`` file.

    Returns:
        The (lazy) nibabel image; use ``img.shape[:3]`` as its spatial shape.

    Raises:
        BratsInputError: Missing file, folder instead of file, not NIfTI, unreadable header,
            not 3D (a trailing axis of length 1 is accepted).
    """
    path = Path(path)
    if not path.exists():
        raise BratsInputError("file not found", path)
    if path.is_dir():
        from bratseg.io.dicom import is_dicom_folder, read_dicom_series

        if is_dicom_folder(path):  # a DICOM series folder: read into an in-memory NIfTI image
            return read_dicom_series(path)
        raise BratsInputError(
            "is a folder, expected a NIfTI file (.nii or .nii.gz) or a DICOM series folder", path
        )
    try:
        with open(path, "rb") as fh:
            magic = fh.read(2)
    except OSError as exc:  # e.g. PermissionError: no read permission
        raise BratsInputError(f"cannot read file ({exc.strerror or exc})", path) from None
    if path.name.lower().endswith(".gz") and magic != b"\x1f\x8b":
        raise BratsInputError("not a gzip file although named .gz (corrupt or not NIfTI)", path)
    _check_declared_voxel_size(path)  # before nibabel's load silently takes 0 mm as 1 mm
    try:
        img = nib.load(str(path))
    except (EOFError, zlib.error, gzip.BadGzipFile) as exc:
        raise BratsInputError(f"truncated or corrupt file ({exc})", path) from None
    except (ImageFileError, HeaderDataError) as exc:
        raise BratsInputError(f"not a readable NIfTI file ({_first_line(exc)})", path) from None
    except OSError as exc:
        raise BratsInputError(f"cannot read file ({exc.strerror or exc})", path) from None
    except (ValueError, TypeError) as exc:  # garbage headers can fail deep inside nibabel
        raise BratsInputError(f"not a readable NIfTI file ({_first_line(exc)})", path) from None
    if not isinstance(img, nib.Nifti1Image):  # Nifti2Image is a subclass
        raise BratsInputError(
            f"not a NIfTI file (nibabel reads it as {type(img).__name__}); "
            "expected .nii or .nii.gz",
            path,
        )
    shape = img.shape
    if not (len(shape) == 3 or (len(shape) == 4 and shape[3] == 1)):
        raise BratsInputError(
            f"expected a 3D volume, found {len(shape)}D with shape {tuple(shape)}", path
        )
    if np.dtype(img.get_data_dtype()).kind not in "biuf":
        raise BratsInputError(f"unsupported voxel type {img.get_data_dtype()}", path)
    check_geometry_header(shape[:3], img.affine, path)
    return img


def check_geometry_header(shape: Sequence[int], affine: np.ndarray, path: str | Path) -> None:
    """Refuse a declared size or voxel-to-world matrix no real scan has, before any allocation.

    Args:
        shape: Declared spatial shape (X, Y, Z).
        affine: (4, 4) voxel-to-world matrix from the header.
        path: File named in the message.

    Raises:
        BratsInputError: More than :data:`MAX_VOLUME_VOXELS` voxels, a non-finite affine, or a
            singular one (a voxel axis of zero length, or two axes along one direction).
    """
    voxels = int(np.prod([int(s) for s in shape], dtype=object))
    if voxels > MAX_VOLUME_VOXELS:
        raise BratsInputError(
            f"declared shape {tuple(int(s) for s in shape)} holds {voxels:.3g} voxels, more than "
            f"the limit of {MAX_VOLUME_VOXELS:.3g} for one MRI volume (damaged header?)",
            path,
        )
    matrix = np.asarray(affine, dtype=np.float64)
    if not np.all(np.isfinite(matrix)):
        raise BratsInputError(
            "the voxel-to-world matrix (affine: sform/qform) holds non-finite values (NaN or "
            "infinity); the header is damaged",
            path,
        )
    axes = matrix[:3, :3]
    lengths = np.linalg.norm(axes, axis=0)
    if np.any(lengths == 0.0) or abs(np.linalg.det(axes)) <= _SINGULAR_TOLERANCE * float(
        np.prod(lengths)
    ):
        raise BratsInputError(
            "the voxel-to-world matrix (affine: sform/qform) is singular: a voxel axis has zero "
            "length or two axes point the same way; the header is damaged",
            path,
        )


def read_volume(
    img: nib.Nifti1Image, path: str | Path, out: np.ndarray | None = None
) -> np.ndarray:
    """Read all voxels of ``img`` as float32, forcing the (lazy) read now.

    Raw values are read in their on-disk type and cast straight into ``out``, then scaled in
    place, so no float64 copy is ever made.

    Args:
        img: Image from :func:`open_nifti`.
        path: File name used in error messages.
        out: Optional float32 array of shape (X, Y, Z) to fill (e.g. one channel of a
            preallocated (4, X, Y, Z) case array).

    Returns:
        float32 array of shape (X, Y, Z) (``out`` when given).

    Raises:
        BratsInputError: Truncated/corrupt file or non-finite voxels (count given).
    """
    raw = _read_raw(img, path)
    if out is None:
        out = np.empty(raw.shape, dtype=np.float32)
    np.copyto(out, raw, casting="unsafe")
    del raw
    slope, inter = _slope_inter(img)
    if slope != 1.0:
        out *= np.float32(slope)
    if inter != 0.0:
        out += np.float32(inter)
    bad = out.size - int(np.count_nonzero(np.isfinite(out)))
    if bad:
        raise BratsInputError(f"{bad} non-finite voxel(s) (NaN or infinity)", path)
    return out


def voxel_spacing(header: nib.Nifti1Header) -> tuple[float, float, float]:
    """Voxel size in mm of the first three axes of a NIfTI header."""
    zooms = header.get_zooms()[:3]
    return tuple(float(z) for z in zooms)  # type: ignore[return-value]


def affine_difference(a: np.ndarray, b: np.ndarray) -> float:
    """Largest absolute element-wise difference between two (4, 4) affines."""
    return float(np.max(np.abs(np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64))))


@dataclass
class LabelMap:
    """An integer label map read from disk.

    Attributes:
        data: uint8 array of shape (X, Y, Z), values as on disk.
        affine: (4, 4) float64 voxel-to-world matrix.
        header: NIfTI header of the file (to write outputs in the same geometry).
        spacing: Voxel size in mm.
        path: The file read.
    """

    data: np.ndarray
    affine: np.ndarray
    header: nib.Nifti1Header
    spacing: tuple[float, float, float]
    path: Path

    @property
    def shape(self) -> tuple[int, int, int]:
        """(X, Y, Z)."""
        x, y, z = self.data.shape
        return int(x), int(y), int(z)


def read_labels(img: nib.Nifti1Image, path: str | Path) -> np.ndarray:
    """Read an integer label volume as uint8, checking the values fit.

    Args:
        img: Image from :func:`open_nifti`.
        path: File name used in error messages.

    Returns:
        uint8 array of shape (X, Y, Z).

    Raises:
        BratsInputError: Truncated file, non-integer or non-finite values, values outside 0-255.
    """
    raw = _read_raw(img, path)
    slope, inter = _slope_inter(img)
    if slope != 1.0 or inter != 0.0 or raw.dtype.kind == "f":
        scaled = (slope, inter) != (1.0, 0.0)
        values = raw.astype(np.float32) * np.float32(slope) + np.float32(inter) if scaled else raw
        if not np.all(np.isfinite(values)):
            raise BratsInputError("label map holds non-finite values (NaN or infinity)", path)
        fractional = values != np.round(values)
        if np.any(fractional):
            example = float(values[fractional].flat[0])
            raise BratsInputError(
                f"label map holds non-integer values (e.g. {example:g}); expected integer labels",
                path,
            )
        raw = values
    if raw.size and (raw.min() < 0 or raw.max() > 255):
        raise BratsInputError(
            f"label values range {raw.min():g}..{raw.max():g}, outside 0..255 "
            "(is this an image rather than a label map?)",
            path,
        )
    return np.asarray(raw).astype(np.uint8)


def load_label_map(path: str | Path) -> LabelMap:
    """Load a 3D integer label map (prediction or reference) as uint8.

    Args:
        path: ``.nii`` or ``.nii.gz`` file.

    Returns:
        :class:`LabelMap` with data of shape (X, Y, Z) uint8.

    Raises:
        BratsInputError: Anything wrong with the file (one line naming it).
    """
    path = Path(path)
    img = open_nifti(path)
    data = read_labels(img, path)
    return LabelMap(
        data=data,
        affine=np.asarray(img.affine, dtype=np.float64),
        header=img.header,
        spacing=voxel_spacing(img.header),
        path=path,
    )


# --------------------------------------------------------------------------- helpers


def _check_declared_voxel_size(path: Path) -> None:
    """Refuse a voxel size of 0 in the header as written (nibabel's load replaces it by 1 mm).

    A header that cannot be parsed here is left to :func:`nibabel.load`, which reports it.
    """
    try:
        with ImageOpener(str(path)) as fh:
            raw = fh.read(540)
    except (OSError, EOFError, zlib.error, gzip.BadGzipFile):
        return
    for klass in (nib.Nifti1Header, nib.Nifti2Header):
        if len(raw) < klass.template_dtype.itemsize:
            continue
        try:
            header = klass(raw[: klass.template_dtype.itemsize], check=False)
        except Exception:  # noqa: BLE001 - not this header type: try the next one
            continue
        if int(header["sizeof_hdr"]) != klass.template_dtype.itemsize:
            continue
        ndim = int(header["dim"][0])
        pixdim = [float(v) for v in header["pixdim"][1 : 1 + min(max(ndim, 0), 3)]]
        zero = [axis for axis, size in enumerate(pixdim) if size == 0.0 or not np.isfinite(size)]
        if zero:
            raise BratsInputError(
                f"voxel size (pixdim) is {pixdim[zero[0]]:g} along axis {zero[0]}: the header "
                "does not say how large the voxels are, so volumes in mL cannot be computed; "
                "fix the header (e.g. with the scanner's DICOM export)",
                path,
            )
        return


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]


def _read_raw(img: nib.Nifti1Image, path: str | Path) -> np.ndarray:
    """Unscaled voxels in their on-disk type, read now; corrupt/truncated files raise clearly.

    A ``.gz`` file is decompressed to its end so that gzip's length and CRC-32 checks run: a
    truncated file or corrupted compressed bytes are caught even where the damaged part would
    still inflate to the right number of (wrong) bytes.
    """
    shape = tuple(int(s) for s in img.shape)
    if isinstance(img.dataobj, np.ndarray):  # an in-memory image (e.g. read from a DICOM series)
        raw = np.asarray(img.dataobj)
    elif str(path).lower().endswith(".gz"):
        try:
            with gzip.open(path, "rb") as fh:
                buf = fh.read()
        except (EOFError, zlib.error, gzip.BadGzipFile, OSError) as exc:
            raise BratsInputError(f"truncated or corrupt file ({_first_line(exc)})", path) from None
        # the proxy knows the real data offset (headers with extensions may say vox_offset 0)
        dtype = np.dtype(getattr(img.dataobj, "dtype", img.header.get_data_dtype()))
        offset = int(getattr(img.dataobj, "offset", img.header.get_data_offset()))
        count = int(np.prod(shape))
        needed = offset + count * dtype.itemsize
        if len(buf) < needed:
            raise BratsInputError(
                f"truncated or corrupt file (holds {len(buf)} of {needed} bytes)", path
            )
        raw = np.frombuffer(buf, dtype=dtype, count=count, offset=offset).reshape(shape, order="F")
    else:
        try:
            raw = np.asanyarray(cast(Any, img.dataobj).get_unscaled())  # an ArrayProxy here
        except (EOFError, OSError, ValueError) as exc:
            # numpy raises ValueError when a .nii holds fewer bytes than the header promises
            raise BratsInputError(f"truncated or corrupt file ({_first_line(exc)})", path) from None
    if raw.ndim == 4 and raw.shape[3] == 1:
        raw = raw[..., 0]
    return raw


def _slope_inter(img: nib.Nifti1Image) -> tuple[float, float]:
    proxy = img.dataobj
    slope = float(getattr(proxy, "slope", 1.0))
    inter = float(getattr(proxy, "inter", 0.0))
    if not np.isfinite(slope) or slope == 0.0:
        slope = 1.0
    if not np.isfinite(inter):
        inter = 0.0
    return slope, inter
