"""BraTS label conventions: the one place that knows label 4 versus label 3.

Four conventions exist:

* ``"2021"`` (BraTS 2017-2021): 0 background, 1 NCR/NET, 2 ED, 4 ET.
* ``"2023"`` (BraTS 2023+, also BraTS-MET): 0 background, 1 NCR (NETC), 2 ED (SNFH), 3 ET.
* ``"2024"`` (BraTS 2024 post-treatment glioma): 1 NETC, 2 SNFH, 3 ET, 4 RC (resection cavity).
  RC is a region of its own, never tumour: it is in none of WT, TC, ET.
* ``"nnunet"`` (nnU-Net's BraTS dataset, Dataset137): 1 ED, 2 NCR, 3 ET.

Regions are nested: WT = NCR | ED | ET, TC = NCR | ET, ET = ET, so ET ⊂ TC ⊂ WT.

Values alone cannot always tell the convention: a 3 without a 4 is 2023 or nnunet (NCR and ED
swapped), a 4 without a 3 is 2021 or 2024 (ET or resection cavity). :func:`detect_convention`
then keeps the long-standing reading (2023, resp. 2021), says why in a warning, and an explicit
convention (``--labels``) decides. Only 2024 holds both 3 and 4.
Everywhere in the engine, region arrays are stacked in the order :data:`REGIONS`
(``wt, tc, et``), and class-probability arrays in the order :data:`CLASSES`
(background, NCR, ED, ET).
"""

from __future__ import annotations

import logging
from typing import Literal

import numpy as np

from bratseg.errors import BratsInputError

logger = logging.getLogger(__name__)

Convention = Literal["2021", "2023", "2024", "nnunet"]
CONVENTIONS: tuple[Convention, ...] = ("2021", "2023", "2024", "nnunet")
#: Conventions a prediction can be written in (they describe the three tumour tissues).
OUTPUT_CONVENTIONS: tuple[Convention, ...] = ("2021", "2023", "nnunet")
#: The BraTS conventions a reviewer chooses between for a case folder (ET = 4 or ET = 3).
BRATS_CONVENTIONS: tuple[Convention, ...] = ("2021", "2023")

#: Region names in the canonical stacking order of every region array (C=3 axis).
REGIONS: tuple[str, str, str] = ("wt", "tc", "et")
REGION_NAMES = {
    "wt": "Whole tumour",
    "tc": "Tumour core",
    "et": "Enhancing tumour",
    "rc": "Resection cavity",
}

#: Tissue classes in the canonical order of every class-probability array (C=4 axis).
CLASSES: tuple[str, str, str, str] = ("background", "ncr", "ed", "et")

#: Label values of each tissue per convention (``rc``: resection cavity, 2024 only).
LABEL_VALUES: dict[str, dict[str, int]] = {
    "2021": {"ncr": 1, "ed": 2, "et": 4},
    "2023": {"ncr": 1, "ed": 2, "et": 3},
    "2024": {"ncr": 1, "ed": 2, "et": 3, "rc": 4},
    "nnunet": {"ed": 1, "ncr": 2, "et": 3},
}
#: Tumour tissues (every convention has them; ``rc`` is not tumour).
TISSUES: tuple[str, str, str] = ("ncr", "ed", "et")

