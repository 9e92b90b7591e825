"""Write a case's segmentation as DICOM: SEG, RTSTRUCT, burned-in overlay series and summary.

Everything is written into a hidden temporary folder beside the destination and renamed into place
at the end: a failure or a refused input leaves nothing behind, and an existing folder is never
touched. Layout of the destination::

    DIR/SEG.dcm            DICOM Segmentation: NCR, ED, ET
    DIR/RTSTRUCT.dcm       RT Structure Set: WT, TC, ET
    DIR/OVERLAY/IM*.dcm    T1Gd with the tissues burned in, one per slice
    DIR/SUMMARY.dcm        key slice + volume table
    DIR/SOURCE_T1GD/IM*.dcm  only for a NIfTI case: the new MR series the others reference
    DIR/README.txt, DIR/export.json   what was written and (NIfTI case) that the study is new
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from bratseg.atomic import remove_stale_temporaries
from bratseg.atomic_folders import staging_folder, swap_in_folder
from bratseg.errors import BratsInputError
from bratseg.io.nifti import affine_difference
from bratseg.labels import OUTPUT_CONVENTIONS, Convention
from bratseg.metrics import tumour_volumes_ml
from bratseg.report.dicom.capture import build_overlay_series, build_summary, render_summary
from bratseg.report.dicom.rtstruct import build_rtstruct
from bratseg.report.dicom.seg import Provenance, build_seg
from bratseg.report.dicom.source import (
    SourceSeries,
    read_source_series,
    synthesize_series,
    synthesized_note,
)

if TYPE_CHECKING:
    from bratseg.io import Case

logger = logging.getLogger(__name__)

#: Series numbers of the objects written (the source MR series of a new study is 1).
SERIES_NUMBERS = {"seg": 901, "rtstruct": 902, "overlay": 903, "summary": 904}


@dataclass
class DicomExport:
    """What :func:`export_dicom` wrote.

    Attributes:
        folder: The destination folder.
        files: Object kind (``seg``, ``rtstruct``, ``overlay``, ``summary``, ``source``) -> its
            files, relative to ``folder``.
        synthesized: True when the case had no DICOM source and a new study was made.
        study_uid: StudyInstanceUID shared by every object.
        frame_of_reference_uid: FrameOfReferenceUID shared by every object.
        source_series_uid: SeriesInstanceUID of the referenced MR series.
        volumes_ml: Tissue and region volumes in mL (``NCR``, ``ED``, ``ET``, ``TC``, ``WT``), as
            ``evaluate`` and ``report`` give them.
        notes: Lines said about the export (the new-study note for a NIfTI case).
    """

    folder: Path
    files: dict[str, list[str]] = field(default_factory=dict)
    synthesized: bool = False
    study_uid: str = ""
    frame_of_reference_uid: str = ""
    source_series_uid: str = ""
    volumes_ml: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """JSON form (paths as strings)."""
        return {
            "folder": str(self.folder),
            "files": self.files,
            "synthesized_study": self.synthesized,
            "study_instance_uid": self.study_uid,
            "frame_of_reference_uid": self.frame_of_reference_uid,
            "source_series_instance_uid": self.source_series_uid,
            "volumes_ml": self.volumes_ml,
            "notes": self.notes,
        }


def check_destination(folder: Path, *, replace: bool = False) -> None:
    """Refuse an existing destination (never merged into; replaced whole only with ``replace``,
    and then only a real folder)."""
    replaceable = replace and folder.is_dir() and not folder.is_symlink()
    if not replaceable and (folder.exists() or folder.is_symlink()):
        raise BratsInputError(
            "output folder exists; choose a new folder (nothing was written)", folder
        )
    if not folder.parent.is_dir():
        raise BratsInputError("the output folder's parent does not exist", folder.parent)


def check_labels(
    labels: np.ndarray, affine: np.ndarray, case: Case, convention: Convention, path: str | Path
) -> None:
    """Refuse a label map that is not on the case's grid or not in a tumour-only convention."""
    from bratseg.io.channels import AFFINE_TOLERANCE

    if tuple(labels.shape) != tuple(case.shape):
        raise BratsInputError(
            f"label map shape {tuple(labels.shape)} differs from the case images' {case.shape}; "
            "export the labels on the case's grid",
            path,
        )
    if affine_difference(affine, case.affine) > AFFINE_TOLERANCE * min(case.spacing):
        raise BratsInputError(
            "label map affine differs from the case images' (not on the same grid)", path
        )
    if convention not in OUTPUT_CONVENTIONS:
        raise BratsInputError(
            f"labels in the {convention} convention (with resection cavity) cannot be exported "
            f"to DICOM; convert them to one of {', '.join(OUTPUT_CONVENTIONS)}",
            path,
        )


def shown_series(case: Case) -> str:
    """What the exported images show: ``"T1Gd"``, or e.g. ``"T1 in place of the missing T1Gd"``."""
    from bratseg.io.channels import MODALITY_NAMES

    stand_in = case.substituted.get("t1ce")
    return f"{MODALITY_NAMES[stand_in]} in place of the missing T1Gd" if stand_in else "T1Gd"


def source_series(case: Case) -> SourceSeries:
    """The case's T1Gd DICOM series, or a new MR series made from its NIfTI T1Gd (or from what
    stood in for it, and named so)."""
    from bratseg.io.case import MODALITIES

    t1ce = case.files.get("t1ce")
    volume = case.image[MODALITIES.index("t1ce")]
    if t1ce is not None and Path(t1ce).is_dir():
        return read_source_series(Path(t1ce), case.affine, case.shape)
    return synthesize_series(
        volume,
        case.affine,
        case.case_id,
        str(t1ce or "T1Gd"),
        shown=shown_series(case),
    )


