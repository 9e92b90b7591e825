"""Safe, self-describing model checkpoints.

One file (``torch.save`` of a dict holding only tensors and plain Python values) with the
architecture name, its config, the weights, the modality order, the label convention, default pre-
and postprocessing parameters, training provenance, a format version, a timestamp and the bratseg
version. Loading uses ``torch.load(weights_only=True)``: files carrying pickled code (e.g. a whole
``nn.Module`` saved with ``torch.save(model)``) are refused, as are files for unknown
architectures or with weights that do not fit. A loaded checkpoint is a
:class:`~bratseg.loaded_model.LoadedModel` (:mod:`bratseg.loaded_model`, re-exported here).
"""

from __future__ import annotations

import copy
import dataclasses
import datetime as _dt
import hashlib
import logging
import pickle
import re
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

import bratseg
from bratseg.atomic import atomic_write
from bratseg.errors import CheckpointError
from bratseg.labels import check_convention
from bratseg.loaded_model import LoadedModel
from bratseg.model_checks import check_architecture_config, check_finite_weights, check_metadata
from bratseg.models.config import ModelConfig
from bratseg.models.registry import build_model, get_architecture
from bratseg.orientation import parse_axcodes

try:  # canonical channel order lives in bratseg.io
    from bratseg.io import MODALITIES
except ImportError:  # pragma: no cover - bratseg.io not available yet
    MODALITIES = ("t1", "t1ce", "t2", "flair")

logger = logging.getLogger(__name__)

CHECKPOINT_FORMAT_VERSION = 1
CHECKPOINT_FORMAT = "bratseg-checkpoint"
REQUIRED_KEYS = (
    "format",
    "format_version",
    "arch",
    "config",
    "state_dict",
    "modalities",
    "convention",
    "postprocess",
    "preprocess",
    "provenance",
)


