"""Choose the review flag's thresholds (bratseg.review.uncertainty.ReviewRules) on held-out predictions.

Two steps:

1. ``predict``: the bundled default ensemble (its own postprocessing, CPU, no TTA, the members'
   spread kept) predicts every labelled case folder of ``--data`` (default ``../extra-data``: 28
   cases no bundled model trained on) once; region probabilities, members' spread, labels and the
   reference go to ``--store`` (one ``.npz`` per case, default ``../evals/uncert``).
2. ``tune`` (default): per case, the mean Dice (WT/TC/ET) against the reference and the facts the
   rules look at (uncertain volume per threshold for entropy and ensemble disagreement, mean ET
   probability, WT components and their mean probabilities). The "hard" cases are the bottom
   quartile of mean Dice. Each rule's threshold is scanned on a grid; rules are added greedily while
   one more hard case is flagged than easy ones (hit rate on the hard cases minus the firing rate on
   the rest, Youden's J). Reports the chosen thresholds, the hit rate on hard and easy cases, and a
   leave-one-out estimate (the thresholds chosen again without each case, the left-out case
   flagged with them). Which rule families to use is chosen first, as the subset of up to 3
   families with the best leave-one-out J, so that estimate is slightly optimistic for the
   chosen subset; the report also gives it for all families together.

Run: ``OMP_NUM_THREADS=1 .venv/bin/python tools/tune_review_flag.py predict`` then
``.venv/bin/python tools/tune_review_flag.py tune [--json]``.
"""

from __future__ import annotations

import argparse
import dataclasses
import io
import json
import logging
import math
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = (ROOT / ".." / "extra-data").resolve()
DEFAULT_STORE = (ROOT / ".." / "evals" / "uncert").resolve()
logger = logging.getLogger("tune_review_flag")


# --------------------------------------------------------------------------- predict


def predict(data: Path, store: Path, threads: int) -> int:
    """Predict every labelled case folder under ``data`` with the default ensemble, once."""
    from bratseg.atomic import atomic_write
    from bratseg.checkpoint import load_checkpoint
    from bratseg.inference import InferenceOptions, predict_case
    from bratseg.io import find_case_files, list_case_folders, load_case, load_label_map
    from bratseg.labels import detect_convention
    from bratseg.zoo import default_model_names, default_postprocess, resolve_model

    names = default_model_names()
    models = [load_checkpoint(resolve_model(n)) for n in names]
    trained = {c for m in models for c in (m.provenance.get("train_cases") or [])}
    options = InferenceOptions(
        device="cpu", threads=threads, postprocess=default_postprocess(models[0]), keep_spread=True
    )
    store.mkdir(parents=True, exist_ok=True)
    folders = [f for f in list_case_folders(data) if "seg" in find_case_files(f)]
    for i, folder in enumerate(folders):
        target = store / f"{folder.name}.npz"
        if folder.name in trained:
            logger.warning("%s: a default model trained on it, skipped", folder.name)
            continue
        if target.exists():
            continue
        case = load_case(folder, load_seg=False)
        pred = predict_case(case, models, options)
        ref = load_label_map(find_case_files(folder)["seg"])
        buffer = io.BytesIO()
        np.savez_compressed(
            buffer,
            region_probs=pred.region_probs,
            spread=pred.spread.values,
            labels=pred.labels,
            reference=ref.data.astype(np.uint8),
            spacing=np.asarray(case.spacing),
            convention=str(pred.convention),
            ref_convention=detect_convention(ref.data, source=str(ref.path)),
            models=np.asarray(pred.models),
        )
        with atomic_write(target) as fh:
            fh.write(buffer.getvalue())
        print(f"[{i + 1}/{len(folders)}] {folder.name}: {pred.seconds:.1f} s", flush=True)
    return 0


# --------------------------------------------------------------------------- tune