def export_dicom(
    case: Case,
    labels: np.ndarray,
    convention: Convention,
    destination: str | Path,
    provenance: Provenance | None = None,
    *,
    replace: bool = False,
) -> DicomExport:
    """Write SEG, RTSTRUCT, the burned-in overlay series and the summary of ``labels``.

    Args:
        case: The loaded :class:`bratseg.io.Case` (its T1Gd is the referenced series).
        labels: Integer label map (X, Y, Z) on the case grid (check it with :func:`check_labels`).
        convention: Its label convention (2021, 2023 or nnunet).
        destination: New folder to create.
        provenance: Models and reviewer (default: none known).
        replace: Replace an existing export folder at ``destination`` once the new one is
            complete (:func:`bratseg.atomic_folders.swap_in_folder`; the old one stays until then).

    Returns:
        :class:`DicomExport` describing the files.

    Raises:
        BratsInputError: The destination exists, or the case's DICOM series does not match it.
    """
    from bratseg.io.case import MODALITIES, missing_sequence_note

    provenance = provenance or Provenance()
    destination = Path(destination)
    check_destination(destination, replace=replace)
    source = source_series(case)
    result = DicomExport(folder=destination, synthesized=source.synthesized)
    first = source.first
    result.study_uid = str(first.StudyInstanceUID)
    result.frame_of_reference_uid = str(first.FrameOfReferenceUID)
    result.source_series_uid = str(first.SeriesInstanceUID)
    result.volumes_ml = {
        k.upper(): v for k, v in tumour_volumes_ml(labels, convention, case.spacing).items()
    }
    note = synthesized_note(shown_series(case)) if source.synthesized else ""
    if source.synthesized:
        result.notes.append(note)
    else:
        result.notes.append(f"References the T1Gd DICOM series {result.source_series_uid}.")
    if "t1ce" in case.substituted:  # every image of the export is the stand-in: say so on each
        missing = missing_sequence_note("t1ce", case.substituted["t1ce"]) + "."
        result.notes.append(missing)
        note = f"{note} {missing}".strip()

    volume = case.image[MODALITIES.index("t1ce")]
    partial = f".{destination.name}.partial-"
    remove_stale_temporaries(destination.parent, partial)  # of killed runs
    with staging_folder(destination.parent, partial) as work:
        if source.synthesized:
            result.files["source"] = _save_series(source.datasets, work, "SOURCE_T1GD")
        seg = build_seg(
            labels, convention, source, provenance, series_number=SERIES_NUMBERS["seg"], note=note
        )
        result.files["seg"] = [_save(seg, work / "SEG.dcm", work)]
        rt = build_rtstruct(
            labels,
            convention,
            source,
            series_number=SERIES_NUMBERS["rtstruct"],
            reviewer=provenance.reviewer,
            algorithm_type=provenance.algorithm_type(),
            description=f"{provenance.summary()}. {note}".strip(),
        )
        result.files["rtstruct"] = [_save(rt, work / "RTSTRUCT.dcm", work)]
        overlay = build_overlay_series(
            volume,
            labels,
            convention,
            source,
            series_number=SERIES_NUMBERS["overlay"],
            note=note,
            description=f"{shown_series(case)} with tumour overlay (burned in)",
        )
        result.files["overlay"] = _save_series(overlay, work, "OVERLAY")
        lines = [f"Case {case.case_id}", provenance.summary(), *_wrap(note)]
        lines.append("Derived from a segmentation; verify before clinical use.")
        image = render_summary(volume, labels, convention, list(result.volumes_ml.items()), lines)
        summary = build_summary(image, source, series_number=SERIES_NUMBERS["summary"], note=note)
        result.files["summary"] = [_save(summary, work / "SUMMARY.dcm", work)]
        (work / "README.txt").write_text(_readme(result), encoding="utf-8")
        manifest = {k: v for k, v in result.to_dict().items() if k != "folder"}
        (work / "export.json").write_text(json.dumps(manifest, indent=1) + "\n", encoding="utf-8")
        if replace:
            swap_in_folder(work, destination)  # the old export stays until the new one is in place
        else:
            os.rename(work, destination)  # fails (nothing replaced) if the destination appeared
    logger.info("wrote DICOM export of %s to %s", case.case_id, destination)
    return result


def dicom_folder_name(case_id: str) -> str:
    """Name of a case's DICOM export folder inside an export folder."""
    return f"{case_id}_dicom"


def _save(ds: Any, path: Path, root: Path) -> str:
    ds.save_as(path, enforce_file_format=True)
    return str(path.relative_to(root))


def _save_series(datasets: list[Any], root: Path, name: str) -> list[str]:
    folder = root / name
    folder.mkdir()
    return [_save(ds, folder / f"IM{i + 1:04d}.dcm", root) for i, ds in enumerate(datasets)]


def _wrap(text: str, width: int = 70) -> list[str]:
    import textwrap

    return textwrap.wrap(text, width) if text else []


def _readme(result: DicomExport) -> str:
    lines = ["DICOM export written by napari-brats.", ""]
    lines += [
        f"- {kind}: {len(files)} file(s), e.g. {files[0]}" for kind, files in result.files.items()
    ]
    lines += ["", f"StudyInstanceUID {result.study_uid}"]
    lines += [f"FrameOfReferenceUID {result.frame_of_reference_uid}"]
    lines += [f"Referenced MR series {result.source_series_uid}", ""]
    lines += result.notes
    return "\n".join(lines) + "\n"
