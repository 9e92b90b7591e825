"""Cross-validation splits: seeded, by case, stratified by enhancement, fixed in a file.

A split file is JSON written by :func:`write_split_file` and read by the trainer
(``napari-brats train --split-file FILE --fold K``) and the cross-validation tools, so every
fold run and every score of a protocol uses exactly the same cases::

    {"name": "brats44-5fold", "seed": 0, "n_folds": 5,
     "folds": [["case", ...], ...],               # held-out cases of each fold
     "cases": {"case": {"dataset": "brats2018", "et_ml": 12.3, "stratum": "enhancing"}, ...}}

Cases are stratified so that every fold holds tumours with little or no enhancement (reference
ET below :data:`LOW_ET_ML`; low-grade gliomas mostly), the ones on which a model is most likely
to invent ET, and, within each stratum, cases of every source dataset. Three strata: ET below
:data:`NON_ENHANCING_ET_ML` (``non-enhancing``), below :data:`LOW_ET_ML` (``low-et``) and the rest
(``enhancing``). A split can be extended with new cases (:func:`extend_split`) so that the fold
models of the smaller split stay leak-free under the larger one: ``brats77-5fold`` is
``brats44-5fold`` with 33 cases added, stratified by enhancement and source family
(:func:`source_of`). Cases are identified by their id (the case folder's
name) and dataset (the name of the folder of case folders), never by a machine's absolute path.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bratseg.atomic import atomic_write
from bratseg.errors import BratsInputError

logger = logging.getLogger(__name__)

#: Reference ET volume (mL) below which a tumour counts as non-enhancing in reports.
NON_ENHANCING_ET_ML = 1.0
#: Reference ET volume (mL) below which a case falls in the low-enhancement stratum (6 of the 44
#: training cases, 1.4-2.6 mL: enough for one in every fold of five).
LOW_ET_ML = 3.0


@dataclass(frozen=True)
class CaseInfo:
    """What a split needs to know of one labelled case.

    Attributes:
        case_id: Case id (case folder name).
        dataset: Name of the folder of case folders it came from (e.g. ``brats2018``).
        et_ml: Reference ET volume in mL.
    """

    case_id: str
    dataset: str
    et_ml: float

    @property
    def stratum(self) -> str:
        """``"non-enhancing"`` (ET below :data:`NON_ENHANCING_ET_ML`), ``"low-et"`` (below
        :data:`LOW_ET_ML`) or ``"enhancing"``."""
        if self.et_ml < NON_ENHANCING_ET_ML:
            return "non-enhancing"
        return "low-et" if self.et_ml < LOW_ET_ML else "enhancing"

    @property
    def source(self) -> str:
        """The BraTS release family the case comes from (see :func:`source_of`)."""
        return source_of(self.case_id)


#: Source families of BraTS cases, told apart by their release's case naming.
SOURCES: tuple[str, str, str] = ("brats2017-2021", "brats2023-gli", "brats-africa")


def source_of(case_id: str) -> str:
    """The source family of a BraTS case id: BraTS-Africa (``BraTS-SSA-*``), BraTS 2023 adult
    glioma (``BraTS-GLI-*``), or the 2017-2021 releases (every other name, e.g. ``Brats18_*``,
    ``BraTS2021_*``). Scanners and resolution differ between them, so folds hold each."""
    if case_id.startswith("BraTS-SSA-"):
        return SOURCES[2]
    if case_id.startswith("BraTS-GLI-"):
        return SOURCES[1]
    return SOURCES[0]


def _check_fold_count(n_cases: int, n_folds: int) -> None:
    """Refuse fewer than 2 folds, or fewer cases than folds."""
    if n_folds < 2:
        raise BratsInputError(f"a cross-validation split needs at least 2 folds, got {n_folds}")
    if n_cases < n_folds:
        raise BratsInputError(
            f"{n_folds}-fold split needs at least {n_folds} cases, found {n_cases}"
        )


def shuffled_folds(case_ids: Sequence[str], n_folds: int, seed: int = 0) -> list[list[str]]:
    """Deal cases into ``n_folds`` folds without strata (the trainer's ``--folds K --fold k``).

    The sorted ids are shuffled (seeded) and cut into ``n_folds`` consecutive runs whose sizes
    differ by at most one (larger ones first, as ``numpy.array_split``).

    Returns:
        ``n_folds`` sorted lists of case ids (the held-out cases of each fold).

    Raises:
        BratsInputError: Fewer cases than folds, or fewer than 2 folds.
    """
    _check_fold_count(len(case_ids), n_folds)
    order = sorted(case_ids)
    np.random.default_rng(seed).shuffle(order)
    chunks = np.array_split(np.arange(len(order)), n_folds)
    return [sorted(order[i] for i in chunk) for chunk in chunks]


def stratified_folds(cases: Sequence[CaseInfo], n_folds: int, seed: int = 0) -> list[list[str]]:
    """Deal cases into ``n_folds`` folds, stratum by stratum, so each fold gets its share.

    Cases are ordered by stratum, then dataset, shuffled (seeded) within each group, and dealt
    round-robin; the dealing continues across groups, so fold sizes differ by at most one.

    Returns:
        ``n_folds`` sorted lists of case ids (the held-out cases of each fold).

    Raises:
        BratsInputError: Fewer cases than folds, fewer than 2 folds, or a repeated case id.
    """
    _check_fold_count(len(cases), n_folds)
    ids = [c.case_id for c in cases]
    if len(set(ids)) != len(ids):
        raise BratsInputError("a case id appears twice in the split's cases")
    rng = np.random.default_rng(seed)
    groups: dict[tuple[str, str], list[str]] = {}
    for case in sorted(cases, key=lambda c: c.case_id):
        groups.setdefault((case.stratum, case.dataset), []).append(case.case_id)
    folds: list[list[str]] = [[] for _ in range(n_folds)]
    turn = 0
    for key in sorted(groups):
        members = list(groups[key])
        rng.shuffle(members)
        for case_id in members:
            folds[turn % n_folds].append(case_id)
            turn += 1
    return [sorted(f) for f in folds]


@dataclass
class SplitFile:
    """A fixed k-fold split (see the module docstring for the file format)."""

    name: str
    seed: int
    folds: list[list[str]]
    cases: dict[str, dict[str, Any]]

    @property
    def n_folds(self) -> int:
        """Number of folds."""
        return len(self.folds)

    def strata(self) -> dict[str, str]:
        """Case id -> its stratum (``"non-enhancing"``, ``"low-et"`` or ``"enhancing"``)."""
        return {c: str(info.get("stratum")) for c, info in self.cases.items()}

    def fold_of(self, case_id: str) -> int:
        """The fold that holds ``case_id`` out."""
        for k, fold in enumerate(self.folds):
            if case_id in fold:
                return k
        raise KeyError(case_id)

    def train_val(self, fold: int) -> tuple[list[str], list[str]]:
        """(training ids, held-out ids) of fold ``fold``.

        Raises:
            BratsInputError: ``fold`` out of range.
        """
        if not 0 <= fold < self.n_folds:
            raise BratsInputError(
                f"fold must be in [0, {self.n_folds}) for split {self.name}, got {fold}"
            )
        val = sorted(self.folds[fold])
        train = sorted(c for k, f in enumerate(self.folds) if k != fold for c in f)
        return train, val

    def to_dict(self) -> dict[str, Any]:
        """The JSON object written to disk."""
        return {
            "name": self.name,
            "seed": self.seed,
            "n_folds": self.n_folds,
            "folds": self.folds,
            "cases": self.cases,
        }


def extend_split(
    base: SplitFile, new_cases: Sequence[CaseInfo], name: str, seed: int = 0
) -> SplitFile:
    """``base`` with ``new_cases`` dealt into its folds; every base case keeps its fold.

    A fold model trained under ``base`` therefore never saw the held-out cases of the same fold
    of the extended split, and can be fine-tuned on it without leakage. New cases are grouped by
    (stratum, source), shuffled (seeded) within each group and dealt, group after group, each
    to the fold that holds fewest cases of that group so far, ties to the smaller fold.

    Raises:
        BratsInputError: A new case id already in ``base`` or given twice.
    """
    held = {c for f in base.folds for c in f}
    ids = [c.case_id for c in new_cases]
    if len(set(ids)) != len(ids) or held & set(ids):
        raise BratsInputError("a new case id is already in the base split or given twice")
    rng = np.random.default_rng(seed)
    folds = [list(f) for f in base.folds]
    groups: dict[tuple[str, str], list[str]] = {}
    for case in sorted(new_cases, key=lambda c: c.case_id):
        groups.setdefault((case.stratum, case.source), []).append(case.case_id)
    for key in sorted(groups):
        members = list(groups[key])
        rng.shuffle(members)
        in_group = [0] * len(folds)
        for case_id in members:
            k = min(range(len(folds)), key=lambda i: (in_group[i], len(folds[i]), i))
            folds[k].append(case_id)
            in_group[k] += 1
    info = {c: dict(v) for c, v in base.cases.items()}
    for c in new_cases:
        info[c.case_id] = {"dataset": c.dataset, "et_ml": round(c.et_ml, 3), "stratum": c.stratum}
    for case_id, entry in info.items():
        entry["source"] = source_of(case_id)
    return SplitFile(
        name=name, seed=seed, folds=[sorted(f) for f in folds], cases=dict(sorted(info.items()))
    )


def make_split(cases: Sequence[CaseInfo], name: str, n_folds: int = 5, seed: int = 0) -> SplitFile:
    """The stratified split of ``cases`` (see :func:`stratified_folds`)."""
    folds = stratified_folds(cases, n_folds, seed)
    info = {
        c.case_id: {"dataset": c.dataset, "et_ml": round(c.et_ml, 3), "stratum": c.stratum}
        for c in sorted(cases, key=lambda c: c.case_id)
    }
    return SplitFile(name=name, seed=seed, folds=folds, cases=info)


def split_without(split: SplitFile, seen: Iterable[str], name: str) -> SplitFile:
    """``split`` with the cases of ``seen`` taken out; every other case keeps its fold.

    Scores of models that trained on ``seen`` (e.g. the earlier protocol's fold models) are held
    out on what is left. A fold may end empty.
    """
    drop = set(seen)
    return SplitFile(
        name=name,
        seed=split.seed,
        folds=[[c for c in fold if c not in drop] for fold in split.folds],
        cases={c: dict(info) for c, info in split.cases.items() if c not in drop},
    )


def write_split_file(split: SplitFile, path: str | Path, overwrite: bool = False) -> Path:
    """Write ``split`` as JSON (atomically, never over an existing file unless ``overwrite``)."""
    path = Path(path)
    with atomic_write(path, overwrite=overwrite) as fh:
        fh.write((json.dumps(split.to_dict(), indent=1) + "\n").encode())
    return path


def read_split_file(path: str | Path) -> SplitFile:
    """Read and check a split file.

    Raises:
        BratsInputError: Missing or unreadable file, wrong structure, or a case in two folds.
    """
    path = Path(path)
    try:
        raw = json.loads(path.read_text())
    except FileNotFoundError:
        raise BratsInputError("split file not found", path) from None
    except (OSError, ValueError) as exc:
        raise BratsInputError(f"not a readable JSON split file ({exc})", path) from None
    if (
        not isinstance(raw, Mapping)
        or not isinstance(raw.get("folds"), list)
        or not all(isinstance(f, list) and all(isinstance(c, str) for c in f) for f in raw["folds"])
    ):
        raise BratsInputError("split file needs a 'folds' list of lists of case ids", path)
    folds = [list(f) for f in raw["folds"]]
    seen: dict[str, int] = {}
    for k, fold in enumerate(folds):
        for case_id in fold:
            if case_id in seen:
                raise BratsInputError(
                    f"case {case_id} is held out by folds {seen[case_id]} and {k}", path
                )
            seen[case_id] = k
    if len(folds) < 2:
        raise BratsInputError("split file needs at least 2 folds", path)
    return SplitFile(
        name=str(raw.get("name") or path.stem),
        seed=int(raw.get("seed", 0)),
        folds=folds,
        cases=dict(raw.get("cases") or {}),
    )


def check_split_covers(
    split: SplitFile, case_ids: Sequence[str], source: str = "the data folders"
) -> None:
    """Refuse a split whose cases are not exactly ``case_ids`` (a fold run trains on all others).

    Raises:
        BratsInputError: A split case is missing from the data, or a data case is not in the split.
    """
    in_split = {c for f in split.folds for c in f}
    missing = sorted(in_split - set(case_ids))
    extra = sorted(set(case_ids) - in_split)
    if missing:
        raise BratsInputError(
            f"split {split.name}: case(s) {', '.join(missing)} not found in {source}"
        )
    if extra:
        raise BratsInputError(
            f"split {split.name}: case(s) {', '.join(extra)} of {source} are in no fold; "
            "a cross-validation run trains on exactly the split's cases"
        )


def split_from_file(path: str | Path, fold: int | None, case_ids: Sequence[str]) -> dict[str, Any]:
    """The trainer's split (``train``, ``val``, ``note``) for fold ``fold`` of a split file.

    Raises:
        BratsInputError: No fold given, a bad file, or cases that do not match the data.
    """
    if fold is None:
        raise BratsInputError("--split-file needs --fold K (the fold to hold out)")
    split = read_split_file(path)
    check_split_covers(split, case_ids)
    train, val = split.train_val(fold)
    return {
        "train": train,
        "val": val,
        "note": f"fold {fold} of {split.n_folds} of split {split.name}",
        "strata": split.strata(),
    }
