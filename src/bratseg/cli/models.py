"""``napari-brats models``: checkpoints of the zoo and the architectures of the registry."""

from __future__ import annotations

import argparse
import logging
from typing import Any

from bratseg.cli._common import format_table, print_json
from bratseg.errors import BratsInputError

logger = logging.getLogger(__name__)


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``models`` command."""
    p = subparsers.add_parser(
        "models",
        help="list available models (bundled and user checkpoints) and architectures",
        description="List the model checkpoints usable with `predict --model NAME` (bundled with the "
        "package, or in $BRATSEG_HOME/models, default ~/.napari-brats/models) with their paper, "
        "parameter count and validation Dice when the checkpoint records it, then every registered "
        "architecture (paper preset sizes) including those without weights. With NAME, print that "
        "model's card; `models default` prints the default ensemble's card (members, "
        "postprocessing, cross-validated scores).",
    )
    p.add_argument(
        "name",
        nargs="?",
        metavar="NAME",
        help="show this model's card (data, split, training, validation scores, speed)",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object instead of tables")
    p.add_argument(
        "--torchscript",
        metavar="OUT",
        help="with NAME: write the network traced with TorchScript (input (1, C, X, Y, Z) -> "
        "logits) for use without this package",
    )
    p.add_argument(
        "--size",
        type=int,
        nargs=3,
        metavar=("X", "Y", "Z"),
        default=(128, 128, 128),
        help="input size the TorchScript trace is made for (default 128 128 128)",
    )
    p.set_defaults(func=run)


def _short_count(n: int | None) -> str:
    if n is None:
        return "-"
    if n >= 1e6:
        return f"{n / 1e6:.1f}M"
    if n >= 1e3:
        return f"{n / 1e3:.1f}k"
    return str(n)


def _dice_text(val: dict[str, float] | None) -> str:
    if not val:
        return "-"
    return " / ".join(
        f"{k.upper()} {float(v):.3f}" for k, v in val.items() if k in ("wt", "tc", "et")
    )


def _paper_short(paper: str) -> str:
    """'Futrega et al. 2021, Optimized U-Net ...' -> 'Futrega et al. 2021'."""
    head, _, _ = paper.partition(",")
    return head if len(head) < 40 else head[:37] + "..."


def architecture_parameters(name: str, preset: str) -> int | None:
    """Parameter count of a preset, built on the ``meta`` device (no memory, no init cost)."""
    import torch

    from bratseg.models import build_model

    try:
        with torch.device("meta"):
            model = build_model(name, preset=preset)
    except Exception as exc:  # noqa: BLE001 - a count is optional
        logger.debug("cannot count parameters of %s/%s: %s", name, preset, exc)
        return None
    return int(sum(p.numel() for p in model.parameters()))


def collect() -> dict[str, Any]:
    """Everything ``models`` shows, as plain data."""
    from bratseg.models import get_architecture, list_architectures
    from bratseg.zoo import default_model_names, list_models, user_models_dir

    default = default_model_names()
    models = []
    for e in list_models():
        try:
            paper = get_architecture(e.arch).paper
        except KeyError:
            paper = "?"
        models.append(
            {
                "name": e.name,
                "arch": e.arch,
                "paper": paper,
                "parameters": e.parameters,
                "bundled": e.bundled,
                "default": e.bundled and e.name in default,
                "val_dice": e.val_dice,
                "val_dice_is_cv": e.cross_validated,
                "path": str(e.path),
                "convention": e.meta.get("convention"),
                "preprocess": e.meta.get("preprocess"),
                "created": e.meta.get("created"),
            }
        )
    with_weights = {m["arch"] for m in models}
    archs = []
    for spec in list_architectures():
        archs.append(
            {
                "name": spec.name,
                "paper": spec.paper,
                "output": spec.output_kind,
                "parameters_paper": architecture_parameters(spec.name, "paper"),
                "parameters_small": architecture_parameters(spec.name, "small"),
                "has_weights": spec.name in with_weights,
                "description": spec.description,
            }
        )
    return {
        "default": default,
        "user_dir": str(user_models_dir()),
        "models": models,
        "architectures": archs,
    }


def show_card(name: str, as_json: bool) -> int:
    """Print the card of one model (zoo name or checkpoint file), or the default ensemble's."""
    from bratseg.zoo import embedded_card, format_card, read_checkpoint_meta, resolve_model
    from bratseg.zoo.catalogue import checkpoint_names
    from bratseg.zoo.default_ensemble import (
        DEFAULT_CARD_NAME,
        default_ensemble_card,
        format_ensemble_card,
    )

    if name == DEFAULT_CARD_NAME and name not in checkpoint_names():
        ensemble = default_ensemble_card()
        if as_json:
            print_json(ensemble)
        else:
            print(format_ensemble_card(ensemble))
        return 0
    path = resolve_model(name)
    card = embedded_card(read_checkpoint_meta(path))  # metadata only, no weights
    if card is None:
        raise BratsInputError(
            "this checkpoint carries no model card (train and bundle it to get one)", path
        )
    if as_json:
        print_json(card.to_dict())
    else:
        print(format_card(card))
    return 0


