"""Training throughput: patches/s of an architecture's default recipe, data loading vs compute.

Measures on real cases (cached crops):

* ``data``: seconds to produce one augmented patch in the main process (sampling + MONAI
  augmentations), i.e. what a DataLoader worker spends per patch;
* ``compute``: seconds of one optimiser step (forward, loss, backward, update) on a fixed batch;
* ``loop``: the real training loop (DataLoader with ``--num-workers``): seconds per step and the
  part of it spent waiting for data;
* ``activations``: megabytes of tensors kept by autograd for the backward pass of one step (what
  fills GPU memory besides the weights), with ``--grad-checkpoint`` after activation checkpointing.

Usage::

    .venv/bin/python bench/bench_train.py --model segresnet-vae --preset small --steps 5
    .venv/bin/python bench/bench_train.py --model nnunet --device cuda --num-workers 4 --json
    .venv/bin/python bench/bench_train.py --model nnunet --patch 64 64 64 --grad-checkpoint
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / ".." / "shared" / "data" / "brats2018"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(DATA))
    parser.add_argument("--model", default="segresnet-vae")
    parser.add_argument("--preset", default="small")
    parser.add_argument("--target-spacing", type=float, default=2.0)
    parser.add_argument("--patch", type=int, nargs=3)
    parser.add_argument("--cases", type=int, default=4, help="training cases to load")
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--num-workers", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int)
    parser.add_argument(
        "--cache-dir", default=str(Path(tempfile.gettempdir()) / "bratseg-bench-cache")
    )
    parser.add_argument(
        "--grad-checkpoint", action="store_true", help="activation checkpointing on"
    )
    parser.add_argument(
        "--no-amp", action="store_true", help="float32 (default: the trainer's mixed precision)"
    )
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)

    from bratseg.inference.device import select_device
    from bratseg.loaded_model import size_divisor
    from bratseg.training.augment import build_augmentation
    from bratseg.training.config import TrainConfig
    from bratseg.training.data import discover_cases, load_cases
    from bratseg.training.losses import loss_for
    from bratseg.training.patches import (
        EpochSampler,
        PatchDataset,
        default_patch,
        training_sample,
    )
    from bratseg.training.recipes import build_optimizer, default_recipe
    from bratseg.training.setup import (
        enable_gradient_checkpointing,
        fit_fixed_input,
        initial_model,
        make_loader,
        preprocess_for,
        round_patch,
        training_precision,
    )

    device, desc = select_device(args.device, args.threads)
    init = initial_model(args.model, args.preset)
    pp = preprocess_for(
        TrainConfig(data=[args.data], out="-", target_spacing=args.target_spacing), init
    )
    div = size_divisor(init)
    patch = round_patch(args.patch, div) if args.patch else default_patch(pp, div)
    patch = fit_fixed_input(init, patch)
    recipe = default_recipe(init.arch)
    refs = discover_cases([args.data])[: args.cases]
    t0 = time.perf_counter()
    cases = load_cases(refs, pp, args.cache_dir)
    t_cache = time.perf_counter() - t0
    t0 = time.perf_counter()
    cases = load_cases(refs, pp, args.cache_dir)
    t_cached = (time.perf_counter() - t0) / len(refs)
    augment = build_augmentation(recipe.augment, patch, has_extra=pp.foreground_channel)
    bs = recipe.batch_size
    samples = max(args.steps + 2, 4) * bs
    dataset = PatchDataset([training_sample(c, patch) for c in cases], augment, samples, seed=0)

    # data: per-patch production time in this process
    dataset[0]
    times = []
    for i in range(1, min(samples, 8)):
        t0 = time.perf_counter()
        dataset[i]
        times.append(time.perf_counter() - t0)
    t_data = statistics.median(times)

    # compute: fixed batch
    net = init.model.to(device).train()
    if args.grad_checkpoint:
        enable_gradient_checkpointing(net)
    crit = loss_for(init.spec, recipe)
    opt = build_optimizer(net.parameters(), recipe)
    batch = torch.utils.data.default_collate([dataset[i] for i in range(bs)])
    x, y = batch["image"].to(device), batch["label"].to(device)
    amp_dtype = None if args.no_amp else training_precision(device, recipe)

    def step(x: torch.Tensor, y: torch.Tensor) -> float:
        with torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
            out = net(x)
        loss, _ = crit(out, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return float(loss.detach())

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize()

    kept = [0]

    def pack(t: torch.Tensor) -> torch.Tensor:
        kept[0] += t.numel() * t.element_size()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        step(x, y)
    sync()
    times = []
    for _ in range(args.steps):
        t0 = time.perf_counter()
        step(x, y)
        sync()
        times.append(time.perf_counter() - t0)
    t_compute = statistics.median(times)

    loops = {}
    for nw in args.num_workers:
        sampler = EpochSampler(samples, seed=0)
        loader = make_loader(dataset, sampler, bs, nw, device)
        wait, total, n = 0.0, 0.0, 0
        it = iter(loader)
        next(it)  # start-up excluded
        t_prev = time.perf_counter()
        for b in it:
            t_got = time.perf_counter()
            step(b["image"].to(device), b["label"].to(device))
            sync()
            t_done = time.perf_counter()
            if n < args.steps:
                wait += t_got - t_prev
                total += t_done - t_prev
                n += 1
            t_prev = t_done
        del it, loader
        loops[str(nw)] = {
            "s_per_step": total / max(n, 1),
            "data_wait_s": wait / max(n, 1),
            "patches_per_s": bs * n / max(total, 1e-9),
        }

    result = {
        "model": init.arch,
        "preset": args.preset,
        "device": desc,
        "patch": list(patch),
        "batch_size": bs,
        "precision": str(amp_dtype or torch.float32).replace("torch.", ""),
        "target_spacing": pp.target_spacing,
        "parameters": sum(p.numel() for p in net.parameters()),
        "cache_build_s_per_case": t_cache / len(refs),
        "cache_load_s_per_case": t_cached,
        "data_s_per_patch": t_data,
        "compute_s_per_step": t_compute,
        "compute_patches_per_s": bs / t_compute,
        "loop": loops,
        "grad_checkpoint": args.grad_checkpoint,
        "activations_mb": kept[0] / 2**20,
        "load_average": os.getloadavg()[0],
        "cpus": os.cpu_count(),
    }
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(
            f"{init.arch} ({args.preset}, {result['parameters']:,} params) on {desc}, patch {list(patch)} "
            f"at {pp.target_spacing} mm, batch {bs}, {result['precision']}; load average {result['load_average']:.1f}"
        )
        print(
            f"  cache: build {result['cache_build_s_per_case']:.2f} s/case, reload {t_cached * 1000:.0f} ms/case"
        )
        print(f"  data:    {t_data * 1000:.0f} ms per augmented patch (one process)")
        print(f"  compute: {t_compute:.3f} s per step -> {bs / t_compute:.2f} patches/s")
        print(
            f"  activations kept for backward: {kept[0] / 2**20:.0f} MB"
            + (" (activation checkpointing on)" if args.grad_checkpoint else "")
        )
        for nw, r in loops.items():
            print(
                f"  loop, {nw} worker(s): {r['s_per_step']:.3f} s/step ({r['patches_per_s']:.2f} patches/s), "
                f"waiting for data {r['data_wait_s'] * 1000:.0f} ms/step"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
