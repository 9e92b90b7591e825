"""Collections of case folders: reading them (a BraTS training set, a folder of patients) and
exporting a reviewed case into one, with its provenance.

Export layout written (the one the trainer reads, BraTS 2017-2021 names)::

    <dataset>/<case>/<case>_t1.nii.gz, _t1ce, _t2, _flair   images (copied, hard- or sym-linked)
    <dataset>/<case>/<case>_seg.nii.gz                       corrected labels, chosen convention
    <dataset>/<case>/<case>_aiproposal.nii.gz                the AI proposal before correction
    <dataset>/<case>/<case>_provenance.json                  model, checksums, settings, edits

``*_aiproposal`` does not end in ``_seg``, so case discovery never mistakes it for the label map.
Everything is first written into a hidden temporary folder beside the target, then moved into
place, so an interrupted export never leaves a half-written case; an existing export is only
replaced when ``overwrite=True``.

The provenance JSON records where the case came from, the model(s) (names, checkpoints, sha256),
the postprocessing settings, the hand-edited voxels per label and, for a signed-off review, the
approval (reviewer, UTC time) and the whole sign-off history (:mod:`bratseg.review.signoff`).
One module owns the layout: the readers here and the trainer
(:func:`bratseg.training.data.discover_cases`) read what :func:`export_case` writes.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any, Literal

from bratseg.atomic import remove_stale_temporaries
from bratseg.errors import BratsInputError
from bratseg.io.case import find_case_files, match_modality
from bratseg.io.output_guard import guard_output

logger = logging.getLogger(__name__)


def is_case_folder(folder: str | Path, *, allow_missing: bool = False) -> bool:
    """Whether ``folder`` holds the four MRI channels under recognised names (nothing is read;
    with ``allow_missing``, a series may lack whose stand-in is there)."""
    try:
        find_case_files(folder, seg=False, allow_missing=allow_missing)
    except BratsInputError:
        return False
    return True


def list_case_folders(root: str | Path, *, allow_missing: bool = False) -> list[Path]:
    """Case folders directly under ``root`` (sorted by name), or ``[root]`` if it is a case.

    Sub-folders whose files are not recognisable as a case (missing channel, ambiguous names)
    are skipped.

    Args:
        root: A case folder or a folder of case folders.
        allow_missing: Count a folder that lacks a series whose stand-in is there as a case
            (see :func:`bratseg.io.find_case_files`).

    Returns:
        List of case folders; empty when none is found.

    Raises:
        BratsInputError: ``root`` is missing or not a folder.
    """
    root = Path(root)
    if not root.is_dir():
        raise BratsInputError("folder not found" if not root.exists() else "not a folder", root)
    if is_case_folder(root, allow_missing=allow_missing):
        return [root]
    return [
        p
        for p in sorted(root.iterdir())
        if p.is_dir() and is_case_folder(p, allow_missing=allow_missing)
    ]


def scan_case_folders(root: str | Path) -> list[tuple[Path, BratsInputError | None]]:
    """Every folder under ``root`` that looks like a case, with why it cannot be used if so.

    Like :func:`list_case_folders`, but a sub-folder holding at least one file with a BraTS
    channel name (or a sub-folder of its own: DICOM series) that is still not a usable case is
    listed too, with the one-line error of :func:`bratseg.io.find_case_files` (missing channel,
    ambiguous names). Hidden folders are ignored.

    Args:
        root: A case folder or a folder of case folders.

    Returns:
        ``(folder, error)`` pairs sorted by name; ``error`` is None for a usable case.

    Raises:
        BratsInputError: ``root`` is missing or not a folder.
    """
    root = Path(root)
    if not root.is_dir():
        raise BratsInputError("folder not found" if not root.exists() else "not a folder", root)
    if is_case_folder(root):
        return [(root, None)]
    out: list[tuple[Path, BratsInputError | None]] = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        try:
            find_case_files(folder, seg=False)
        except BratsInputError as exc:
            entries = [e for e in folder.iterdir() if not e.name.startswith(".")]
            if any(match_modality(e.name) for e in entries) or any(e.is_dir() for e in entries):
                out.append((folder, exc))
            continue
        out.append((folder, None))
    return out


# --- export of a reviewed case -------------------------------------------------------------

LinkMode = Literal["copy", "hardlink", "symlink"]
LINK_MODES: tuple[str, ...] = ("copy", "hardlink", "symlink")
#: Suffix of the AI proposal file (deliberately not ``_seg``).
AI_SUFFIX = "aiproposal"


class ExportExistsError(FileExistsError):
    """The case already exists in the dataset folder and overwriting was not allowed."""


def _iso(timestamp: float | None = None) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(timestamp))


def _place_image(source: Path, target: Path, link: LinkMode) -> str:
    """Put one image at ``target`` (``.nii.gz``); returns how it was placed."""
    if not source.name.lower().endswith(".nii.gz"):
        import nibabel as nib

        nib.save(nib.load(str(source)), str(target))  # recompress .nii -> .nii.gz
        return "converted"
    if link == "symlink":
        os.symlink(source.resolve(), target)
        return "symlink"
    if link == "hardlink":
        try:
            os.link(source, target)
            return "hardlink"
        except OSError as exc:  # other filesystem, or links not allowed
            logger.info("hard link failed (%s), copying %s", exc, source)
    shutil.copy2(source, target)
    return "copy"


def export_case(
    session: Any,
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
    if final.exists() and not overwrite:
        raise ExportExistsError(f"{final} already exists")

    session.record_edits()
    partial = f".{case.case_id}.partial-"
    remove_stale_temporaries(dataset, partial)
    stage = Path(tempfile.mkdtemp(prefix=f"{partial}{os.getpid()}-", dir=dataset))
    try:
        placed = {}
        for modality in MODALITIES:
            target = stage / f"{case.case_id}_{modality}.nii.gz"
            placed[modality] = _place_image(Path(case.files[modality]), target, link)
        geometry = {"affine": case.affine, "header": case.header}
        seg_path = save_label_map(
            session.labels,
            stage / f"{case.case_id}_seg.nii.gz",
            **geometry,
            convention=convention,
            src_convention=session.convention,
        )
        ai_path = save_label_map(
            session.proposal,
            stage / f"{case.case_id}_{AI_SUFFIX}.nii.gz",
            **geometry,
            convention=convention,
            src_convention=session.convention,
        )
        provenance = build_provenance(session, convention, placed)
        provenance["files"] = {"seg": seg_path.name, "ai_proposal": ai_path.name}
        (stage / f"{case.case_id}_provenance.json").write_text(
            json.dumps(provenance, indent=2) + "\n"
        )
        backup = None
        if final.exists():
            backup = dataset / f".{case.case_id}.replaced-{os.getpid()}-{time.time_ns()}"
            os.replace(final, backup)
        os.replace(stage, final)
        if backup is not None:
            shutil.rmtree(backup, ignore_errors=True)
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
    logger.info("exported %s to %s", case.case_id, final)
    return final


def export_case_nnunet(session: Any, dataset_dir: str | Path, *, overwrite: bool = False) -> Path:
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


def build_provenance(session: Any, convention: str, placed: dict[str, str]) -> dict[str, Any]:
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
    history = list(getattr(session, "signoffs", None) or [])
    approval = getattr(session, "approval", None)
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
        "postprocess": config.to_dict() if hasattr(config, "to_dict") else dict(config or {}),
        "edited_voxels_total": int(session.overrides.sum()),
        "edited_voxels": session.edited_voxels(),
        "approved": approval is not None,
        "approval": approval.to_dict() if approval is not None else None,
        "signoff_history": [entry.to_dict() for entry in history],
        "plugin_version": __version__,
    }
