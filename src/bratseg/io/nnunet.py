"""nnU-Net v2 raw datasets: write BraTS cases in that layout, and read it back as cases.

Layout (as nnU-Net's own BraTS conversion, Dataset137_BraTS21)::

    DEST/dataset.json
    DEST/imagesTr/{case}_0000.nii.gz   T1      (channel order of CHANNEL_NAMES)
    DEST/imagesTr/{case}_0001.nii.gz   T1Gd
    DEST/imagesTr/{case}_0002.nii.gz   T2
    DEST/imagesTr/{case}_0003.nii.gz   FLAIR
    DEST/labelsTr/{case}.nii.gz        labels in the ``nnunet`` convention (1 ED, 2 NCR, 3 ET)

``dataset.json`` has ``channel_names``, ``labels`` as regions (whole tumor = 1, 2, 3; tumor core
= 2, 3; enhancing tumor = 3), ``regions_class_order`` (1, 2, 3), ``file_ending`` and
``numTraining``. The label map keeps the images' geometry and header; images are copied as they
are (compressed when they were not).
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib

from bratseg.errors import BratsInputError
from bratseg.labels import Convention

#: nnU-Net channel index -> name, in bratseg's channel order (io.MODALITIES).
CHANNEL_NAMES = {"0": "T1", "1": "T1ce", "2": "T2", "3": "Flair"}
#: Names nnU-Net datasets use for each of bratseg's channels (lower case).
_CHANNEL_SYNONYMS = {
    "t1": ("t1", "t1n", "t1w", "native t1"),
    "t1ce": ("t1ce", "t1c", "t1gd", "t1-gd", "t1post", "t1_post", "t1 contrast"),
    "t2": ("t2", "t2w"),
    "flair": ("flair", "t2f", "t2-flair"),
}
DATASET_LABELS = {
    "background": 0,
    "whole tumor": [1, 2, 3],
    "tumor core": [2, 3],
    "enhancing tumor": [3],
}
FILE_ENDING = ".nii.gz"


@dataclass(frozen=True)
class NnunetCase:
    """One training case of an nnU-Net raw dataset (files only)."""

    case_id: str
    files: dict[str, Path]  # channel (io.MODALITIES) -> file, plus "seg" when labelled


def is_nnunet_dataset(folder: str | Path) -> bool:
    """True when ``folder`` holds ``dataset.json`` and ``imagesTr``."""
    folder = Path(folder)
    return (folder / "dataset.json").is_file() and (folder / "imagesTr").is_dir()


def read_nnunet_dataset(folder: str | Path) -> list[NnunetCase]:
    """The training cases of an nnU-Net raw dataset, channels mapped to bratseg's.

    Raises:
        BratsInputError: No or unreadable dataset.json, channels that are not the four BraTS
            sequences, or a case missing a channel file.
    """
    from bratseg.io.case import MODALITIES

    folder = Path(folder)
    try:
        meta = json.loads((folder / "dataset.json").read_text())
    except (OSError, ValueError) as exc:
        raise BratsInputError(
            f"not a readable nnU-Net dataset.json ({exc})", folder / "dataset.json"
        ) from None
    names = {
        str(k): str(v).lower().strip()
        for k, v in (meta.get("channel_names") or meta.get("modality") or {}).items()
    }
    index: dict[str, str] = {}
    for key, name in names.items():
        channel = next((c for c, syn in _CHANNEL_SYNONYMS.items() if name in syn), None)
        if channel is None or channel in index.values():
            raise BratsInputError(
                f"channel {key} ({name!r}) is not one of T1, T1ce, T2, FLAIR (or appears twice)",
                folder / "dataset.json",
            )
        index[key] = channel
    if sorted(index.values()) != sorted(MODALITIES):
        raise BratsInputError(
            f"channels {sorted(names.values())} are not the four BraTS sequences",
            folder / "dataset.json",
        )
    ending = str(meta.get("file_ending") or FILE_ENDING)
    images = folder / "imagesTr"
    stems = sorted({p.name[: -len(ending) - 5] for p in images.glob(f"*_0000{ending}")})
    cases = []
    for stem in stems:
        files = {index[k]: images / f"{stem}_{int(k):04d}{ending}" for k in index}
        missing = [str(p.name) for p in files.values() if not p.is_file()]
        if missing:
            raise BratsInputError(f"case {stem} lacks {', '.join(missing)}", images)
        seg = folder / "labelsTr" / f"{stem}{ending}"
        if seg.is_file():
            files["seg"] = seg
        cases.append(NnunetCase(stem, {k: files[k] for k in (*MODALITIES, "seg") if k in files}))
    if not cases:
        raise BratsInputError(f"no case (*_0000{ending}) in imagesTr", images)
    return cases


def write_nnunet_dataset(
    case_dirs: list[Path], dest: str | Path, *, name: str | None = None
) -> Path:
    """Write labelled BraTS case folders as an nnU-Net v2 raw dataset in ``dest`` (a new folder).

    The dataset is assembled in a hidden sibling folder and renamed into place, so ``dest``
    appears complete or not at all.

    Raises:
        BratsInputError: ``dest`` exists, a case is unreadable or has no label map.
    """
    from bratseg.io.case import MODALITIES, load_case
    from bratseg.io.writing import save_label_map

    dest = Path(dest)
    with _staged_folder(dest) as tmp:
        (tmp / "imagesTr").mkdir()
        (tmp / "labelsTr").mkdir()
        for folder in case_dirs:
            case = load_case(folder)
            if case.seg is None or case.seg_convention is None:
                raise BratsInputError("case has no label map", folder)
            for k, m in enumerate(MODALITIES):
                _copy_as_nii_gz(
                    case.files[m], tmp / "imagesTr" / f"{case.case_id}_{k:04d}{FILE_ENDING}"
                )
            save_label_map(
                case.seg,
                tmp / "labelsTr" / f"{case.case_id}{FILE_ENDING}",
                affine=case.affine,
                header=_nifti_header(case.files["seg"]),
                convention="nnunet",
                src_convention=case.seg_convention,
            )
        meta = {
            "channel_names": CHANNEL_NAMES,
            "labels": DATASET_LABELS,
            "regions_class_order": [1, 2, 3],
            "numTraining": len(case_dirs),
            "file_ending": FILE_ENDING,
            "name": name or dest.name,
            "description": "BraTS cases written by napari-brats convert-dataset",
            "channel_order_note": "0 T1, 1 T1Gd (T1ce), 2 T2, 3 FLAIR; labels 1 ED, 2 NCR, 3 ET",
        }
        (tmp / "dataset.json").write_text(json.dumps(meta, indent=1) + "\n")
    return dest


def write_brats_dataset(
    cases: list[tuple[str, dict[str, Path], Convention]], dest: str | Path, convention: Convention
) -> Path:
    """Write cases as BraTS 2017-2021-named case folders, labels in ``convention``.

    Args:
        cases: ``(case_id, files, label_convention_of_the_seg)`` per case.
        dest: New dataset folder.
        convention: ``"2021"`` or ``"2023"`` (label values written).

    Raises:
        BratsInputError: ``dest`` exists, or a label map cannot be converted.
    """
    from bratseg.io.case import MODALITIES
    from bratseg.io.nifti import load_label_map
    from bratseg.io.writing import save_label_map

    dest = Path(dest)
    with _staged_folder(dest) as tmp:
        for case_id, files, seg_convention in cases:
            out = tmp / case_id
            out.mkdir()
            for m in MODALITIES:
                _copy_as_nii_gz(files[m], out / f"{case_id}_{m}{FILE_ENDING}")
            if "seg" in files:
                seg = load_label_map(files["seg"])
                save_label_map(
                    seg.data,
                    out / f"{case_id}_seg{FILE_ENDING}",
                    affine=seg.affine,
                    header=seg.header,
                    convention=convention,
                    src_convention=seg_convention,
                )
    return dest


def _nifti_header(path: Path) -> nib.Nifti1Header:
    """The NIfTI-1 header of ``path`` (a NIfTI-2 file's header is converted)."""
    header = nib.load(path).header
    return header if isinstance(header, nib.Nifti1Header) else nib.Nifti1Header.from_header(header)


@contextmanager
def _staged_folder(dest: Path) -> Iterator[Path]:
    """A hidden sibling folder of the new folder ``dest``, renamed to ``dest`` when the block ends
    cleanly and removed otherwise, so ``dest`` appears complete or not at all.

    Raises:
        BratsInputError: ``dest`` exists, or its parent folder does not.
    """
    if dest.exists():
        raise BratsInputError("destination exists; refusing to overwrite it", dest)
    if not dest.parent.is_dir():
        raise BratsInputError("parent folder does not exist", dest.parent)
    tmp = dest.with_name(f".{dest.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        yield tmp
        tmp.rename(dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _copy_as_nii_gz(src: Path, dst: Path) -> None:
    if src.name.lower().endswith(".nii.gz"):
        shutil.copyfile(src, dst)
    else:
        nib.save(nib.load(src), dst)


def add_case_to_nnunet_dataset(
    case,
    labels,
    convention: Convention,
    dest: str | Path,
    *,
    overwrite: bool = False,
    provenance: dict | None = None,
) -> Path:
    """Add (or, with ``overwrite``, replace) one labelled case in an nnU-Net raw dataset.

    The dataset folder and its dataset.json are created when missing; ``numTraining`` follows the
    label files present. Files are written under temporary names and renamed into place, the
    label map last, so an interrupted export leaves no half case that nnU-Net would train on.

    Args:
        case: The :class:`bratseg.io.Case` (its image files are copied).
        labels: uint8 (X, Y, Z) label map of the case, in ``convention``.
        convention: Convention of ``labels``.
        dest: The dataset folder (``imagesTr``, ``labelsTr``, ``dataset.json``).
        overwrite: Replace the case when the dataset holds it already.
        provenance: Written as ``provenance/{case}.json`` when given.

    Returns:
        The label file written.

    Raises:
        FileExistsError: The case exists and ``overwrite`` is False.
        BratsInputError: ``dest`` holds a dataset.json of other channels.
    """
    from bratseg.atomic import atomic_write
    from bratseg.io.case import MODALITIES
    from bratseg.io.writing import save_label_map

    dest = Path(dest)
    label_file = dest / "labelsTr" / f"{case.case_id}{FILE_ENDING}"
    if label_file.exists() and not overwrite:
        raise FileExistsError(f"{case.case_id} is already in {dest}")
    meta_file = dest / "dataset.json"
    if meta_file.is_file():
        if (dest / "imagesTr").is_dir() and any((dest / "imagesTr").iterdir()):
            read_nnunet_dataset(dest)  # refuses a dataset of other channels
        meta = json.loads(meta_file.read_text())
    else:
        meta = {
            "channel_names": CHANNEL_NAMES,
            "labels": DATASET_LABELS,
            "regions_class_order": [1, 2, 3],
            "file_ending": FILE_ENDING,
            "name": dest.name,
            "description": "cases reviewed and exported by napari-brats",
            "channel_order_note": "0 T1, 1 T1Gd (T1ce), 2 T2, 3 FLAIR; labels 1 ED, 2 NCR, 3 ET",
        }
    (dest / "imagesTr").mkdir(parents=True, exist_ok=True)
    (dest / "labelsTr").mkdir(exist_ok=True)
    for k, m in enumerate(MODALITIES):
        target = dest / "imagesTr" / f"{case.case_id}_{k:04d}{FILE_ENDING}"
        tmp = target.with_name(f".{target.name}.tmp")
        _copy_as_nii_gz(Path(case.files[m]), tmp)
        tmp.replace(target)
    if provenance is not None:
        (dest / "provenance").mkdir(exist_ok=True)
        with atomic_write(dest / "provenance" / f"{case.case_id}.json") as fh:
            fh.write((json.dumps(provenance, indent=1, default=str) + "\n").encode())
    save_label_map(
        labels,
        label_file,
        affine=case.affine,
        header=case.header,
        convention="nnunet",
        src_convention=convention,
        overwrite=True,
    )
    meta["numTraining"] = len(list((dest / "labelsTr").glob(f"*{FILE_ENDING}")))
    with atomic_write(meta_file) as fh:
        fh.write((json.dumps(meta, indent=1) + "\n").encode())
    return label_file
