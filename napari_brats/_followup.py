"""Follow-up view: a baseline and a follow-up of one patient side by side, linked.

The comparison is the engine's (:func:`bratseg.report.followup.compare_cases`): the follow-up's
T1Gd and labels registered onto the baseline grid. Both time points are then layers on the same
grid, and napari's grid mode shows them in two panels that share one camera and one slice
position: zooming, panning or moving the slider moves both. The baseline is on the left, the
follow-up on the right, and the text overlay carries the changes and the *suggested* response.
"""

from __future__ import annotations

import textwrap
from typing import TYPE_CHECKING, Any

import numpy as np

from napari_brats._layers import (
    AXIS_LABELS,
    META_KEY,
    UNITS,
    LayerDataTuple,
    contrast_limits,
    display_scale,
    geometry_meta,
    labels_layer_data,
    to_display,
)

T1GD = 1  # index of the T1Gd in a case's (4, X, Y, Z) image
if TYPE_CHECKING:
    from bratseg.io import Case
    from bratseg.report.followup import Comparison

#: Layers per panel in grid mode (T1Gd and labels).
PANEL_LAYERS = 2
#: Characters per line of the overlay text.
TEXT_WIDTH = 100


def _t1gd_layer(volume: np.ndarray, case: Case, name: str, role: str) -> LayerDataTuple:
    meta = {**geometry_meta(case), "role": role, "modality": "t1ce"}
    kwargs = {
        "name": name,
        "scale": display_scale(case.spacing, case.affine),
        "contrast_limits": contrast_limits(volume),
        "colormap": "gray",
        "metadata": {META_KEY: meta},
        "axis_labels": AXIS_LABELS,
        "units": UNITS,
    }
    return (to_display(volume, case.affine), kwargs, "image")


def followup_layer_data(
    comparison: Comparison, baseline: Case, baseline_labels: np.ndarray, convention: str
) -> list[LayerDataTuple]:
    """Layers of both time points on the baseline grid: baseline T1Gd and labels, then the
    follow-up's, registered (grid mode fills the panels in layer order: baseline on the left).

    Args:
        comparison: A registered :class:`bratseg.report.followup.Comparison`.
        baseline: The baseline :class:`bratseg.io.Case` (its geometry is the display grid).
        baseline_labels: uint8 (X, Y, Z) baseline labels in ``convention``.
        convention: Label convention of both label maps on the baseline grid.

    Raises:
        ValueError: The comparison was made without registration (nothing to overlay).
    """
    if comparison.followup_on_baseline is None or comparison.followup_t1gd_on_baseline is None:
        raise ValueError("the follow-up view needs a registered comparison")
    base_id = comparison.baseline.get("case_id") or baseline.case_id
    follow_id = comparison.followup.get("case_id") or "follow-up"
    return [
        _t1gd_layer(baseline.image[T1GD], baseline, f"baseline {base_id} T1Gd", "image"),
        labels_layer_data(
            baseline_labels,
            baseline,
            convention,
            name=f"baseline {base_id} labels",
            role="reference",
        ),
        _t1gd_layer(
            comparison.followup_t1gd_on_baseline,
            baseline,
            f"follow-up {follow_id} T1Gd (registered)",
            "followup-image",
        ),
        labels_layer_data(
            comparison.followup_on_baseline,
            baseline,
            convention,
            name=f"follow-up {follow_id} labels (registered)",
            role="followup",
        ),
    ]


def followup_text(comparison: Comparison) -> str:
    """The overlay text: ET, TC, WT change in mL and %, then the suggestions with their rules."""
    lines = ["baseline (left) -> follow-up (right, registered)"]
    for key, row in comparison.changes().items():
        if key not in ("et", "tc", "wt") or row.get("change_ml") is None:
            continue
        pct = row.get("change_pct")
        lines.append(
            f"{key.upper()} {row['baseline_ml']:.1f} -> {row['followup_ml']:.1f} mL "
            f"({row['change_ml']:+.1f} mL" + (f", {pct:+.0f}%)" if pct is not None else ")")
        )
    for suggestion in comparison.suggestions:  # "suggestion: ...; rule ...": one line each
        for part in suggestion.text.split("; "):
            lines += textwrap.wrap(part, TEXT_WIDTH, subsequent_indent="    ")
    return "\n".join(lines)


def show_followup(
    viewer: Any,
    comparison: Comparison,
    baseline: Case,
    baseline_labels: np.ndarray,
    convention: str,
) -> list[Any]:
    """Add both time points to ``viewer`` and link them: grid mode, one panel per time point.

    Returns:
        The added layers (baseline T1Gd, baseline labels, follow-up T1Gd, follow-up labels).
    """
    layers = []
    for data, kwargs, kind in followup_layer_data(
        comparison, baseline, baseline_labels, convention
    ):
        layers.append(getattr(viewer, f"add_{kind}")(data, **kwargs))
    viewer.grid.stride = PANEL_LAYERS
    viewer.grid.shape = (1, 2)
    viewer.grid.enabled = True
    viewer.text_overlay.text = followup_text(comparison)
    viewer.text_overlay.visible = True
    viewer.text_overlay.position = "top_left"
    viewer.text_overlay.font_size = 9
    viewer.reset_view()
    return layers


def open_followup(
    viewer: Any, baseline_dir: str, followup_dir: str, convention: str | None = None
) -> list[Any]:
    """Compare two case folders (their label maps, as ``napari-brats compare`` finds them) and
    show them linked in ``viewer``."""
    from bratseg.cli.compare import load_case_and_labels
    from bratseg.report.followup import compare_cases

    baseline, b_labels, b_conv = load_case_and_labels(baseline_dir, None, convention)
    followup, f_labels, f_conv = load_case_and_labels(followup_dir, None, convention)
    comparison = compare_cases(baseline, b_labels, b_conv, followup, f_labels, f_conv)
    return show_followup(viewer, comparison, baseline, np.asarray(b_labels), b_conv)
