"""Export of a reviewed case into a training dataset, with its provenance.

:func:`export_case` writes the layout of :mod:`bratseg.io.dataset` (images, corrected labels, the
AI proposal and ``<case>_provenance.json``), :func:`export_case_nnunet` adds the case to an
nnU-Net v2 raw dataset (:mod:`bratseg.io.nnunet`), and :func:`build_provenance` is the record
both write: the case's source, the model(s), the postprocessing, the hand edits and the sign-off
history of the :class:`~bratseg.review.ReviewSession`. :func:`export_session_dicom` writes the
case's DICOM outputs instead (:mod:`bratseg.report.dicom`), with its model and sign-off.

Everything is first written into a hidden temporary folder beside the target, then moved into
place, so an interrupted export never leaves a half-written case; an existing export is only
replaced when ``overwrite=True``.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bratseg.atomic import remove_stale_temporaries
from bratseg.atomic_folders import restore_replaced, staging_folder, swap_in_folder
from bratseg.errors import BratsInputError
from bratseg.io.dataset import AI_SUFFIX, LINK_MODES, ExportExistsError, LinkMode, place_image
from bratseg.io.output_guard import guard_output

if TYPE_CHECKING:
    from bratseg.report.dicom import DicomExport
    from bratseg.review.session import ReviewSession

logger = logging.getLogger(__name__)


def _iso(timestamp: float | None = None) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(timestamp))


def export_case(
    session: ReviewSession,
    dataset_dir: str | Path,
    *,
    convention: str = "2021",
    link: LinkMode = "copy",
    overwrite: bool = False,
) -> Path:
    """Write a reviewed case (images, corrected seg, AI proposal, provenance) into a dataset.

    Args:
        session: The :class:`bratseg.review.ReviewSession` under review.
        dataset_dir: Dataset folder (created if missing); the case goes into a sub-folder.
        convention: Label convention of the written label maps (``"2021"`` or ``"2023"``).
        link: How the four images are placed: ``"copy"``, ``"hardlink"`` or ``"symlink"``.
        overwrite: Replace an existing export of the same case.

    Returns:
        The case folder written.

    Raises:
        ExportExistsError: The case folder exists and ``overwrite`` is False.
        BratsInputError: Bad convention/link mode or the case has no source files.
    """
    from bratseg.io import MODALITIES, save_label_map
    from bratseg.labels import check_convention

    convention = check_convention(convention)
    if link not in LINK_MODES:
        raise BratsInputError(f"unknown link mode {link!r}; use one of {LINK_MODES}")
    case = session.case
    missing = [m for m in MODALITIES if m not in case.files]
    if missing:
        raise BratsInputError(f"case {case.case_id} has no source file for {missing}")
    dataset = Path(dataset_dir)
    dataset.mkdir(parents=True, exist_ok=True)
    final = dataset / case.case_id
    inputs = [p for p in (case.folder, *case.files.values()) if p is not None]
    guard_output(final, inputs, what="export of the case")
    restore_replaced(final)  # an export killed while replacing this one: put the old one back
    if final.exists() and not overwrite:
        raise ExportExistsError(f"{final} already exists")

    session.record_edits()
    partial = f".{case.case_id}.partial-"
    remove_stale_temporaries(dataset, partial)
    with staging_folder(dataset, partial) as stage:
        placed = {}
        for modality in MODALITIES:
            target = stage / f"{case.case_id}_{modality}.nii.gz"
            placed[modality] = place_image(Path(case.files[modality]), target, link)
        label_maps = {"seg": ("seg", session.labels), "ai_proposal": (AI_SUFFIX, session.proposal)}
        written = {
            key: save_label_map(
                labels,
                stage / f"{case.case_id}_{suffix}.nii.gz",
                affine=case.affine,
                header=case.header,
                convention=convention,
                src_convention=session.convention,
            )
            for key, (suffix, labels) in label_maps.items()
        }
        provenance = build_provenance(session, convention, placed)
        provenance["files"] = {key: path.name for key, path in written.items()}
        (stage / f"{case.case_id}_provenance.json").write_text(
            json.dumps(provenance, indent=2) + "\n"
        )
        swap_in_folder(stage, final)  # the old export stays until the new one is in place
    logger.info("exported %s to %s", case.case_id, final)
    return final


def export_case_nnunet(
    session: ReviewSession, dataset_dir: str | Path, *, overwrite: bool = False
) -> Path:
    """Add the reviewed case to an nnU-Net v2 raw dataset (see :mod:`bratseg.io.nnunet`).

    Returns:
        The label file written (``labelsTr/{case}.nii.gz``).

    Raises:
        ExportExistsError: The dataset holds the case and ``overwrite`` is False.
    """
    from bratseg.io.nnunet import add_case_to_nnunet_dataset

    session.record_edits()
    provenance = build_provenance(
        session, "nnunet", {m: "copy" for m in session.case.files if m != "seg"}
    )
    try:
        return add_case_to_nnunet_dataset(
            session.case,
            session.labels,
            session.convention,
            dataset_dir,
            overwrite=overwrite,
            provenance=provenance,
        )
    except FileExistsError as exc:
        raise ExportExistsError(str(exc)) from None


def build_provenance(
    session: ReviewSession, convention: str, placed: dict[str, str]
) -> dict[str, Any]:
    """Provenance record of an exported case (JSON-able).

    Args:
        session: The :class:`bratseg.review.ReviewSession` exported.
        convention: Label convention of the written label maps.
        placed: Channel -> how its image was placed (``copy``, ``hardlink``, ...).

    Returns:
        Case, source files, model (names, checkpoints, sha256), postprocessing settings, edited
        voxels (total and per label), ``approved`` with ``approval`` (reviewer, UTC time, models,
        sha256, settings, edit counts) and ``signoff_history``.
    """
    from bratseg import __version__

    case, model, config = session.case, session.model, session.config
    history = list(session.signoffs)
    approval = session.approval
    return {
        "case_id": case.case_id,
        "exported": _iso(),
        "segmented": _iso(session.created),
        "source_folder": str(case.folder) if case.folder is not None else None,
        "source_files": {k: str(v) for k, v in case.files.items()},
        "images_placed": placed,
        "label_convention": convention,
        "model": {
            "names": list(model.names),
            "checkpoints": list(model.paths),
            "sha256": list(model.sha256),
            "device": model.device,
            "seconds": model.seconds,
            "tta": model.tta,
        },
        "postprocess": config.to_dict(),
        "edited_voxels_total": int(session.overrides.sum()),
        "edited_voxels": session.edited_voxels(),
        "approved": approval is not None,
        "approval": approval.to_dict() if approval is not None else None,
        "signoff_history": [entry.to_dict() for entry in history],
        "plugin_version": __version__,
    }


def export_session_dicom(
    session: ReviewSession, destination: str | Path, *, overwrite: bool = False
) -> DicomExport:
    """The DICOM outputs of a review session (its labels, model and sign-off) in ``destination``
    (:func:`bratseg.report.dicom.export_dicom`; needs the ``[dicom]`` extra).

    Args:
        session: The :class:`~bratseg.review.ReviewSession` exported.
        destination: Folder to write (its parent is created when missing).
        overwrite: Replace an existing folder (the new one is complete before the old goes).

    Raises:
        ExportExistsError: ``destination`` exists and not ``overwrite``.
        BratsInputError: The session's labels cannot be exported (see
            :func:`bratseg.report.dicom.check_labels`).
        ImportError: A package of the ``[dicom]`` extra is missing.
    """
    from bratseg.report.dicom import Provenance, check_labels, export_dicom

    destination = Path(destination)
    restore_replaced(destination)  # an export killed while replacing this one: put it back
    if destination.exists() and not overwrite:
        raise ExportExistsError(f"{destination} already exists")
    case = session.case
    check_labels(session.labels, case.affine, case, session.convention, destination)
    destination.parent.mkdir(parents=True, exist_ok=True)  # the export folder, as for datasets
    provenance = Provenance.from_record(
        {
            "model": session.model.to_dict(),
            "signoffs": [entry.to_dict() for entry in session.signoffs],
        }
    )
    return export_dicom(
        case,
        session.labels,
        session.convention,
        destination,
        provenance,
        replace=destination.exists(),  # only with overwrite (refused above otherwise)
    )
