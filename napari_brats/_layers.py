"""Layer building: turn engine arrays into napari layer-data tuples and back.

The engine keeps every volume in file order (X, Y, Z), whatever the storage orientation. napari
shows the last two axes of a layer and puts a slider on the first. Layers therefore hold a view of
the volume brought to LPS axes (flips and a permutation from its affine, no resampling) and then
transposed to (Z, Y, X) = (I→S, A→P, R→L): the default view is axial and radiological (anterior
up, the patient's left on the right of the screen) for a file stored LPS, RAS, sagittally or any
other way, with anatomical axis labels and mm units. These are views, never copies, so painting
on a labels layer writes straight into the engine-order array it was built from, and
:func:`from_display` gives the source-storage array back for writing.

Every layer built here carries ``metadata["bratseg"]`` with the geometry (affine, header, spacing)
needed to write it back in the source geometry, its role and a reference to its
:class:`bratseg.io.Case` (:mod:`napari_brats._cases`): plain facts only, never the live case.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from bratseg.labels import LABEL_COLORS, LABEL_NAMES, LABEL_VALUES, REGION_NAMES, REGIONS
from bratseg.orientation import Reorientation, reorientation

from ._cases import CASE_REF, case_ref

if TYPE_CHECKING:
    from bratseg.io import Case

#: Key of the plugin's entry in ``layer.metadata``.
META_KEY = "bratseg"
#: Axis order of layer data relative to LPS-ordered (L, P, S) axes.
DISPLAY_AXES = (2, 1, 0)
#: Anatomical labels of the layer axes (Z, Y, X) and their unit.
AXIS_LABELS = ("inferior→superior", "anterior→posterior", "right→left")
UNITS = ("mm", "mm", "mm")
#: Affine assumed for a volume given without one: stored LPS (the BraTS storage).
LPS_AFFINE = np.diag([-1.0, -1.0, 1.0, 1.0])

LayerDataTuple = tuple[Any, dict[str, Any], str]


def _to_lps(affine: np.ndarray | None) -> Reorientation:
    """The engine's flips and permutation from ``affine``'s storage to LPS axes (identity
    without an affine: taken as stored LPS)."""
    return reorientation(LPS_AFFINE if affine is None else affine, "LPS")


def to_display(volume: np.ndarray, affine: np.ndarray | None = None) -> np.ndarray:
    """View of an engine-order (X, Y, Z) volume in layer order (I→S, A→P, R→L); no copy.

    Args:
        volume: The volume in its storage order.
        affine: Its voxel-to-world affine (None: taken as stored LPS).
    """
    return _to_lps(affine).view(volume).transpose(DISPLAY_AXES)


def from_display(data: np.ndarray, affine: np.ndarray | None = None) -> np.ndarray:
    """View of a layer-order volume in the storage order of ``affine``; inverse of :func:`to_display`."""
    return _to_lps(affine).view_back(np.asarray(data).transpose(DISPLAY_AXES))


def display_scale(
    spacing: tuple[float, float, float], affine: np.ndarray | None = None
) -> tuple[float, float, float]:
    """Layer ``scale`` (mm per voxel along the layer axes) from the storage spacing (X, Y, Z)."""
    lps = _to_lps(affine).spacing(spacing)
    return tuple(lps[a] for a in DISPLAY_AXES)  # type: ignore[return-value]


def display_index_to_storage(
    index: tuple[int, int, int], shape: tuple[int, int, int], affine: np.ndarray | None = None
) -> tuple[int, int, int]:
    """Storage voxel (X, Y, Z) of a layer-order voxel index (for *Go to* and tests)."""
    lps = [0, 0, 0]
    for layer_axis, lps_axis in enumerate(DISPLAY_AXES):
        lps[lps_axis] = int(index[layer_axis])
    storage = _to_lps(affine).point_back(lps, shape)
    return tuple(int(v) for v in storage)  # type: ignore[return-value]


def storage_index_to_display(
    index: tuple[int, int, int], shape: tuple[int, int, int], affine: np.ndarray | None = None
) -> tuple[int, int, int]:
    """Layer-order voxel index of a storage voxel (X, Y, Z) of a volume of ``shape`` (X, Y, Z);
    inverse of :func:`display_index_to_storage`."""
    lps = _to_lps(affine).point(index, shape)
    return tuple(int(lps[a]) for a in DISPLAY_AXES)  # type: ignore[return-value]


def contrast_limits(
    volume: np.ndarray, low: float = 0.5, high: float = 99.5
) -> tuple[float, float]:
    """Display range from percentiles of the brain voxels of one MRI volume.

    Brain voxels are those differing from the most common (background) value; a strided sample
    keeps this cheap on a full 240×240×155 volume.

    Args:
        volume: One modality, any shape.
        low: Lower percentile.
        high: Upper percentile.

    Returns:
        ``(low_value, high_value)`` with ``high_value > low_value``.
    """
    sample = np.asarray(volume).ravel()[::7]
    background = sample.min() if sample.size else 0.0
    brain = sample[sample != background]
    if brain.size < 16:
        brain = sample
    if brain.size == 0:
        return 0.0, 1.0
    lo, hi = np.percentile(brain.astype(np.float32), [low, high])
    if not hi > lo:
        hi = lo + 1.0
    return float(lo), float(hi)


def label_colormap(convention: str) -> Any:
    """napari ``DirectLabelColormap`` giving NCR/ED/ET their project colours.

    Args:
        convention: ``"2021"`` or ``"2023"``: decides which value ET has.
    """
    from napari.utils.colormaps import DirectLabelColormap

    colors: dict[int | None, Any] = {0: (0.0, 0.0, 0.0, 0.0), None: (0.6, 0.6, 0.6, 1.0)}
    for tissue, value in LABEL_VALUES[convention].items():
        colors[value] = LABEL_COLORS[tissue]
    return DirectLabelColormap(color_dict=colors)


def label_features(convention: str) -> dict[str, list[int | str]]:
    """Features table (one row per label value) naming each tissue, shown on mouse-over."""
    rows: dict[str, list[int | str]] = {
        "index": [0],
        "tissue": ["background"],
        "name": ["background"],
    }
    for tissue, value in sorted(LABEL_VALUES[convention].items(), key=lambda kv: kv[1]):
        rows["index"].append(value)
        rows["tissue"].append(tissue)
        rows["name"].append(LABEL_NAMES[tissue])
    return rows


def geometry_meta(case: Case) -> dict[str, Any]:
    """The ``metadata["bratseg"]`` entries shared by all layers of one case: plain facts and the
    case's reference (:func:`napari_brats._cases.case_ref`), never the case itself."""
    return {
        CASE_REF: case_ref(case),
        "case_id": case.case_id,
        "affine": np.asarray(case.affine, dtype=np.float64),
        "header": case.header,
        "spacing": tuple(float(s) for s in case.spacing),
        "folder": str(case.folder) if case.folder is not None else None,
        "axes": "display",  # layer data = to_display(storage array, affine)
    }


