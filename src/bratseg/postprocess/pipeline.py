"""Probabilities to BraTS label maps, and label-map corrections from the papers.

Pipeline of :func:`postprocess` (every knob lives in :class:`PostprocessConfig`, declared in
:mod:`bratseg.postprocess.config`):

1. Masks: region probabilities (3, X, Y, Z) in :data:`~bratseg.labels.REGIONS` order are
   thresholded hierarchically, WT first, then TC inside WT, then ET inside TC (Ashtari et al.
   2021; Futrega et al. 2021); or 4-class softmax (4, X, Y, Z) is reduced by argmax, or
   converted to region probabilities by :func:`class_probs_to_region_probs` and thresholded
   hierarchically (Ashtari et al. 2021).
2. Tumour islands: optionally, connected tumour (WT) components smaller than a fraction of the
   largest one are removed with all their labels, then those without any tumour-core voxel
   (:mod:`bratseg.postprocess.islands`; both off by default, checkpoints may turn them on).
3. ET corrections, each turning ET voxels into NCR (they stay in the tumour core): Futrega et
   al. 2021's component rule, then its total-ET rule, then Jiang et al. 2020's minimum ET volume.
4. Labels: NCR = TC − ET, ED = WT − TC (Henry et al. 2021), in the requested convention, by
   :func:`bratseg.labels.labels_from_regions`.

The output is a uint8 label map, so ET ⊂ TC ⊂ WT holds by construction.

Speed: a probability ``p`` is foreground when ``p >= threshold``; for float16 input the test is
done on the uint16 bit patterns (exact, NaN and negatives excluded), which is ~15x faster
than NumPy's float16 comparison. ET connected components are found on the ET
voxels only (sorted flat indices + sparse graph, :func:`mask_components`) rather than by
labelling a volume, and component sizes / probability sums come from ``np.bincount``.
"""

from __future__ import annotations

import logging

import numpy as np

from bratseg.components import clear_flat, gather_flat, mask_components
from bratseg.errors import BratsInputError
from bratseg.labels import (
    CLASSES,
    REGIONS,
    Convention,
    check_convention,
    labels_from_regions,
)
from bratseg.postprocess.config import (  # re-exported: the config's old home
    MAX_ENHANCEMENT_MIN as MAX_ENHANCEMENT_MIN,
)
from bratseg.postprocess.config import MODES as MODES
from bratseg.postprocess.config import Mode as Mode
from bratseg.postprocess.config import PostprocessConfig
from bratseg.postprocess.enhancement import (
    EnhancementEvidence,
    ReferenceFitCache,
    apply_enhancement_rule,
)
from bratseg.postprocess.islands import remove_coreless_components, remove_small_islands

logger = logging.getLogger(__name__)

# --------------------------------------------------------------------------- thresholds


def _ge_threshold(prob: np.ndarray, threshold: float) -> np.ndarray:
    """Boolean ``prob >= threshold`` evaluated exactly, without a float64 copy.

    Args:
        prob: Float array of any shape (float16 fast path).
        threshold: Threshold in [0, 1].

    Returns:
        Boolean array of ``prob``'s shape.
    """
    dtype = prob.dtype
    t = dtype.type(threshold)
    if float(t) < threshold:  # smallest representable value >= threshold: exact semantics
        t = np.nextafter(t, dtype.type(np.inf))
    if dtype == np.float16 and t > 0:
        # Float16 bit patterns of t..+inf are the integers t_bits..0x7C00, in order. One
        # wrapping subtraction maps them onto 0..(0x7C00 - t_bits) as uint16, while negative
        # values and NaNs land above: a single unsigned comparison then equals ``prob >= t``.
        t_bits = t.view(np.uint16)
        shifted = prob.view(np.uint16) - t_bits
        return shifted <= np.uint16(0x7C00 - int(t_bits))
    return prob >= t


def _as_float(prob: np.ndarray, what: str, channels: int) -> np.ndarray:
    prob = np.asarray(prob)
    if prob.ndim != 4 or prob.shape[0] != channels:
        raise BratsInputError(f"{what} must have shape ({channels}, X, Y, Z), got {prob.shape}")
    if prob.dtype not in (np.float16, np.float32, np.float64):
        prob = prob.astype(np.float32)
    return prob


def class_probs_to_region_probs(class_probs: np.ndarray) -> np.ndarray:
    """Region probabilities from 4-class probabilities.

    WT = 1 − p_background, TC = p_NCR + p_ET, ET = p_ET.

    Args:
        class_probs: (4, X, Y, Z) in :data:`~bratseg.labels.CLASSES` order (softmax output).

    Returns:
        (3, X, Y, Z) in :data:`~bratseg.labels.REGIONS` order, same float dtype as the input.
    """
    cp = _as_float(class_probs, "class probabilities", len(CLASSES))
    out = np.empty((len(REGIONS), *cp.shape[1:]), dtype=cp.dtype)
    bg, ncr, et = CLASSES.index("background"), CLASSES.index("ncr"), CLASSES.index("et")
    np.subtract(1, cp[bg], out=out[REGIONS.index("wt")], dtype=np.float32, casting="unsafe")
    np.add(cp[ncr], cp[et], out=out[REGIONS.index("tc")], dtype=np.float32, casting="unsafe")
    out[REGIONS.index("et")] = cp[et]
    return out


