"""Training patches: the augmentation pipeline's input per case, the patch dataset, its sampler.

A case (:class:`bratseg.training.data.CachedCase`, already on the network grid) becomes one
input dict for the MONAI pipeline (:func:`training_sample`); :class:`PatchDataset` draws
augmented patches from them, reproducibly per ``(seed, epoch, item)``, and :class:`EpochSampler`
shards and shuffles the items of an epoch, resumable mid-epoch.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset, DistributedSampler, Sampler

from bratseg.errors import BratsInputError
from bratseg.io import MODALITIES
from bratseg.preprocess import PreprocessConfig
from bratseg.training.data import CachedCase


def pad_to_patch(array: np.ndarray, patch: Sequence[int]) -> np.ndarray:
    """Zero-pad the last three axes (at their end) to at least ``patch``."""
    pad = [max(0, int(p) - s) for p, s in zip(patch, array.shape[-3:])]
    if not any(pad):
        return array
    return np.pad(array, [(0, 0)] * (array.ndim - 3) + [(0, p) for p in pad])


def training_sample(
    case: CachedCase, patch: Sequence[int], region_weights: Sequence[float] | None = None
) -> dict[str, Any]:
    """The augmentation pipeline's input dict for one case (see :mod:`.augment`).

    ``"image"`` holds the modality channels, ``"extra"`` any further channel (foreground),
    ``"label"`` (1, x, y, z) class indices; ``"fg_indices"`` lists tumour voxels for the
    foreground-biased crop and ``"bg_indices"`` a sparse set of brain voxels (fallback when a
    case has no tumour). ``region_weights`` (WT, TC, ET loss weights of this case, see
    :func:`bratseg.training.recipes.case_region_weights`) ride along as ``"region_weights"``
    (3,) float32 when given.
    """
    image = pad_to_patch(case.image, patch)
    label = pad_to_patch(case.label[None], patch)
    flat = label.reshape(-1)
    fg = np.flatnonzero(flat > 0)
    brain = np.flatnonzero(np.any(image[: len(MODALITIES)] != 0, axis=0).reshape(-1))
    bg = brain[:: max(1, brain.size // 4096)] if brain.size else np.arange(0, flat.size, 97)
    n_mod = len(MODALITIES)
    sample: dict[str, Any] = {
        "image": image[:n_mod],
        "label": label,
        "fg_indices": fg,
        "bg_indices": bg,
    }
    if image.shape[0] > n_mod:
        sample["extra"] = image[n_mod:]
    if region_weights is not None:
        sample["region_weights"] = np.asarray(region_weights, dtype=np.float32)
    return sample


class PatchDataset(Dataset):
    """Augmented training patches; item ``g`` is patch ``g % n`` of epoch ``g // n``.

    The case of item ``i`` within an epoch is ``i % len(cases)``; the sampler shuffles the
    order. The augmentation pipeline is re-seeded per item from ``(seed, epoch, i)``, so an item
    is the same whichever worker or process draws it, and a resumed run sees the same patches.

    Args:
        cases: Pipeline input dicts from :func:`training_sample`.
        augment: The MONAI pipeline (:func:`bratseg.training.augment.build_augmentation`).
        samples_per_epoch: Items per epoch (all processes together).
        seed: Base seed.
    """

    def __init__(
        self, cases: Sequence[dict[str, Any]], augment: Any, samples_per_epoch: int, seed: int = 0
    ) -> None:
        self.cases = list(cases)
        self.augment = augment
        self.samples_per_epoch = int(samples_per_epoch)
        self.seed = int(seed)

    def __len__(self) -> int:
        return self.samples_per_epoch

    def __getitem__(self, g: int) -> dict[str, torch.Tensor]:
        from bratseg.training.augment import unwrap_sample

        epoch, i = divmod(int(g), self.samples_per_epoch)
        item_seed = int(np.random.SeedSequence([self.seed, epoch, i]).generate_state(1)[0])
        self.augment.set_random_state(seed=item_seed)
        sample = dict(self.cases[i % len(self.cases)])
        return unwrap_sample(self.augment(sample))


class EpochSampler(Sampler[int]):
    """Shuffled, rank-sharded item indices of one epoch, resumable mid-epoch.

    Wraps :class:`torch.utils.data.DistributedSampler` (works with a single process too) and
    offsets indices by ``epoch * samples_per_epoch`` for :class:`PatchDataset`.
    """

    def __init__(
        self, samples_per_epoch: int, *, world_size: int = 1, rank: int = 0, seed: int = 0
    ) -> None:
        self.samples_per_epoch = int(samples_per_epoch)
        indices: Any = range(self.samples_per_epoch)  # a sized sequence is all the sampler reads
        self._dist: DistributedSampler[int] = DistributedSampler(
            indices,
            num_replicas=world_size,
            rank=rank,
            shuffle=True,
            seed=seed,
        )
        self.epoch = 0
        self.skip = 0

    def set_epoch(self, epoch: int, skip: int = 0) -> None:
        """Select the epoch and how many of this rank's items to skip (resume mid-epoch)."""
        self.epoch = int(epoch)
        self.skip = int(skip)
        self._dist.set_epoch(self.epoch)

    def __iter__(self) -> Iterator[int]:
        base = self.epoch * self.samples_per_epoch
        return iter([base + i for i in list(self._dist)[self.skip :]])

    def __len__(self) -> int:
        return max(0, len(self._dist) - self.skip)


