"""BraTS label conventions: the one place that knows label 4 versus label 3.

Two conventions exist:

* ``"2021"`` (BraTS 2017-2021): 0 background, 1 NCR/NET, 2 ED, 4 ET.
* ``"2023"`` (BraTS 2023+, also BraTS-MET): 0 background, 1 NCR (NETC), 2 ED (SNFH), 3 ET.

Regions are nested: WT = NCR | ED | ET, TC = NCR | ET, ET = ET, so ET ⊂ TC ⊂ WT.
Everywhere in the engine, region arrays are stacked in the order :data:`REGIONS`
(``wt, tc, et``), and class-probability arrays in the order :data:`CLASSES`
(background, NCR, ED, ET).
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from bratseg.errors import BratsInputError

Convention = Literal["2021", "2023"]
CONVENTIONS: tuple[Convention, ...] = ("2021", "2023")

#: Region names in the canonical stacking order of every region array (C=3 axis).
REGIONS: tuple[str, str, str] = ("wt", "tc", "et")
REGION_NAMES = {"wt": "Whole tumour", "tc": "Tumour core", "et": "Enhancing tumour"}

#: Tissue classes in the canonical order of every class-probability array (C=4 axis).
CLASSES: tuple[str, str, str, str] = ("background", "ncr", "ed", "et")

#: Label values of each tissue per convention.
LABEL_VALUES: dict[str, dict[str, int]] = {
    "2021": {"ncr": 1, "ed": 2, "et": 4},
    "2023": {"ncr": 1, "ed": 2, "et": 3},
}

#: Short and long display names of the tissue labels.
LABEL_NAMES = {
    "ncr": "NCR (necrosis / non-enhancing core)",
    "ed": "ED (peritumoral edema)",
    "et": "ET (enhancing tumour)",
}
#: Display colours (RGBA, 0-1), shared by the plugin and any exported figure.
LABEL_COLORS: dict[str, tuple[float, float, float, float]] = {
    "ncr": (1.0, 0.84, 0.0, 1.0),  # yellow-orange, classic BraTS figures
    "ed": (0.0, 0.78, 0.0, 1.0),  # green
    "et": (0.9, 0.0, 0.0, 1.0),  # red
}

#: Labels making up each region, by tissue name.
REGION_TISSUES: dict[str, tuple[str, ...]] = {
    "wt": ("ncr", "ed", "et"),
    "tc": ("ncr", "et"),
    "et": ("et",),
}


def check_convention(convention: str) -> Convention:
    """Return ``convention`` as a valid :data:`Convention` or raise a clear error."""
    conv = str(convention)
    if conv not in CONVENTIONS:
        raise BratsInputError(f"unknown label convention {convention!r}; use one of 2021, 2023")
    return conv  # type: ignore[return-value]


def label_value(tissue: str, convention: Convention) -> int:
    """Label value of ``tissue`` (``ncr``, ``ed`` or ``et``) in ``convention``."""
    return LABEL_VALUES[check_convention(convention)][tissue]


def valid_labels(convention: Convention) -> tuple[int, ...]:
    """All label values allowed in ``convention`` (background included)."""
    return (0, *sorted(LABEL_VALUES[check_convention(convention)].values()))


def _present_values(labels: np.ndarray) -> set:
    """Distinct values of ``labels`` (fast path for small integer ranges, e.g. label maps).

    ``np.unique`` sorts a flattened copy (seconds on a 512x512x176 map); for integer-valued maps
    spanning a few values, one comparison pass per candidate value is much cheaper.
    """
    arr = np.asarray(labels)
    if arr.size == 0:
        return set()
    lo, hi = arr.min(), arr.max()
    if np.isfinite(lo) and np.isfinite(hi) and float(hi) - float(lo) <= 16:
        candidates = np.arange(int(np.floor(lo)), int(np.floor(hi)) + 1)
        found = {int(v) for v in candidates if np.any(arr == v)}
        n_found = sum(int(np.count_nonzero(arr == v)) for v in found)
        if n_found == arr.size:  # every voxel is one of the integers found
            return found
    return set(np.unique(arr).tolist())


def detect_convention(
    labels: np.ndarray,
    override: str | None = None,
    default: Convention = "2021",
    source: str | None = None,
) -> Convention:
    """Decide which convention a label map uses.

    A 4 means 2021, a 3 means 2023; a map with only 0/1/2 is ambiguous and gets ``default``.
    An explicit ``override`` wins but is still checked against the values present.

    Args:
        labels: Integer label map, any shape.
        override: ``"2021"`` or ``"2023"`` to force a convention, or ``None`` to detect.
        default: Convention for maps holding neither 3 nor 4.
        source: File name used in error messages.

    Raises:
        BratsInputError: Values outside both conventions, both 3 and 4 present, or values that
            contradict ``override``.
    """
    present = _present_values(labels)
    if override is not None:
        conv = check_convention(override)
        bad = present - set(valid_labels(conv))
        if bad:
            raise BratsInputError(
                f"label values {sorted(bad)} are not valid in the BraTS {conv} convention "
                f"(allowed {list(valid_labels(conv))})",
                source,
            )
        return conv
    unknown = present - {0, 1, 2, 3, 4}
    if unknown:
        raise BratsInputError(
            f"label values {sorted(int(v) for v in unknown)} are not BraTS labels "
            "(expected 0, 1, 2 and 4 or 3)",
            source,
        )
    if 3 in present and 4 in present:
        raise BratsInputError(
            "label map holds both 3 and 4: mixes the 2021 (ET=4) and 2023 (ET=3) conventions",
            source,
        )
    if 4 in present:
        return "2021"
    if 3 in present:
        return "2023"
    return default


def convert_labels(labels: np.ndarray, src: Convention, dst: Convention) -> np.ndarray:
    """Convert a label map between conventions (only the ET value changes).

    Args:
        labels: Integer label map, any shape, in convention ``src``.
        src: Source convention.
        dst: Target convention.

    Returns:
        uint8 label map of the same shape in convention ``dst`` (a new array).
    """
    src, dst = check_convention(src), check_convention(dst)
    out = np.asarray(labels).astype(np.uint8, copy=True)
    if src != dst:
        out[np.asarray(labels) == LABEL_VALUES[src]["et"]] = LABEL_VALUES[dst]["et"]
    return out


def region_masks(labels: np.ndarray, convention: Convention) -> dict[str, np.ndarray]:
    """Boolean WT/TC/ET masks of a label map.

    Args:
        labels: Integer label map of shape (X, Y, Z).
        convention: Convention of ``labels``.

    Returns:
        ``{"wt": mask, "tc": mask, "et": mask}``, each bool of shape (X, Y, Z).
    """
    values = LABEL_VALUES[check_convention(convention)]
    lab = np.asarray(labels)
    et = lab == values["et"]
    tc = et | (lab == values["ncr"])
    wt = tc | (lab == values["ed"])
    return {"wt": wt, "tc": tc, "et": et}


def regions_to_stack(labels: np.ndarray, convention: Convention) -> np.ndarray:
    """Region masks stacked in :data:`REGIONS` order: bool array of shape (3, X, Y, Z)."""
    masks = region_masks(labels, convention)
    return np.stack([masks[r] for r in REGIONS])


def labels_from_regions(
    wt: np.ndarray, tc: np.ndarray, et: np.ndarray, convention: Convention
) -> np.ndarray:
    """Label map from (possibly non-nested) region masks, enforcing ET ⊂ TC ⊂ WT.

    TC is clipped to WT and ET to TC, then NCR = TC − ET and ED = WT − TC (seed 002's label
    reconstruction).

    Args:
        wt, tc, et: Boolean masks of shape (X, Y, Z).
        convention: Convention of the returned map.

    Returns:
        uint8 label map of shape (X, Y, Z).
    """
    values = LABEL_VALUES[check_convention(convention)]
    wt = np.asarray(wt, dtype=bool)
    tc = np.asarray(tc, dtype=bool) & wt
    et = np.asarray(et, dtype=bool) & tc
    out = np.zeros(wt.shape, dtype=np.uint8)
    out[wt] = values["ed"]
    out[tc] = values["ncr"]
    out[et] = values["et"]
    return out


def tissue_index_map(convention: Convention) -> np.ndarray:
    """Lookup table from label value to class index in :data:`CLASSES` (0 bg, 1 NCR, 2 ED, 3 ET).

    Returns:
        int64 array of length 5 usable as ``lut[labels]``.
    """
    values = LABEL_VALUES[check_convention(convention)]
    lut = np.zeros(5, dtype=np.int64)
    for idx, tissue in enumerate(CLASSES[1:], start=1):
        lut[values[tissue]] = idx
    return lut