def hierarchical_masks(
    region_probs: np.ndarray, config: PostprocessConfig
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Nested WT, TC, ET masks by hierarchical thresholds (Ashtari et al. 2021; Futrega et al. 2021).

    Args:
        region_probs: (3, X, Y, Z) float probabilities in REGIONS order.
        config: Thresholds.

    Returns:
        ``(wt, tc, et)`` boolean (X, Y, Z) with et ⊂ tc ⊂ wt.
    """
    rp = _as_float(region_probs, "region probabilities", len(REGIONS))
    wt = _ge_threshold(rp[REGIONS.index("wt")], config.wt_threshold)
    tc = _ge_threshold(rp[REGIONS.index("tc")], config.tc_threshold)
    tc &= wt
    et = _ge_threshold(rp[REGIONS.index("et")], config.et_threshold)
    et &= tc
    return wt, tc, et


def _ordered_keys(prob: np.ndarray) -> np.ndarray:
    """Array whose ordering equals the float ordering of ``prob`` (int16 keys for float16)."""
    if prob.dtype != np.float16:
        return prob
    bits = prob.view(np.int16)
    # Negative floats: flip the magnitude bits so that more negative sorts lower.
    return bits ^ ((bits >> 15) & np.int16(0x7FFF))


def argmax_classes(class_probs: np.ndarray) -> np.ndarray:
    """Index of the most probable class per voxel (first one on ties, like ``np.argmax``).

    Args:
        class_probs: (4, X, Y, Z) float probabilities in CLASSES order.

    Returns:
        uint8 (X, Y, Z) class indices.
    """
    cp = _as_float(class_probs, "class probabilities", len(CLASSES))
    best = _ordered_keys(cp[0]).copy()
    winner = np.zeros(cp.shape[1:], dtype=np.uint8)
    for k in range(1, cp.shape[0]):
        key = _ordered_keys(cp[k])
        better = key > best
        np.copyto(best, key, where=better)
        np.copyto(winner, np.uint8(k), where=better)
    return winner


def argmax_masks(class_probs: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """WT, TC, ET masks from the most probable class of each voxel.

    Args:
        class_probs: (4, X, Y, Z) in CLASSES order.

    Returns:
        ``(wt, tc, et)`` boolean (X, Y, Z) with et ⊂ tc ⊂ wt.
    """
    winner = argmax_classes(class_probs)
    et = winner == CLASSES.index("et")
    tc = et | (winner == CLASSES.index("ncr"))
    wt = winner != CLASSES.index("background")
    return wt, tc, et


# --------------------------------------------------------------------------- ET corrections


def apply_et_rules(
    et: np.ndarray,
    et_prob: np.ndarray | None,
    config: PostprocessConfig,
    tc: np.ndarray | None = None,
) -> np.ndarray:
    """Remove ET voxels by Futrega et al. 2021's component and total rules, the case-level ET
    decisions (sparse ET in its core; no enhancement) and Jiang et al. 2020's volume rule.

    Removed voxels are meant to become NCR (they stay in TC). Works in place on ``et``.

    Args:
        et: Boolean ET mask (X, Y, Z); modified in place.
        et_prob: ET probability (X, Y, Z) (any float dtype), needed for Futrega et al. 2021's rules; when
            None those rules are skipped.
        config: Rule parameters.
        tc: Boolean tumour-core mask (X, Y, Z), needed for the sparse-ET decision; when None
            that rule is skipped.

    Returns:
        ``et`` (the same array).
    """
    if config.et_component_rule and et_prob is not None:
        flat, component, n = mask_components(et, config.et_component_connectivity)
        if n > 0:
            probs = gather_flat(np.asarray(et_prob), flat).astype(np.float64)  # ET voxels only
            sizes = np.bincount(component, minlength=n)
            sums = np.bincount(component, weights=probs, minlength=n)
            drop = (sizes < config.et_component_min_voxels) & (
                sums / sizes < config.et_component_prob
            )
            removed = drop[component]
            kept = flat.size - int(np.count_nonzero(removed))
            if 0 < kept < config.et_total_min_voxels:
                if probs[~removed].mean() < config.et_total_prob:
                    removed[:] = True
                    logger.debug("ET total rule: %d ET voxels -> NCR", kept)
            if removed.any():
                logger.debug("ET rules: %d of %d ET voxels -> NCR", int(removed.sum()), flat.size)
                clear_flat(et, flat[removed])
    if config.et_sparse_fraction > 0 and et_prob is not None and tc is not None:
        flat = np.flatnonzero(et)
        core = int(np.count_nonzero(tc))
        if flat.size and flat.size < config.et_sparse_fraction * core:
            unsure = gather_flat(np.asarray(et_prob), flat) < config.et_sparse_threshold
            clear_flat(et, flat[unsure])
            logger.debug(
                "sparse-ET rule: ET %d < %g x TC %d voxels -> %d unsure ET voxels NCR",
                flat.size,
                config.et_sparse_fraction,
                core,
                int(np.count_nonzero(unsure)),
            )
    if config.et_case_min_prob > 0 and et_prob is not None:
        flat = np.flatnonzero(et)
        if (
            flat.size
            and gather_flat(np.asarray(et_prob), flat).astype(np.float64).mean()
            < config.et_case_min_prob
        ):
            et[...] = False
            logger.debug(
                "ET case rule: mean ET probability < %g -> all %d ET voxels NCR",
                config.et_case_min_prob,
                flat.size,
            )
    if config.et_min_volume > 0:
        total = int(np.count_nonzero(et))
        if 0 < total < config.et_min_volume:
            et[...] = False
            logger.debug("ET volume rule: %d ET voxels < %d -> NCR", total, config.et_min_volume)
    return et


# --------------------------------------------------------------------------- entry point


def postprocess(
    region_probs: np.ndarray | None,
    config: PostprocessConfig | dict | None = None,
    convention: Convention = "2021",
    class_probs: np.ndarray | None = None,
    t1_t1ce: tuple[np.ndarray, np.ndarray] | None = None,
) -> np.ndarray:
    """Label map from network probabilities (:func:`postprocess_with_evidence` without the
    evidence of the case-level ET decision)."""
    return postprocess_with_evidence(region_probs, config, convention, class_probs, t1_t1ce)[0]


def postprocess_with_evidence(
    region_probs: np.ndarray | None,
    config: PostprocessConfig | dict | None = None,
    convention: Convention = "2021",
    class_probs: np.ndarray | None = None,
    t1_t1ce: tuple[np.ndarray, np.ndarray] | None = None,
    fits: ReferenceFitCache | None = None,
) -> tuple[np.ndarray, EnhancementEvidence | None]:
    """Label map from network probabilities, and what the no-enhancement rule decided.

    Args:
        region_probs: (3, X, Y, Z) float16/float32 region probabilities (WT, TC, ET), or None
            when only ``class_probs`` are given.
        config: :class:`PostprocessConfig` (or its dict); None for the defaults.
        convention: Convention of the returned labels.
        class_probs: (4, X, Y, Z) class probabilities (bg, NCR, ED, ET); required for
            ``mode="argmax"``; in hierarchical mode used (converted) only when
            ``region_probs`` is None.
        t1_t1ce: The case's T1 and T1Gd (each (X, Y, Z), same grid) for the no-enhancement
            rule (``et_enhancement_min``); without them the rule decides nothing.
        fits: The case's reference-fit cache for that rule, held by a caller that postprocesses
            the same case repeatedly (None: fit afresh).

    Returns:
        uint8 label map (X, Y, Z) with ET ⊂ TC ⊂ WT, and the rule's evidence (``None`` when the
        rule is off, or there are no images or no ET).

    Raises:
        BratsInputError: Missing or misshapen probabilities, bad config.
    """
    if config is None:
        config = PostprocessConfig()
    elif isinstance(config, dict):
        config = PostprocessConfig.from_dict(config)
    check_convention(convention)
    if config.mode == "argmax":
        if class_probs is None:
            raise BratsInputError("argmax postprocessing needs 4-class probabilities")
        cp = _as_float(class_probs, "class probabilities", len(CLASSES))
        wt, tc, et = argmax_masks(cp)
        et_prob = cp[CLASSES.index("et")]
    else:
        if region_probs is None:
            if class_probs is None:
                raise BratsInputError("postprocessing needs region or class probabilities")
            region_probs = class_probs_to_region_probs(class_probs)
        rp = _as_float(region_probs, "region probabilities", len(REGIONS))
        wt, tc, et = hierarchical_masks(rp, config)
        et_prob = rp[REGIONS.index("et")]

    remove_small_islands(wt, config.min_island_fraction, tc, et)
    if config.wt_needs_core:
        remove_coreless_components(wt, tc, et)
    apply_et_rules(et, et_prob, config, tc)
    evidence = apply_enhancement_rule(
        t1_t1ce,
        wt,
        et,
        config.et_enhancement_min,
        fits,
        tc=tc,
        core_fraction_min=config.et_core_fraction_min,
    )
    return labels_from_regions(wt, tc, et, convention, nesting="nested"), evidence