def to_plain(value: Any, where: str = "value") -> Any:
    """Convert metadata to types ``torch.load(weights_only=True)`` accepts.

    Dataclasses (``to_dict`` if present), Paths, numpy scalars/arrays, tuples and sets become
    dicts, strings, numbers and lists. Anything else raises ``TypeError`` naming ``where``.
    """
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, (int, float, str)):
        return type(value).__mro__[-2](value) if type(value) not in (int, float, str) else value
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        return value.item()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        data = value.to_dict() if hasattr(value, "to_dict") else dataclasses.asdict(value)
        return to_plain(data, where)
    if isinstance(value, dict):
        return {str(k): to_plain(v, f"{where}.{k}") for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [to_plain(v, f"{where}[]") for v in value]
    raise TypeError(f"checkpoint metadata {where} has unsupported type {type(value).__name__}")


def _state_dict_for_saving(model: nn.Module, half: bool) -> dict[str, torch.Tensor]:
    """CPU copies of the weights; entries aliasing one tensor (e.g. the ``skip_layers``
    names of older nnunet checkpoints) stay one shared tensor, so ``torch.save`` stores them once."""
    state: dict[str, torch.Tensor] = {}
    seen: dict[tuple[int, tuple[int, ...], tuple[int, ...], torch.dtype], torch.Tensor] = {}
    for key, tensor in model.state_dict().items():
        alias = (tensor.data_ptr(), tuple(tensor.shape), tensor.stride(), tensor.dtype)
        if alias in seen and tensor.numel() > 0:
            state[key] = seen[alias]
            continue
        t = tensor.detach().cpu()
        if half and t.is_floating_point():
            t = t.half()
        state[key] = seen[alias] = t.clone()
    return state


def save_checkpoint(
    path: str | Path,
    model: nn.Module,
    *,
    arch: str,
    config: ModelConfig | dict[str, Any] | None,
    modalities: tuple[str, ...] | list[str] = MODALITIES,
    convention: str = "2021",
    postprocess: dict[str, Any] | None = None,
    preprocess: dict[str, Any] | None = None,
    provenance: dict[str, Any] | None = None,
    extra: dict[str, Any] | None = None,
    half: bool = False,
    orientation: str = "LPS",
) -> Path:
    """Write a checkpoint atomically (see :func:`bratseg.atomic.atomic_write`).

    Args:
        path: destination file (``.pt``); parent folders are created.
        model: the network whose ``state_dict`` is saved.
        arch: registry name of the architecture.
        config: its config (dataclass or dict); None -> ``model.config``.
        modalities: input channel order.
        convention: label convention of the training labels ("2021" or "2023").
        postprocess: PostprocessConfig kwargs; None -> the architecture's defaults.
        preprocess: PreprocessConfig kwargs used in training.
        provenance: training data, split, epochs, metrics, device, time...
        extra: anything else (plain values).
        half: store floating-point weights as float16 (half the size; loading casts back).
        orientation: axis codes of the voxel storage the network was trained in (inference
            reorients every case to it; see :mod:`bratseg.orientation`).

    Returns:
        The written path.
    """
    path = Path(path)
    spec = get_architecture(arch)
    if config is None:
        config = getattr(model, "config", None)
    cfg = spec.make_config(config if config is not None else None)
    check_convention(convention)
    payload = {
        "format": CHECKPOINT_FORMAT,
        "format_version": CHECKPOINT_FORMAT_VERSION,
        "arch": arch,
        "config": cfg.to_dict(),
        "state_dict": _state_dict_for_saving(model, half),
        "half": bool(half),
        "modalities": to_plain(list(modalities), "modalities"),
        "convention": convention,
        "orientation": "".join(parse_axcodes(orientation)),
        "postprocess": to_plain(
            dict(spec.default_postprocess if postprocess is None else postprocess), "postprocess"
        ),
        "preprocess": to_plain(dict(preprocess or {}), "preprocess"),
        "provenance": to_plain(dict(provenance or {}), "provenance"),
        "extra": to_plain(dict(extra or {}), "extra"),
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "bratseg_version": str(bratseg.__version__),
        "torch_version": str(torch.__version__),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(path) as handle:
        torch.save(payload, handle)
    logger.info("saved %s checkpoint to %s", arch, path)
    return path


def file_sha256(path: str | Path) -> str:
    """Hex SHA-256 of a file."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _read_payload(path: Path, map_location: Any, *, mmap: bool = False) -> dict[str, Any]:
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True, mmap=mmap)
    except pickle.UnpicklingError as exc:
        if "GLOBAL" not in str(exc):  # references to Python code (classes, functions)
            detail = re.search(r"WeightsUnpickler error:\s*(.+)", str(exc))
            reason = detail.group(1).strip() if detail else str(exc).splitlines()[0][:120]
            raise CheckpointError(
                f"not a readable PyTorch checkpoint; it cannot be loaded safely "
                f"with weights_only=True ({reason})",
                path,
            ) from None
        found = re.search(r"GLOBAL (\S+)", str(exc))
        first = f"it references {found.group(1)}" if found else type(exc).__name__
        raise CheckpointError(
            "refused: the file carries pickled Python objects/code (e.g. a whole model saved with "
            f"torch.save(model)), not a bratseg checkpoint of plain weights [{first[:200]}]",
            path,
        ) from None
    except (RuntimeError, EOFError, OSError, ValueError, AttributeError) as exc:
        first = str(exc).splitlines()[0][:160] if str(exc) else ""
        raise CheckpointError(
            f"not a readable PyTorch checkpoint ({type(exc).__name__}: {first})", path
        ) from None
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(
            "not a bratseg checkpoint (no 'format: bratseg-checkpoint' entry; a bare state_dict "
            "cannot be loaded without its architecture)",
            path,
        )
    missing = [k for k in REQUIRED_KEYS if k not in payload]
    if missing:
        raise CheckpointError(f"incomplete bratseg checkpoint, missing: {', '.join(missing)}", path)
    version = payload["format_version"]
    if version != CHECKPOINT_FORMAT_VERSION:
        raise CheckpointError(
            f"checkpoint format_version {version!r} is not supported (this bratseg reads "
            f"version {CHECKPOINT_FORMAT_VERSION})",
            path,
        )
    return payload


#: The last network built for loading, copied for the next checkpoint of the same architecture
#: and config (an ensemble's members): copying is ~10x faster than building, whose random
#: initialisation the checkpoint's weights overwrite anyway.
_template: tuple[str, str, nn.Module] | None = None


def _new_model(arch: str, config: ModelConfig) -> nn.Module:
    """A network of ``arch`` / ``config`` to load weights into (its initial weights are arbitrary)."""
    global _template
    key = repr(config.to_dict())
    template = _template  # one read: another thread may replace it meanwhile
    if template is None or template[:2] != (arch, key):
        template = _template = (arch, key, build_model(arch, config))
    return copy.deepcopy(template[2])


def _load_weights(model: nn.Module, state: dict[str, torch.Tensor]) -> str | None:
    """Load ``state`` into ``model``; a one-line summary of why it does not fit (None if it does).

    Shapes are compared first (PyTorch raises on the first wrong one); then PyTorch loads
    non-strictly, so the networks' own load hooks (e.g. the nnunet's dropping of MONAI's alias
    names) run before missing and unexpected names are counted.
    """
    own = model.state_dict()
    wrong = [
        f"{k} {tuple(state[k].shape)} vs {tuple(own[k].shape)}"
        for k in own
        if k in state and tuple(state[k].shape) != tuple(own[k].shape)
    ]
    if wrong:
        return f"{len(wrong)} tensor(s) of wrong shape (checkpoint vs model), e.g. {wrong[0]}"
    result = model.load_state_dict(state, strict=False)
    parts = []
    if result.missing_keys:
        parts.append(f"{len(result.missing_keys)} missing, e.g. {result.missing_keys[0]}")
    if result.unexpected_keys:
        n, first = len(result.unexpected_keys), result.unexpected_keys[0]
        parts.append(f"{n} unexpected, e.g. {first}")
    return "; ".join(parts) or None


def read_provenance(path: str | Path) -> dict[str, Any]:
    """A checkpoint's ``meta["provenance"]`` without building its network or reading its weights
    (they stay memory-mapped on disk): for tools that follow init chains.

    Raises:
        CheckpointError: missing/unreadable file, pickled code, not a bratseg checkpoint, wrong
            format version.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError("checkpoint file not found", path)
    payload = _read_payload(path, map_location="cpu", mmap=True)
    return dict(payload.get("provenance") or {})


def load_checkpoint(
    path: str | Path, map_location: str | torch.device = "cpu", *, expected_arch: str | None = None
) -> LoadedModel:
    """Load a checkpoint written by :func:`save_checkpoint`.

    Args:
        path: the ``.pt`` file.
        map_location: device for the weights and the model ("cpu", "cuda", torch.device).
        expected_arch: refuse a checkpoint of any other architecture.

    Returns:
        :class:`LoadedModel` with the model in eval mode (float32 weights).

    Raises:
        CheckpointError: missing/unreadable file, pickled code, not a bratseg checkpoint, wrong
            format version, unknown or unexpected architecture, metadata the engine cannot use
            (:func:`bratseg.model_checks.check_metadata`), a config out of bounds, non-finite
            weights, weights that do not fit.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError("checkpoint file not found", path)
    sha = file_sha256(path)
    payload = _read_payload(path, map_location="cpu")
    arch = payload["arch"]
    if expected_arch is not None and arch != expected_arch:
        raise CheckpointError(
            f"checkpoint is for architecture {arch!r}, expected {expected_arch!r}", path
        )
    try:
        spec = get_architecture(arch)
    except KeyError:
        from bratseg.models.registry import ARCHITECTURES

        raise CheckpointError(
            f"unknown architecture {arch!r} (known: {', '.join(ARCHITECTURES)})", path
        ) from None
    check_metadata(payload, path)
    try:
        config = spec.config_cls.from_dict(payload["config"])
    except (ValueError, TypeError) as exc:
        raise CheckpointError(f"invalid {arch} config: {exc}", path) from None
    check_architecture_config(arch, config, path)  # bounded before anything is allocated
    state = {
        k: (v.float() if v.dtype == torch.float16 else v) for k, v in payload["state_dict"].items()
    }
    check_finite_weights(state, path)
    try:
        model = _new_model(arch, config)
    except (ValueError, TypeError) as exc:
        raise CheckpointError(f"invalid {arch} config: {exc}", path) from None
    problem = _load_weights(model, state)
    if problem:
        raise CheckpointError(f"weights do not fit architecture {arch!r}: {problem}", path)
    model.to(torch.device(map_location)).eval()
    meta = {k: v for k, v in payload.items() if k != "state_dict"}
    logger.info("loaded %s checkpoint %s (sha256 %s)", arch, path, sha[:12])
    return LoadedModel(model=model, spec=spec, config=config, meta=meta, path=path, sha256=sha)


def export_torchscript(model: nn.Module, path: str | Path, example_shape: tuple[int, ...]) -> Path:
    """Trace ``model`` in eval mode on zeros of ``example_shape`` (B, C, X, Y, Z) and save it.

    The traced module maps (B, C, X, Y, Z) -> logits (B, K, X, Y, Z) for the traced sizes (other
    sizes usually work for fully convolutional nets, but not for ``segresnet-vae``'s VAE, which
    is dropped in eval anyway).
    """
    path = Path(path)
    was_training = model.training
    model.eval()
    try:
        device = next(model.parameters()).device
        with torch.no_grad():
            traced = torch.jit.trace(model, torch.zeros(example_shape, device=device))
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_write(path) as handle:
            torch.jit.save(traced, handle)
    finally:
        model.train(was_training)
    return path


__all__ = [
    "CHECKPOINT_FORMAT_VERSION",
    "LoadedModel",
    "export_torchscript",
    "file_sha256",
    "load_checkpoint",
    "save_checkpoint",
    "to_plain",
]
