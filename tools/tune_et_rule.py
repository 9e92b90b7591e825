"""Measure the no-enhancement ET rule (``et_enhancement_min``) on saved predictions.

For each case folder (with its reference ``seg``) that has a saved probability map
(``predict --probabilities DIR``: ``DIR/<case>_probabilities.nii.gz``), the label map is rebuilt
under the default's postprocessing, the rule's ratio measured on its ET, and each threshold
scored: ET Dice under the
BraTS rule (1 when reference and prediction are both empty), whether ET was invented (reference ET
empty, predicted ET not), and the predicted ET volume. Typical inputs: held-out cases, and their
contrast-removed copies (reference ET relabelled NCR, T1Gd in ET replaced by T1-like signal),
where every predicted ET is invented.

    python tools/tune_et_rule.py --set enhancing CASES_DIR PROB_DIR --set removed COPIES_DIR \\
        COPY_PROB_DIR --thresholds 0 1.0 1.05 1.1 1.15 1.2 [--rows-out rows.json]

Prints, per set and threshold: cases, mean ET Dice, cases with invented ET, cases where the rule
fired, and the mean ET Dice change against the rule off.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path
from typing import Any

import numpy as np

from bratseg.inference.engine import t1_t1ce
from bratseg.io import load_case
from bratseg.labels import region_masks
from bratseg.metrics.regions import dice
from bratseg.postprocess import PostprocessConfig, enhancement_ratio, postprocess_with_evidence

logger = logging.getLogger(__name__)


def _default_config() -> PostprocessConfig:
    """The bundled default ensemble's postprocessing (what ``predict`` without ``--model`` uses)."""
    from bratseg.cli.predict import load_models
    from bratseg.zoo import ensemble_postprocess

    return ensemble_postprocess(load_models(None))


def _score_case(
    case_dir: Path, prob_file: Path, base: PostprocessConfig, thresholds: list[float]
) -> list[dict[str, Any]]:
    """One row per threshold. The rule is all-or-nothing on a ratio that does not depend on the
    threshold, so the label map is built once (rule off) and the ratio measured once."""
    import dataclasses

    import nibabel as nib

    case = load_case(case_dir)
    assert case.seg is not None and case.seg_convention is not None
    ref_et = region_masks(case.seg, case.seg_convention)["et"]
    probs = np.moveaxis(np.asarray(nib.load(str(prob_file)).dataobj, dtype=np.float32), -1, 0)
    off = dataclasses.replace(base, et_enhancement_min=0.0)
    labels = postprocess_with_evidence(probs, off, "2021")[0]
    masks = region_masks(labels, "2021")
    et = masks["et"]
    ratio = enhancement_ratio(t1_t1ce(case.image), masks["wt"], et) if et.any() else None
    voxel_ml = float(np.prod(case.spacing)) / 1000.0
    kept_dice = 1.0 if not et.any() and not ref_et.any() else float(dice(et, ref_et))
    rows = []
    for t in thresholds:
        fired = bool(t > 0 and ratio is not None and ratio < t)
        has_et = bool(et.any()) and not fired
        rows.append(
            {
                "case": case.case_id,
                "threshold": float(t),
                "et_dice": (0.0 if ref_et.any() else 1.0) if fired else kept_dice,
                "invented": bool(has_et and not ref_et.any()),
                "et_ml": float(et.sum() * voxel_ml) if has_et else 0.0,
                "ref_et_ml": float(ref_et.sum() * voxel_ml),
                "fired": fired,
                "ratio": ratio,
            }
        )
    return rows


def main(argv: list[str] | None = None) -> int:
    """Score every set at every threshold and print the table."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--set", nargs=3, action="append", metavar=("NAME", "CASES", "PROBS"))
    p.add_argument("--thresholds", nargs="+", type=float, default=[0.0, 1.0, 1.05, 1.1, 1.15])
    p.add_argument("--rows-out", help="write the per-case rows (JSON)")
    args = p.parse_args(argv)
    base = _default_config()
    thresholds = sorted({0.0, *args.thresholds})
    all_rows: dict[str, list[dict[str, Any]]] = {}
    for name, cases, probs in args.set:
        rows: list[dict[str, Any]] = []
        for case_dir in sorted(Path(cases).iterdir()):
            prob_file = Path(probs) / f"{case_dir.name}_probabilities.nii.gz"
            if not prob_file.exists():
                continue
            rows += _score_case(case_dir, prob_file, base, thresholds)
        all_rows[name] = rows
        off = {r["case"]: r["et_dice"] for r in rows if r["threshold"] == 0.0}
        for t in thresholds:
            sel = [r for r in rows if r["threshold"] == t]
            if not sel:
                continue
            mean = float(np.mean([r["et_dice"] for r in sel]))
            change = float(np.mean([r["et_dice"] - off[r["case"]] for r in sel]))
            print(
                f"{name:>10} R={t:4.2f}: {len(sel)} cases, ET Dice {mean:.3f} ({change:+.3f}), "
                f"invented ET {sum(r['invented'] for r in sel)}, fired {sum(r['fired'] for r in sel)}"
            )
    if args.rows_out:
        Path(args.rows_out).write_text(json.dumps(all_rows, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