INF = math.inf
#: Grids of each rule family (``ReviewRules`` fields); the first family's "off" is in OFF.
FAMILIES: dict[str, list[dict[str, float]]] = {
    "volume": [
        {"min_wt_ml": a, "max_wt_ml": b}
        for a in (0.0, 1.0, 2.0, 5.0, 10.0, 20.0)
        for b in (150.0, 200.0, 250.0, 300.0, INF)
    ],
    "uncertain": [
        {"uncertain_entropy": t, "max_uncertain_ml": m, "max_uncertain_fraction": f}
        for t in (0.5, 0.7, 0.8, 0.9)
        for m in (20.0, 40.0, 60.0, 80.0, 100.0, INF)
        for f in (0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.2, 1.5, 2.0, INF)
    ],
    "et_prob": [{"min_et_mean_prob": p} for p in (0.0, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9)],
    "et_fraction": [{"min_et_fraction": f} for f in (0.0, 0.02, 0.05, 0.1, 0.15, 0.2)],
    "distance": [
        {"max_component_distance_mm": d} for d in (20.0, 30.0, 40.0, 50.0, 60.0, 80.0, INF)
    ],
    "low_confidence": [
        {"low_component_prob": p, "max_low_confidence_ml": m}
        for p in (0.6, 0.7, 0.75, 0.8, 0.85)
        for m in (0.5, 1.0, 2.0, 5.0, 10.0, INF)
    ],
}
DISAGREEMENT = [
    {"uncertain_spread": t, "max_disagreement_ml": m, "max_disagreement_fraction": f}
    for t in (0.2, 0.3, 0.4, 0.5)
    for m in (5.0, 10.0, 20.0, 40.0, 60.0, INF)
    for f in (0.1, 0.2, 0.3, 0.5, 0.7, 1.0, 1.5, INF)
]
ENTROPY_LEVELS = sorted({g["uncertain_entropy"] for g in FAMILIES["uncertain"]})
SPREAD_LEVELS = sorted({g["uncertain_spread"] for g in DISAGREEMENT})


def off_rules():
    """Every rule off except "no tumour predicted"."""
    from bratseg.review.uncertainty import ReviewRules

    return ReviewRules(
        min_wt_ml=0.0,
        max_wt_ml=INF,
        max_uncertain_ml=INF,
        max_disagreement_ml=INF,
        max_uncertain_fraction=INF,
        max_disagreement_fraction=INF,
        min_et_mean_prob=0.0,
        min_et_fraction=0.0,
        max_component_distance_mm=INF,
        max_low_confidence_ml=INF,
    )


def case_row(path: Path) -> dict:
    """Dice and the rules' facts of one stored prediction."""
    from bratseg.inference import MemberSpread
    from bratseg.labels import region_masks, regions_to_stack
    from bratseg.metrics import dice_regions, tumour_volumes_ml
    from bratseg.review.flag_rules import CaseFacts
    from bratseg.review.uncertainty import DEFAULT_RULES, component_hotspots
    from bratseg.review.uncertainty_maps import uncertainty_map

    d = np.load(path)
    probs, labels, spacing = d["region_probs"], d["labels"], tuple(float(s) for s in d["spacing"])
    conv, ref_conv = str(d["convention"]), str(d["ref_convention"])
    dice = dice_regions(regions_to_stack(labels, conv), regions_to_stack(d["reference"], ref_conv))
    voxel_ml = float(np.prod(spacing)) / 1000.0
    entropy, _ = uncertainty_map(probs)
    spread, _ = uncertainty_map(probs, MemberSpread(d["spread"], "ensemble disagreement", 2))
    masks = region_masks(labels, conv)
    facts = CaseFacts(
        measure="entropy",
        uncertain_ml=0.0,
        volumes_ml=tumour_volumes_ml(labels, conv, spacing),
        et_mean_prob=float(probs[2][masks["et"]].astype(np.float64).mean())
        if masks["et"].any()
        else 0.0,
        components=component_hotspots(
            probs, masks, entropy, spacing, DEFAULT_RULES, low_only=False
        ),
        spacing=spacing,
    )
    return {
        "case": path.stem,
        "dice": {r: float(v) for r, v in zip(("wt", "tc", "et"), dice)},
        "mean_dice": float(dice.mean()),
        "facts": facts,
        "entropy_ml": {t: int(np.count_nonzero(entropy >= t)) * voxel_ml for t in ENTROPY_LEVELS},
        "spread_ml": {t: int(np.count_nonzero(spread >= t)) * voxel_ml for t in SPREAD_LEVELS},
    }