def run(args: argparse.Namespace) -> int:
    """Print the tables (or JSON), or one model's card."""
    if args.torchscript:
        if not args.name:
            raise BratsInputError("--torchscript needs a model NAME")
        return export_traced(args.name, args.torchscript, tuple(args.size))
    if args.name:
        return show_card(args.name, args.json)
    data = collect()
    if args.json:
        print_json(data)
        return 0
    if data["models"]:
        rows = [
            [
                m["name"] + (" (default)" if m["default"] else ""),
                m["arch"],
                _paper_short(m["paper"]),
                _short_count(m["parameters"]),
                "yes" if m["bundled"] else "no (user)",
                _dice_text(m["val_dice"]) + (" (CV)" if m["val_dice_is_cv"] else ""),
            ]
            for m in data["models"]
        ]
        print("Models with weights")
        print(
            format_table(
                ["name", "architecture", "paper", "params", "bundled", "validation Dice"], rows
            )
        )
        if len(data["default"]) > 1:
            print(
                f"Default: the ensemble of {' + '.join(data['default'])} (probabilities averaged)."
            )
    else:
        print(f"No model weights installed (none bundled, none in {data['user_dir']}).")
        print(
            "Train one with `napari-brats train` or pass a checkpoint: `predict --model FILE.pt`."
        )
    print()
    rows = [
        [
            a["name"],
            _paper_short(a["paper"]),
            a["output"],
            _short_count(a["parameters_paper"]),
            _short_count(a["parameters_small"]),
            "yes" if a["has_weights"] else "no",
        ]
        for a in data["architectures"]
    ]
    print("Architectures")
    print(
        format_table(
            ["architecture", "paper", "output", "params (paper)", "params (small)", "weights"], rows
        )
    )
    return 0


def export_traced(name: str, out: str, size: tuple[int, ...]) -> int:
    """Trace model ``name`` for inputs of ``size`` and write it to ``out`` (atomically)."""
    from pathlib import Path

    from bratseg.checkpoint import export_torchscript, load_checkpoint
    from bratseg.zoo import resolve_model

    if Path(out).exists():
        raise BratsInputError("file exists; refusing to overwrite it", out)
    loaded = load_checkpoint(resolve_model(name))
    divisor = int(getattr(loaded.config, "size_divisor", None) or loaded.spec.size_divisor)
    if any(s % divisor for s in size):
        raise BratsInputError(
            f"--size must be multiples of {divisor} for {loaded.arch}, got {size}"
        )
    channels = int(getattr(loaded.config, "in_channels", None) or loaded.spec.in_channels)
    path = export_torchscript(loaded.model.float(), out, (1, channels, *size))
    print(
        f"wrote {path} ({loaded.arch}, input (1, {channels}, {', '.join(map(str, size))}) -> logits)"
    )
    return 0