def default_patch(
    preprocess: PreprocessConfig, size_divisor: int, max_size: int = 128
) -> tuple[int, int, int]:
    """A patch covering about 160 x 192 x 160 mm (a whole brain box), capped per axis.

    At 2 mm this is (80, 96, 80): the whole cropped brain; at 1 mm it is (128, 128, 128), the
    papers' patch (Jiang et al. 2020; Henry et al. 2021; Futrega et al. 2021).
    """
    spacing = preprocess.target_spacing or 1.0
    out = []
    for mm in (160, 192, 160):
        n = min(max_size, int(math.ceil(mm / spacing)))
        out.append(int(math.ceil(n / size_divisor) * size_divisor))
    return tuple(out)  # type: ignore[return-value]


def case_repeats(
    train_ids: Sequence[str],
    oversample: Sequence[str] | None,
    strata: dict[str, str] | None = None,
) -> dict[str, int]:
    """How many times each training case enters the patch dataset (1 unless oversampled).

    Args:
        train_ids: The run's training case ids.
        oversample: ``"NAME=K"`` entries; ``NAME`` is a training case id or a stratum of
            ``strata`` (all its training cases), ``K`` an integer >= 1; a case named twice takes
            the larger factor.
        strata: Case id -> stratum (the split file's), when the run has a split file.

    Returns:
        Case id -> repeat factor, for every training case.

    Raises:
        BratsInputError: A malformed entry, a factor below 1, or a name that is neither a training
            case nor a stratum with training cases.
    """
    repeats = dict.fromkeys(train_ids, 1)
    for entry in oversample or []:
        name, sep, factor = str(entry).partition("=")
        try:
            k = int(factor)
        except ValueError:
            k = 0
        if not sep or k < 1:
            raise BratsInputError(
                f"--oversample needs NAME=K with an integer K >= 1, got {entry!r}"
            )
        members = [c for c in train_ids if c == name or (strata or {}).get(c) == name]
        if not members:
            known = sorted(set((strata or {}).values())) or ["(no split file: case ids only)"]
            raise BratsInputError(
                f"--oversample {entry!r}: {name!r} is neither a training case nor a stratum "
                f"with training cases (strata: {', '.join(known)})"
            )
        for case_id in members:
            repeats[case_id] = max(repeats[case_id], k)
    return repeats


def repeated(
    samples: Sequence[dict[str, Any]], ids: Sequence[str], repeats: dict[str, int]
) -> list[dict[str, Any]]:
    """``samples`` (one per case of ``ids``) with each case's sample ``repeats[id]`` times.

    The repeats are the same objects (no copy): oversampling costs no memory.
    """
    return [s for s, c in zip(samples, ids, strict=True) for _ in range(repeats.get(c, 1))]
