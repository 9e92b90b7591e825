"""Training data: case discovery, splits and an on-disk crop cache (patches: :mod:`.patches`).

Cases come from any number of folders of case folders (BraTS 2017-2021 and 2023 naming, and the
plugin's export layout ``<case>/<case>_{t1,t1ce,t2,flair,seg}.nii.gz``); only cases with a label
map are used. A case id present in several folders is taken from the last folder given, so a
folder of corrected exports overrides the originals.

Each case is preprocessed once (:func:`bratseg.preprocess.preprocess_with_config`: brain crop,
z-score, optional resampling and foreground channel, padding), its label map carried through the
same crop and resampling, and the result cached as ``.npz`` in a cache folder. The cache key
hashes the source files' paths, modification times and sizes and the preprocess config: editing
a source file or changing the config rebuilds the entry, and stale entries of the case are
removed.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from bratseg.atomic import atomic_write
from bratseg.errors import BratsInputError
from bratseg.io import find_case_files, list_case_folders, load_case
from bratseg.io.nnunet import is_nnunet_dataset, read_nnunet_dataset
from bratseg.labels import CLASSES, tissue_index_map
from bratseg.orientation import BRATS_AXCODES, reorientation
from bratseg.preprocess import PreprocessConfig, preprocess_with_config
from bratseg.training.splits import shuffled_folds

logger = logging.getLogger(__name__)

#: Bumped when the cached arrays change meaning (2: reoriented to :data:`TRAINING_AXCODES`).
CACHE_VERSION = 2
#: Voxel orientation every case is brought to before training (the BraTS storage), recorded in
#: the checkpoints so that inference reorients cases the same way.
TRAINING_AXCODES = BRATS_AXCODES


@dataclass(frozen=True)
class CaseRef:
    """A labelled case on disk (nothing loaded).

    Attributes:
        case_id: Case name (folder name).
        folder: Case folder.
        files: Channel -> file, including ``"seg"``.
        seg_on_image_grid: Take the label map on the images' grid when only its origin differs
            (see :func:`bratseg.io.load_case`); set per case, explicitly, never by default.
        labels: Label convention of the seg when the layout says it (``"nnunet"`` for an nnU-Net
            dataset), else None (detected from the values).
        mapped: The files are given explicitly (cases sharing one folder, as in nnU-Net's).
        align: How series on other grids are aligned (:mod:`bratseg.io.align`).
    """

    case_id: str
    folder: Path
    files: dict[str, Path] = field(hash=False, compare=False, default_factory=dict)
    seg_on_image_grid: bool = field(default=False, compare=False)
    labels: str | None = field(default=None, compare=False)
    mapped: bool = field(default=False, compare=False)
    align: str = field(default="none", compare=False)


@dataclass
class CachedCase:
    """A preprocessed case as used for training.

    Attributes:
        case_id: Case name.
        image: float16 (C, x, y, z) network-grid image (C = 4, or 5 with the foreground channel).
        label: uint8 (x, y, z) class indices in :data:`bratseg.labels.CLASSES` order.
    """

    case_id: str
    image: np.ndarray
    label: np.ndarray


def discover_cases(
    folders: Sequence[str | Path], seg_on_image_grid: Sequence[str] = (), align: str = "none"
) -> list[CaseRef]:
    """All labelled cases under ``folders`` (each a case folder or a folder of case folders).

    Args:
        folders: Folders of case folders, or case folders.
        seg_on_image_grid: Case ids whose label map is taken on the images' grid when only its
            origin differs (a warning is logged when that happens).
        align: ``"none"``, ``"resample"`` or ``"register"`` for every case (series on other grids).

    Raises:
        BratsInputError: A folder is missing, no labelled case is found at all, or a case of
            ``seg_on_image_grid`` is not among them.
    """
    by_id: dict[str, CaseRef] = {}
    for root in folders:
        if is_nnunet_dataset(root):  # nnU-Net v2 raw layout: imagesTr/labelsTr + dataset.json
            for item in read_nnunet_dataset(root):
                if "seg" in item.files:
                    by_id[item.case_id] = CaseRef(
                        item.case_id,
                        Path(root) / "imagesTr",
                        dict(item.files),
                        labels="nnunet",
                        mapped=True,
                    )
            continue
        cases = list_case_folders(root)
        n_labelled = 0
        for folder in cases:
            files = find_case_files(folder)
            if "seg" not in files:
                logger.info("skipping %s: no label map", folder)
                continue
            if folder.name in by_id:
                logger.warning(
                    "case %s in %s replaces the one in %s",
                    folder.name,
                    root,
                    by_id[folder.name].folder,
                )
            by_id[folder.name] = CaseRef(folder.name, Path(folder), files)
            n_labelled += 1
        logger.info("%s: %d case folders, %d with labels", root, len(cases), n_labelled)
    if not by_id:
        where = ", ".join(str(f) for f in folders)
        raise BratsInputError(
            f"no labelled case (a case folder with a *_seg file) found in {where}"
        )
    unknown = sorted(set(seg_on_image_grid) - set(by_id))
    if unknown:
        raise BratsInputError(
            f"seg-on-image-grid case(s) not found among the labelled cases: {', '.join(unknown)}"
        )
    for case_id in seg_on_image_grid:
        by_id[case_id] = dataclasses.replace(by_id[case_id], seg_on_image_grid=True)
    if align != "none":
        by_id = {k: dataclasses.replace(v, align=align) for k, v in by_id.items()}
    return [by_id[k] for k in sorted(by_id)]


@dataclass
class Split:
    """Train/validation case ids and a human note on how they were chosen."""

    train: list[str]
    val: list[str]
    note: str = ""


def split_cases(
    case_ids: Sequence[str],
    *,
    val_fraction: float = 0.2,
    val_cases: Sequence[str] | None = None,
    fold: int | None = None,
    folds: int = 5,
    seed: int = 0,
) -> Split:
    """Split case ids into training and validation sets, by case, reproducibly.

    Args:
        case_ids: All case ids.
        val_fraction: Fraction of cases held out (at least one when there are two or more).
        val_cases: Explicit validation case ids (overrides the fraction).
        fold: K-fold index in ``[0, folds)`` (overrides the fraction).
        folds: Number of folds.
        seed: Shuffle seed.

    Returns:
        :class:`Split`. With a single case, it is used for training and validation (noted).
    """
    ids = sorted(case_ids)
    if val_cases:
        unknown = [c for c in val_cases if c not in ids]
        if unknown:
            raise BratsInputError(
                f"validation case(s) not found among the training data: {', '.join(unknown)}"
            )
        val = [c for c in ids if c in set(val_cases)]
        train = [c for c in ids if c not in set(val)]
        note = f"validation cases given: {len(val)}"
    else:
        order = list(ids)
        np.random.default_rng(seed).shuffle(order)
        if fold is not None:
            if not 0 <= fold < folds or folds < 2:
                raise BratsInputError(
                    f"fold must be in [0, {folds}) with at least 2 folds, got {fold}"
                )
            val = shuffled_folds(ids, folds, seed)[fold]
            note = f"fold {fold} of {folds} (seed {seed})"
        elif len(order) >= 2 and val_fraction > 0:
            n_val = min(len(order) - 1, max(1, int(round(len(order) * val_fraction))))
            val = sorted(order[:n_val])
            note = f"{n_val} of {len(order)} cases held out (seed {seed})"
        else:
            val = []
            note = ""
        train = [c for c in ids if c not in set(val)]
    if not train:
        raise BratsInputError("no training case left after the validation split")
    if not val:
        val = list(train)
        note = "validation on the training case(s): no separate validation case"
        logger.warning(note)
    return Split(train=train, val=val, note=note)


# ----------------------------------------------------------------------------------- cache


def cache_key(ref: CaseRef, preprocess: PreprocessConfig) -> str:
    """Hash of the source files (resolved path, mtime, size) and the preprocess config."""
    files: dict[str, list[Any]] = {}
    for modality, path in sorted(ref.files.items()):
        st = Path(path).stat()
        files[modality] = [str(Path(path).resolve()), st.st_mtime_ns, st.st_size]
    key: dict[str, Any] = {
        "version": CACHE_VERSION,
        "files": files,
        "preprocess": preprocess.to_dict(),
    }
    if ref.seg_on_image_grid:
        key["seg_on_image_grid"] = True
    if ref.align != "none":
        key["align"] = ref.align
    blob = json.dumps(key, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()


def preprocess_case(ref: CaseRef, preprocess: PreprocessConfig) -> CachedCase:
    """Load a case and bring image and label map to the network grid.

    The label map follows the image's crop; when resampling, its one-hot classes are
    interpolated trilinearly and the argmax taken (smoother than nearest neighbour).
    """
    case = load_case(
        ref.folder,
        mapping=dict(ref.files) if ref.mapped else None,
        seg_on_image_grid=ref.seg_on_image_grid,
        labels=ref.labels,
        case_id=ref.case_id,
        align=ref.align,
    )
    if case.seg is None or case.seg_convention is None:
        raise BratsInputError("case has no usable label map", ref.folder)
    reo = reorientation(case.affine, TRAINING_AXCODES)
    image, info = preprocess_with_config(
        reo.apply(case.image, leading=1), reo.spacing(case.spacing), preprocess
    )
    seg = reo.apply(case.seg)
    index = tissue_index_map(case.seg_convention)[seg][info.slices].astype(np.int64)
    if info.resampled:
        onehot = F.one_hot(torch.from_numpy(index), len(CLASSES)).permute(3, 0, 1, 2)[None].float()
        with torch.no_grad():
            onehot = F.interpolate(
                onehot, size=tuple(info.resampled_shape), mode="trilinear", align_corners=False
            )
        index = onehot[0].argmax(0).numpy()
    label = np.pad(index.astype(np.uint8), [(0, p) for p in info.pad])
    assert label.shape == image.shape[1:], (label.shape, image.shape)
    return CachedCase(ref.case_id, image.astype(np.float16), label)


def load_cached_case(
    ref: CaseRef, preprocess: PreprocessConfig, cache_dir: str | Path
) -> CachedCase:
    """The preprocessed case from ``cache_dir``, built (and stale entries removed) if needed."""
    cache_dir = Path(cache_dir)
    cache_dir.mkdir(parents=True, exist_ok=True)
    key = cache_key(ref, preprocess)[:20]
    path = cache_dir / f"{ref.case_id}--{key}.npz"
    if path.exists():
        try:
            with np.load(path) as z:
                return CachedCase(ref.case_id, z["image"], z["label"])
        except (OSError, ValueError, KeyError) as exc:  # corrupt entry: rebuild
            logger.warning("rebuilding unreadable cache entry %s (%s)", path, exc)
    for stale in cache_dir.glob(f"{ref.case_id}--*.npz"):
        stale.unlink(missing_ok=True)
    cached = preprocess_case(ref, preprocess)
    with atomic_write(path) as fh:
        np.savez(fh, image=cached.image, label=cached.label)
    logger.info("cached %s %s -> %s", ref.case_id, cached.image.shape, path.name)
    return cached


def load_cases(
    refs: Sequence[CaseRef], preprocess: PreprocessConfig, cache_dir: str | Path
) -> list[CachedCase]:
    """:func:`load_cached_case` for every case, in order."""
    return [load_cached_case(r, preprocess, cache_dir) for r in refs]