#: Short and long display names of the tissue labels.
LABEL_NAMES = {
    "ncr": "NCR (necrosis / non-enhancing core)",
    "ed": "ED (peritumoral edema)",
    "et": "ET (enhancing tumour)",
    "rc": "RC (resection cavity)",
}
#: Display colours (RGBA, 0-1), shared by the plugin and any exported figure.
LABEL_COLORS: dict[str, tuple[float, float, float, float]] = {
    "ncr": (1.0, 0.84, 0.0, 1.0),  # yellow-orange, classic BraTS figures
    "ed": (0.0, 0.78, 0.0, 1.0),  # green
    "et": (0.9, 0.0, 0.0, 1.0),  # red
    "rc": (0.2, 0.45, 1.0, 1.0),  # blue
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
        raise BratsInputError(
            f"unknown label convention {convention!r}; use one of {', '.join(CONVENTIONS)}"
        )
    return conv


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


#: Ambiguity warnings already given in this process (one line each, not one per file).
_WARNED: set[str] = set()

_AMBIGUOUS = {
    "2021": "holds 4 but no 3: read as BraTS 2021 (4 = ET); a BraTS 2024 post-treatment map "
    "(4 = resection cavity) needs --labels 2024",
    "2023": "holds 3 but no 4: read as BraTS 2023 (1 NCR, 2 ED, 3 ET); an nnU-Net BraTS map "
    "(1 ED, 2 NCR, 3 ET) needs --labels nnunet",
}


def detect_convention(
    labels: np.ndarray,
    override: str | None = None,
    default: Convention = "2021",
    source: str | None = None,
    strict: bool = False,
) -> Convention:
    """Decide which convention a label map uses.

    Both 3 and 4 mean 2024. A 4 alone is read as 2021 and a 3 alone as 2023, the long-standing
    readings, with a warning naming the other possibility (once per process); with ``strict``
    these ambiguous maps are an error instead. A map with only 0/1/2 gets ``default``. An
    explicit ``override`` wins but is still checked against the values present.

    Args:
        labels: Integer label map, any shape.
        override: A convention of :data:`CONVENTIONS` to force, or ``None`` to detect.
        default: Convention for maps holding neither 3 nor 4.
        source: File name used in messages.
        strict: Refuse to guess between two conventions the values allow.

    Raises:
        BratsInputError: Values outside every convention, values that contradict
            ``override``, or (``strict``) an ambiguous map.
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
        return "2024"
    guess: Convention | None = "2021" if 4 in present else "2023" if 3 in present else None
    if guess is None:
        return default
    message = f"label map {_AMBIGUOUS[guess]}"
    if strict:
        raise BratsInputError(message, source)
    if message not in _WARNED:
        _WARNED.add(message)
        logger.warning(
            "%s%s (further maps like it are read the same way without this warning)",
            f"{source}: " if source else "",
            message,
        )
    return guess


def convert_labels(
    labels: np.ndarray, src: Convention, dst: Convention, *, drop_rc: bool = False
) -> np.ndarray:
    """Convert a label map between any two conventions, tissue by tissue.

    Args:
        labels: Integer label map, any shape, in convention ``src``.
        src: Source convention.
        dst: Target convention.
        drop_rc: When ``dst`` has no resection cavity, turn ``src``'s RC into background
            (otherwise an RC voxel is an error).

    Returns:
        uint8 label map of the same shape in convention ``dst`` (a new array).

    Raises:
        BratsInputError: RC voxels present, ``dst`` without RC and not ``drop_rc``; or values
            not valid in ``src``.
    """
    src, dst = check_convention(src), check_convention(dst)
    lab = np.asarray(labels)
    bad = _present_values(lab) - set(valid_labels(src))
    if bad:  # checked in every case: a written label map only ever holds BraTS labels
        raise BratsInputError(
            f"label values {sorted(bad)} are not valid in the BraTS {src} convention"
        )
    if src == dst:
        return lab.astype(np.uint8, copy=True)
    lut = np.zeros(256, dtype=np.uint8)
    for tissue, value in LABEL_VALUES[src].items():
        if tissue in LABEL_VALUES[dst]:
            lut[value] = LABEL_VALUES[dst][tissue]
        elif np.any(lab == value) and not drop_rc:
            raise BratsInputError(
                f"the map holds {LABEL_NAMES[tissue]} (label {value}), which BraTS {dst} has no label for; "
                "drop it explicitly (--drop-rc) to convert it to background"
            )
    return lut[lab.astype(np.uint8)]


def rc_mask(labels: np.ndarray, convention: Convention) -> np.ndarray | None:
    """Boolean resection-cavity mask, or ``None`` when ``convention`` has no RC label."""
    value = LABEL_VALUES[check_convention(convention)].get("rc")
    return None if value is None else np.asarray(labels) == value


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


#: How :func:`labels_from_regions` makes region masks nested (ET ⊂ TC ⊂ WT).
Nesting = Literal["clip", "keep_et", "nested"]


def labels_from_regions(
    wt: np.ndarray,
    tc: np.ndarray,
    et: np.ndarray,
    convention: Convention,
    nesting: Nesting = "clip",
) -> np.ndarray:
    """Label map from region masks: NCR = TC − ET, ED = WT − TC (Henry et al. 2021).

    The one builder of label maps from region masks (postprocessing, corrections, conversions).

    Args:
        wt, tc, et: Boolean masks of shape (X, Y, Z).
        convention: Convention of the returned map.
        nesting: How masks that are not nested are made so:

            - ``"clip"``: TC is clipped to WT and ET to TC (a region never grows);
            - ``"keep_et"``: ET is left untouched and TC, WT grow to hold it (Henry et al.
              2021's reconstruction: an ET voxel outside TC / WT is still ET);
            - ``"nested"``: the masks are already nested (not checked: fastest, for the
              hierarchical thresholds of :func:`bratseg.postprocess.postprocess`).

    Returns:
        uint8 label map of shape (X, Y, Z).
    """
    values = LABEL_VALUES[check_convention(convention)]
    if nesting not in ("clip", "keep_et", "nested"):
        raise ValueError(f"unknown nesting {nesting!r} (clip, keep_et or nested)")
    wt = np.asarray(wt, dtype=bool)
    tc = np.asarray(tc, dtype=bool)
    et = np.asarray(et, dtype=bool)
    if nesting == "clip":
        tc = tc & wt
        et = et & tc
    elif nesting == "keep_et":
        tc = tc | et
        wt = wt | tc
    # For nested masks ED = wt·ed, NCR = ed + (ncr − ed), ET = ncr + (et − ncr); the
    # differences are taken modulo 256 so the uint8 sums wrap to the exact label values.
    ed, ncr, etv = values["ed"], values["ncr"], values["et"]
    out = wt.view(np.uint8) * np.uint8(ed)
    out += tc.view(np.uint8) * np.uint8((ncr - ed) % 256)
    out += et.view(np.uint8) * np.uint8((etv - ncr) % 256)
    return out


def tissue_index_map(convention: Convention) -> np.ndarray:
    """Lookup table from label value to class index in :data:`CLASSES` (0 bg, 1 NCR, 2 ED, 3 ET).

    Returns:
        int64 array of length 5 usable as ``lut[labels]``.
    """
    values = LABEL_VALUES[check_convention(convention)]
    lut = np.zeros(5, dtype=np.int64)  # RC (2024) stays background: it is not tumour
    for idx, tissue in enumerate(CLASSES[1:], start=1):
        lut[values[tissue]] = idx
    return lut