def flags(row: dict, rules, measure: str = "entropy") -> list[str]:
    """The reasons ``rules`` give for a stored case under ``measure``."""
    from bratseg.review.flag_rules import review_reasons

    if measure == "entropy":
        uncertain = row["entropy_ml"][rules.uncertain_entropy]
    else:
        uncertain = row["spread_ml"][rules.uncertain_spread]
    return review_reasons(
        rules, dataclasses.replace(row["facts"], measure=measure, uncertain_ml=uncertain)
    )


def hard_cases(rows: list[dict]) -> set[str]:
    """The bottom quartile of mean Dice (ties included)."""
    cut = float(np.quantile([r["mean_dice"] for r in rows], 0.25))
    return {r["case"] for r in rows if r["mean_dice"] <= cut}


def rates(
    rows: list[dict], hard: set[str], rules, measure: str = "entropy"
) -> tuple[float, float, int]:
    """(fraction of the hard cases flagged, fraction of the others flagged, cases flagged)."""
    fired = {r["case"] for r in rows if flags(r, rules, measure)}
    n_hard, n_easy = len(hard), len(rows) - len(hard)
    return (len(fired & hard) / max(n_hard, 1), len(fired - hard) / max(n_easy, 1), len(fired))


def choose(rows: list[dict], hard: set[str], start=None, families=None, measure: str = "entropy"):
    """Greedy: change one family's thresholds at a time while Youden's J grows."""
    rules = start or off_rules()
    families = families or FAMILIES
    hit, false, _ = rates(rows, hard, rules, measure)
    best_j = hit - false
    for _ in range(2 * len(families)):
        best = None
        for grid in families.values():
            for setting in grid:
                candidate = dataclasses.replace(rules, **setting)
                hit, false, fired = rates(rows, hard, candidate, measure)
                key = (round(hit - false, 9), -fired)
                if hit - false > best_j + 1e-9 and (best is None or key > best[0]):
                    best = (key, candidate)
        if best is None:
            break
        best_j, rules = best[0][0], best[1]
    return rules


def leave_one_out(
    rows: list[dict], families=None, measure: str = "entropy", start=None
) -> tuple[float, float]:
    """Hit rates when each case is flagged by the thresholds chosen without it."""
    hard_all = hard_cases(rows)
    hits = falses = 0
    for i, row in enumerate(rows):
        others = rows[:i] + rows[i + 1 :]
        rules = choose(others, hard_cases(others), start=start, families=families, measure=measure)
        fired = bool(flags(row, rules, measure))
        hits += fired and row["case"] in hard_all
        falses += fired and row["case"] not in hard_all
    n_hard = len(hard_all)
    return hits / n_hard, falses / (len(rows) - n_hard)


def choose_families(
    rows: list[dict], max_families: int = 3
) -> tuple[tuple[str, ...], tuple[float, float]]:
    """The subset of rule families (at most ``max_families``) with the best leave-one-out J.

    Ties go to fewer families, then to fewer easy cases flagged.

    Returns:
        ``(families, (hard flagged, others flagged))`` of the leave-one-out estimate.
    """
    from itertools import combinations

    best = None
    for k in range(1, max_families + 1):
        for subset in combinations(FAMILIES, k):
            hit, false = leave_one_out(rows, families={f: FAMILIES[f] for f in subset})
            key = (round(hit - false, 9), -k, -false)
            logger.info("%s: leave-one-out hard %.2f, others %.2f", "+".join(subset), hit, false)
            if best is None or key > best[0]:
                best = (key, subset, (hit, false))
    assert best is not None
    return best[1], best[2]


