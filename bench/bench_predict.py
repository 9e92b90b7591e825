"""Benchmark: `predict` wall time versus the bare network forward on the same cropped tensor.

Uses a real shared case and the bundled default model; while no weights are bundled it uses the
``small`` preset of ``--arch`` (default nnunet, Futrega et al. 2021) with random weights saved as a checkpoint
with target_spacing 2.0 mm (the table says which). Forward and predict runs are interleaved and
the minimum and median of ``--repeats`` runs are reported (the machine is shared: expect noise).
Peak RAM is the process's ``ru_maxrss``.

Run: ``.venv/bin/python bench/bench_predict.py [--json] [--device cpu|cuda] [--repeats 3]``
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CASE = ROOT / ".." / "shared" / "data" / "brats2018" / "Brats18_2013_2_1"


def peak_rss_mb() -> float:
    """Peak resident memory of this process in MB (Linux reports KB, macOS bytes)."""
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / (1024 * 1024) if sys.platform == "darwin" else rss / 1024


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--case", type=Path, default=DEFAULT_CASE)
    parser.add_argument(
        "--model",
        help="checkpoint or zoo name (default: the first bundled default model, else random small)",
    )
    parser.add_argument(
        "--arch", default="nnunet", help="architecture for the random-weight fallback"
    )
    parser.add_argument(
        "--spacing", type=float, default=2.0, help="target spacing of the fallback (mm)"
    )
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--tta", type=int, default=0, choices=(0, 8))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)

    from bratseg.checkpoint import load_checkpoint, save_checkpoint
    from bratseg.inference import (
        InferenceOptions,
        predict_case,
        select_device,
    )
    from bratseg.io import load_case
    from bratseg.models import build_model
    from bratseg.preprocess import preprocess_with_config
    from bratseg.zoo import default_model_names, resolve_model

    device, device_desc = select_device(args.device)
    t0 = time.perf_counter()
    case = load_case(args.case, load_seg=False)
    load_s = time.perf_counter() - t0

    tmp = tempfile.TemporaryDirectory()
    name = args.model or next(iter(default_model_names()), None)
    if name:
        path = resolve_model(name)
        source = f"checkpoint {path.name}"
    else:
        torch.manual_seed(0)
        model = build_model(args.arch, preset="small")
        path = save_checkpoint(
            Path(tmp.name) / f"{args.arch}-small-random.pt",
            model,
            arch=args.arch,
            config=model.config,
            preprocess={
                "target_spacing": args.spacing,
                "foreground_channel": model.config.in_channels == 5,
            },
        )
        source = f"{args.arch} 'small' preset, random weights, target_spacing {args.spacing} mm (no bundled weights)"
    loaded = load_checkpoint(path, map_location=device)

    cfg = loaded.preprocess_config()
    x_np, info = preprocess_with_config(case.image, case.spacing, cfg)
    x = torch.from_numpy(x_np)[None].to(device)
    options = InferenceOptions(device=args.device, tta=args.tta)
    use_amp = device.type == "cuda"

    def forward() -> float:
        if device.type == "cuda":
            torch.cuda.synchronize()
        t = time.perf_counter()
        with torch.no_grad(), torch.autocast("cuda", dtype=torch.float16, enabled=use_amp):
            loaded.model(x)
        if device.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - t

    forward()  # warm-up (allocator, cuDNN autotune, lazy init)
    fwd, pred_s, timings = [], [], []
    for _ in range(args.repeats):
        fwd.append(forward())
        t = time.perf_counter()
        pred = predict_case(case, [loaded], options)
        pred_s.append(time.perf_counter() - t)
        timings.append(pred.timings)
    n_flips = 8 if args.tta == 8 else 1
    result = {
        "case": case.case_id,
        "model": source,
        "device": pred.device,
        "threads": torch.get_num_threads(),
        "tta": args.tta,
        "network_input_shape": list(x.shape),
        "load_case_s": round(load_s, 3),
        "forward_s_min": round(min(fwd), 3),
        "forward_s_median": round(statistics.median(fwd), 3),
        "predict_s_min": round(min(pred_s), 3),
        "predict_s_median": round(statistics.median(pred_s), 3),
        "ratio_min": round(min(pred_s) / (n_flips * min(fwd)), 3),
        "ratio_median": round(statistics.median(pred_s) / (n_flips * statistics.median(fwd)), 3),
        "phases_s_median": {
            k: round(statistics.median(t[k] for t in timings), 3) for k in timings[0]
        },
        "peak_rss_mb": round(peak_rss_mb(), 1),
        "targets": {"ratio": 1.3, "peak_rss_mb": 4096},
    }
    tmp.cleanup()
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(f"case {result['case']} ({list(case.image.shape)}), model: {source}")
    print(
        f"device {result['device']}, network input {result['network_input_shape']}, "
        f"case loading {load_s:.2f} s (not included below)"
    )
    rows = [
        ("bare network forward", result["forward_s_min"], result["forward_s_median"], ""),
        ("predict (pre+net+invert+post)", result["predict_s_min"], result["predict_s_median"], ""),
        ("ratio predict / forward", result["ratio_min"], result["ratio_median"], "target <= 1.3"),
    ]
    print(f"{'':32s}{'min':>9s}{'median':>9s}")
    for label, a, b, note in rows:
        print(f"{label:32s}{a:9.3f}{b:9.3f}  {note}")
    print(
        "predict phases (median s): "
        + ", ".join(f"{k} {v}" for k, v in result["phases_s_median"].items())
    )
    print(f"peak RAM {result['peak_rss_mb']:.0f} MB (target <= 4096 MB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
