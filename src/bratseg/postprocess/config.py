""":class:`PostprocessConfig`: every postprocessing knob, declared once.

Each field carries its :class:`~bratseg.configdict.Setting` (label, range, step, group, one-line
help). From these come the ``predict`` command's postprocessing flags
(:mod:`bratseg.cli._settings`), the config's one range check (``__post_init__``) and the
plugin's Postprocessing dock controls. Adding a setting means adding its field here.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

from bratseg.configdict import check_settings, setting

#: Largest accepted ``et_enhancement_min`` (a T1Gd-over-T1 ratio; enhancing ET measures 1.2-2.7).
MAX_ENHANCEMENT_MIN = 3.0

Mode = Literal["hierarchical", "argmax"]
MODES: tuple[str, ...] = ("hierarchical", "argmax")

#: Settings shown up front: the three thresholds and the tumour-island rules.
MAIN_GROUP = "thresholds"
#: Settings for the enhancing-tumour corrections (an *Advanced* section in the plugin).
ET_GROUP = "ET rules, advanced"

_PROB = {"minimum": 0.0, "maximum": 1.0, "step": 0.01}
_VOXELS = {"minimum": 0, "step": 1, "metavar": "VOXELS"}


@dataclass
class PostprocessConfig:
    """All postprocessing parameters (JSON-able via :meth:`to_dict` / :meth:`from_dict`).

    Each field's declared help says what it does; the comments say where its default comes from.

    Attributes:
        mode: ``"hierarchical"`` thresholds (region or class probabilities) or ``"argmax"`` over
            4-class probabilities.
        wt_threshold, tc_threshold, et_threshold: Hierarchical region thresholds (ET ⊂ TC ⊂ WT).
        min_island_fraction, wt_needs_core: Tumour-component rules
            (:mod:`bratseg.postprocess.islands`).
        et_*: ET corrections (Futrega et al. 2021; Jiang et al. 2020; case-level decisions).
    """

    mode: Mode = setting(
        "hierarchical",
        label="Mode",
        help="hierarchical thresholds on region probabilities, or argmax over 4-class "
        "probabilities (class models only)",
        group=MAIN_GROUP,
        choices=MODES,
        flag="--postprocess-mode",
    )
    # Region thresholds: Futrega et al. 2021, grid-searched on 5-fold cross-validation.
    wt_threshold: float = setting(
        0.45,
        label="WT ≥",
        help="whole tumour where its probability is at least this (Futrega et al. 2021: 0.45)",
        group=MAIN_GROUP,
        metavar="P",
        **_PROB,
    )
    tc_threshold: float = setting(
        0.40,
        label="TC ≥",
        help="tumour core, inside WT, where its probability is at least this (Futrega et al. "
        "2021: 0.40)",
        group=MAIN_GROUP,
        metavar="P",
        **_PROB,
    )
    et_threshold: float = setting(
        0.45,
        label="ET ≥",
        help="enhancing tumour, inside TC, where its probability is at least this (Futrega et "
        "al. 2021: 0.45)",
        group=MAIN_GROUP,
        metavar="P",
        **_PROB,
    )
    # Jiang et al. 2020 replaces ET by necrosis below an ET volume threshold "chosen for each
    # experiment independently" on the BraTS 2019 validation set; the paper gives no value, so
    # the rule is off by default (0) and a checkpoint may set its own.
    et_min_volume: int = setting(
        0,
        label="All ET → NCR below (voxels)",
        help="all ET becomes NCR when the total ET is smaller than this many voxels (Jiang et "
        "al. 2020); 0 = off",
        group=ET_GROUP,
        **_VOXELS,
    )
    # Futrega et al. 2021: components < 16 voxels with mean ET prob < 0.9 -> NCR, then all
    # ET -> NCR if fewer than 73 ET voxels with mean prob < 0.9.
    et_component_rule: bool = setting(
        True,
        label="ET component rule (Futrega et al. 2021)",
        help="small, unsure ET components become NCR, then all ET when little unsure ET is left",
        group=ET_GROUP,
    )
    et_component_min_voxels: int = setting(
        16,
        label="component rule: components < (voxels)",
        help="ET components smaller than this many voxels ...",
        group=ET_GROUP,
        **_VOXELS,
    )
    et_component_prob: float = setting(
        0.9,
        label="... with mean p <",
        help="... and a mean ET probability below this become NCR",
        group=ET_GROUP,
        metavar="P",
        **_PROB,
    )
    et_total_min_voxels: int = setting(
        73,
        label="all ET if total < (voxels)",
        help="all ET becomes NCR when fewer ET voxels than this remain ...",
        group=ET_GROUP,
        **_VOXELS,
    )
    et_total_prob: float = setting(
        0.9,
        label="... with mean p <",
        help="... and their mean ET probability is below this",
        group=ET_GROUP,
        metavar="P",
        **_PROB,
    )
    # scipy.ndimage.label's default structure (faces), as in Futrega et al. 2021's published code.
    et_component_connectivity: int = setting(
        1,
        label="ET component neighbours (1-3)",
        help="neighbourhood of ET components: 1 = faces (6), 2 = + edges (18), 3 = + corners (26)",
        group=ET_GROUP,
        minimum=1,
        maximum=3,
        step=1,
        metavar="N",
    )
    # Not from the papers: Futrega et al. 2021's total-ET rule without its volume limit, so that a large
    # but unsure ET (a non-enhancing tumour) becomes NCR. Off by default; a checkpoint may set
    # a value chosen on cross-validation (see its card).
    et_case_min_prob: float = setting(
        0.0,
        label="All ET → NCR if mean p <",
        help="no-enhancement decision: all ET becomes NCR when the mean ET probability over the "
        "ET voxels left by the other rules is below this; 0 = off",
        group=ET_GROUP,
        metavar="P",
        **_PROB,
    )
    # Not from the papers: a core whose predicted ET is a small part of it (low-grade and
    # non-enhancing tumours get a thin, unsure ET rim where the reference has little or none)
    # keeps only its confident ET. Off by default; the default ensemble's card says its values.
    et_sparse_fraction: float = setting(
        0.0,
        label="Sparse ET: if ET < × core",
        help="mostly non-enhancing core: when ET is below this fraction of the tumour core's "
        "volume, only confident ET stays (see the next setting); 0 = off",
        group=ET_GROUP,
        metavar="F",
        **_PROB,
    )
    et_sparse_threshold: float = setting(
        0.9,
        label="... keep ET with p ≥",
        help="the ET threshold of such a core",
        group=ET_GROUP,
        metavar="P",
        **_PROB,
    )
    # Not from the papers: nnU-Net-style removal of small tumour islands, off by default. A
    # bundled checkpoint sets its own value, chosen by cross-validation (see its model card).
    min_island_fraction: float = setting(
        0.0,
        label="Drop islands < × largest",
        help="remove tumour parts smaller than this fraction of the largest one, with all their "
        "labels (26-connected); 0 = keep all, 1 = largest only",
        group=MAIN_GROUP,
        metavar="F",
        **_PROB,
    )
    # Not from the papers: edema-only tumour components removed, off by default. The default
    # ensemble turns it on (chosen on the 5-fold protocol, see its card).
    wt_needs_core: bool = setting(
        False,
        label="Drop tumour parts without a core",
        help="remove tumour parts that hold no necrosis or enhancing tumour (edema with no core, "
        "mostly FLAIR hyperintensities away from the tumour); nothing is removed when there "
        "is no core at all",
        group=MAIN_GROUP,
    )
    # Not from the papers: ET needs contrast uptake on the images. Off by default; the default
    # ensemble's card says its value, chosen on the 5-fold protocol.
    et_enhancement_min: float = setting(
        0.0,
        label="ET needs T1Gd/T1 ≥",
        help="no enhancement on the images: all ET becomes NCR when T1Gd inside the predicted "
        "ET is less than this × what T1 predicts for it (1 = no uptake); 0 = off",
        group=ET_GROUP,
        minimum=0.0,
        maximum=MAX_ENHANCEMENT_MIN,
        step=0.01,
        metavar="R",
    )

    # Not from the papers: the BraTS 2023 paediatric winner turns ET into NCR below an ET/WT
    # ratio of 0.04 (field survey); here the share is of the core, which a contrast-free tumour
    # keeps whole. Off by default; the default ensemble's card says its value, chosen on the
    # 5-fold protocol with contrast-removed copies.
    et_core_fraction_min: float = setting(
        0.0,
        label="ET needs ≥ × core",
        help="little enhancement: all ET becomes NCR when the predicted ET is less than this "
        "fraction of the predicted tumour core; 0 = off",
        group=ET_GROUP,
        metavar="F",
        **_PROB,
    )

    def __post_init__(self) -> None:
        check_settings(self, "postprocessing")

    def to_dict(self) -> dict[str, Any]:
        """Plain dict of all parameters."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> PostprocessConfig:
        """Build a config from a dict (strict: see :func:`bratseg.configdict.config_from_dict`)."""
        from bratseg.configdict import config_from_dict

        return config_from_dict(cls, data, "postprocessing")