def tune(store: Path, as_json: bool = False) -> int:
    """Load the stored predictions, choose the thresholds, print the report."""
    from bratseg.review.uncertainty import DEFAULT_RULES

    paths = sorted(store.glob("*.npz"))
    if not paths:
        print(
            f"tune_review_flag: error: no predictions in {store} (run the predict step)",
            file=sys.stderr,
        )
        return 2
    rows = [case_row(p) for p in paths]
    hard = hard_cases(rows)
    families, loo = choose_families(rows)
    chosen = choose(rows, hard, families={f: FAMILIES[f] for f in families})
    changed = {k: v for k, v in dataclasses.asdict(chosen).items() if v != getattr(off_rules(), k)}
    with_spread = choose(
        rows,
        hard,
        start=chosen,
        families={"disagreement": DISAGREEMENT},
        measure="ensemble disagreement",
    )
    report = {
        "cases": len(rows),
        "hard": sorted(hard),
        "hard_cut_mean_dice": max(r["mean_dice"] for r in rows if r["case"] in hard),
        "chosen": changed,
        "chosen_disagreement": {
            k: getattr(with_spread, k)
            for k in ("uncertain_spread", "max_disagreement_ml", "max_disagreement_fraction")
        },
        "in_sample": dict(
            zip(("hard_flagged", "others_flagged", "flagged"), rates(rows, hard, chosen))
        ),
        "in_sample_disagreement": dict(
            zip(
                ("hard_flagged", "others_flagged", "flagged"),
                rates(rows, hard, with_spread, "ensemble disagreement"),
            )
        ),
        "families": list(families),
        "leave_one_out": dict(zip(("hard_flagged", "others_flagged"), loo)),
        "leave_one_out_all_families": dict(
            zip(("hard_flagged", "others_flagged"), leave_one_out(rows))
        ),
        "current_defaults": dict(
            zip(("hard_flagged", "others_flagged", "flagged"), rates(rows, hard, DEFAULT_RULES))
        ),
        "current_defaults_disagreement": dict(
            zip(
                ("hard_flagged", "others_flagged", "flagged"),
                rates(rows, hard, DEFAULT_RULES, "ensemble disagreement"),
            )
        ),
        "per_case": [
            {
                "case": r["case"],
                "mean_dice": round(r["mean_dice"], 3),
                "hard": r["case"] in hard,
                "reasons": flags(r, chosen),
                "reasons_default": flags(r, DEFAULT_RULES),
            }
            for r in rows
        ],
    }
    if as_json:
        print(json.dumps(report, indent=1))
        return 0
    print(
        f"{len(rows)} cases; hard = bottom quartile of mean Dice (<= {report['hard_cut_mean_dice']:.3f}): "
        f"{len(hard)} cases"
    )
    print("rule families (best leave-one-out J among subsets of up to 3):", ", ".join(families))
    print("chosen thresholds:", json.dumps(changed))
    print(
        "with ensemble disagreement instead of entropy:", json.dumps(report["chosen_disagreement"])
    )
    for key in (
        "in_sample",
        "in_sample_disagreement",
        "leave_one_out",
        "leave_one_out_all_families",
        "current_defaults",
        "current_defaults_disagreement",
    ):
        v = report[key]
        print(
            f"{key:30s} hard flagged {v['hard_flagged']:.0%}, others flagged {v['others_flagged']:.0%}"
        )
    print(
        "\n| case | mean Dice | hard | WT mL | ET % of WT | uncertain mL (H>=0.8) | ET mean p | flag (chosen) |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for r, c in sorted(zip(rows, report["per_case"]), key=lambda rc: rc[0]["mean_dice"]):
        f = r["facts"]
        et_pct = 100 * f.volumes_ml["et"] / max(f.volumes_ml["wt"], 1e-9)
        print(
            f"| {r['case']} | {r['mean_dice']:.3f} | {'yes' if c['hard'] else ''} | {f.volumes_ml['wt']:.0f} | "
            f"{et_pct:.0f} | "
            f"{r['entropy_ml'][0.8]:.1f} | {f.et_mean_prob:.2f} | {' '.join(c['reasons']) or '-'} |"
        )
    return 0


def main(argv: list[str] | None = None) -> int:
    """Parse the arguments and run a step."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("step", nargs="?", choices=("predict", "tune"), default="tune")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--store", type=Path, default=DEFAULT_STORE)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", action="store_true", help="tune: print the result as JSON")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if args.step == "predict":
        return predict(args.data, args.store, args.threads)
    return tune(args.store, as_json=args.json)


if __name__ == "__main__":
    sys.exit(main())