def image_layer_data(case: Case) -> list[LayerDataTuple]:
    """One image layer per modality (T1, T1Gd, T2, FLAIR) of a loaded case.

    Args:
        case: :class:`bratseg.io.Case` with ``image`` of shape (4, X, Y, Z).

    Returns:
        napari layer-data tuples, FLAIR last (on top) and visible; the others hidden. A series
        the case lacks (``case.substituted``) is named so and hidden; the last real one shows.
    """
    from bratseg.io import MODALITIES, MODALITY_NAMES

    out: list[LayerDataTuple] = []
    scale = display_scale(case.spacing, case.affine)
    substituted = getattr(case, "substituted", {})  # missing series -> its stand-in
    shown = [m for m in MODALITIES if m not in substituted][-1]
    for index, modality in enumerate(MODALITIES):
        volume = case.image[index]
        meta = {**geometry_meta(case), "role": "image", "modality": modality}
        stand_in = substituted.get(modality)
        missing = f" missing: {MODALITY_NAMES[stand_in]} copy" if stand_in else ""
        kwargs = {
            "name": f"{MODALITY_NAMES[modality]}{missing}",
            "scale": scale,
            "contrast_limits": contrast_limits(volume),
            "colormap": "gray",
            "blending": "translucent" if index == 0 else "translucent_no_depth",
            "visible": modality == shown,
            "metadata": {META_KEY: meta},
            "axis_labels": AXIS_LABELS,
            "units": UNITS,
        }
        out.append((to_display(volume, case.affine), kwargs, "image"))
    return out


def labels_layer_data(
    labels: np.ndarray,
    case: Case,
    convention: str,
    *,
    name: str,
    role: str,
    opacity: float = 0.5,
    visible: bool = True,
) -> LayerDataTuple:
    """A labels layer for a (X, Y, Z) tumour label map of ``case``.

    Args:
        labels: uint8 label map in engine order (X, Y, Z); the layer shares its memory.
        case: The :class:`bratseg.io.Case` the map belongs to (geometry).
        convention: Label convention of ``labels`` (decides the ET value and colour).
        name: Layer name.
        role: ``"reference"`` (a seg from disk) or ``"segmentation"`` (the editable AI result).
        opacity: Layer opacity.
        visible: Whether the layer starts visible.
    """
    meta = {**geometry_meta(case), "role": role, "convention": convention}
    kwargs = {
        "name": name,
        "scale": display_scale(case.spacing, case.affine),
        "colormap": label_colormap(convention),
        "features": label_features(convention),
        "opacity": opacity,
        "visible": visible,
        "metadata": {META_KEY: meta},
        "axis_labels": AXIS_LABELS,
        "units": UNITS,
    }
    return (to_display(labels, case.affine), kwargs, "labels")


def probability_layer_data(region_probs: np.ndarray, case: Case) -> list[LayerDataTuple]:
    """Image layers of WT/TC/ET probabilities (uncertainty display), hidden by default.

    Args:
        region_probs: float (3, X, Y, Z) probabilities in :data:`REGIONS` order.
        case: The :class:`bratseg.io.Case` they belong to.
    """
    colormaps = {"wt": "green", "tc": "yellow", "et": "red"}
    out: list[LayerDataTuple] = []
    for index, region in enumerate(REGIONS):
        meta = {**geometry_meta(case), "role": "probability", "region": region}
        kwargs = {
            "name": f"P({region.upper()}) {REGION_NAMES[region].lower()}",
            "scale": display_scale(case.spacing, case.affine),
            "contrast_limits": (0.0, 1.0),
            "colormap": colormaps[region],
            "blending": "additive",
            "opacity": 0.6,
            "visible": False,
            "metadata": {META_KEY: meta},
            "axis_labels": AXIS_LABELS,
            "units": UNITS,
        }
        out.append((to_display(region_probs[index], case.affine), kwargs, "image"))
    return out


def case_layer_data(case: Case) -> list[LayerDataTuple]:
    """All layers of a loaded case: four images plus its reference seg when present."""
    layers = image_layer_data(case)
    if case.seg is not None:
        convention = case.seg_convention or "2021"
        layers.append(
            labels_layer_data(
                case.seg,
                case,
                convention,
                name=f"{case.case_id} reference seg",
                role="reference",
                opacity=0.4,
                visible=False,
            )
        )
    return layers
