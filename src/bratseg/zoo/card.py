"""Model cards: what a shipped checkpoint says about itself, and its text forms.

A card (:class:`ModelCard`) is stored in a bundled checkpoint at ``meta["provenance"]["card"]``
and beside it as ``NAME.json`` (written by :func:`bratseg.evaluation.bundling.bundle_run`). Its
``val_dice`` is what :mod:`bratseg.zoo` (and ``napari-brats models``) shows: Dice at full
resolution, measured by the real prediction pipeline on cases the weights did not train on.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from bratseg.errors import BratsInputError
from bratseg.labels import REGIONS

logger = logging.getLogger(__name__)

#: Units of the HD95 values of a card (the official BraTS evaluation measures on the voxel grid).
HD95_UNITS = "voxels (mm on the 1 mm BraTS grid), official BraTS definition"


@dataclass
class CardData:
    """The cases a card's weights were trained and scored on, by dataset name and case ID.

    Attributes:
        folders: Names (never paths) of the folders of case folders.
        n_cases: Distinct cases among training and validation.
        train_cases: Case IDs the weights trained on.
        val_cases: Case IDs held out from these weights (empty for cross-validated weights).
        datasets: Dataset name -> its case IDs among the above (``"?"``: not found).
        pretrained_cases: Case IDs the initial weights had trained on.
    """

    folders: list[str] = field(default_factory=list)
    n_cases: int = 0
    train_cases: list[str] = field(default_factory=list)
    val_cases: list[str] = field(default_factory=list)
    datasets: dict[str, list[str]] = field(default_factory=dict)
    pretrained_cases: list[str] = field(default_factory=list)


#: Keys written only when set (older cards and cards of weights that held cases out lack them).
_OPTIONAL_KEYS = ("cross_validation", "gpu_seconds_per_case", "gpu", "file", "sha256", "file_size")


@dataclass
class ModelCard:
    """The card of one shipped checkpoint (JSON: :meth:`to_dict` / :meth:`from_dict`).

    Scores are per region (``{"wt", "tc", "et"}``), measured at full resolution by the predict
    pipeline; HD95 in :data:`HD95_UNITS`. ``val_per_case`` rows are those of
    :func:`bratseg.evaluation.scoring.evaluate_cases` (``case``, ``dice``, ``hd95``, ``seconds``
    and, pooled over folds, ``fold``).

    Attributes:
        name: The model's name (file stem, what ``--model`` accepts).
        architecture: Registry name of the network.
        paper: Author-year reference of the architecture.
        preset: Size preset of the network.
        config: The network config (:class:`bratseg.models.config` ``to_dict``).
        parameters: Learnable weights.
        data: :class:`CardData`.
        split: How the cases were split (the trainer's note).
        seed, epochs, steps, steps_per_epoch, patch: The training run.
        preprocess, postprocess: The checkpoint's defaults (dict forms of their configs).
        recipe: The training recipe (``source`` says where it came from).
        swa: Weight averaging of the run, if any.
        init_from: Initial weights (file name and sha256), if fine-tuned.
        checkpoint: ``"best"`` or ``"last"`` epoch of the run.
        training_wall_time_s: Training time up to the bundled checkpoint.
        run: The whole run (:class:`bratseg.training.events.RunSummary`).
        training_device: Where it trained, in words.
        val_dice, val_dice_std, val_hd95, val_hd95_std: Means and standard deviations over cases.
        hd95_units: Units of the HD95 values.
        val_per_case: One row per scored case.
        cross_validation: For weights trained on every case: the folds whose held-out
            predictions gave the scores (:func:`bratseg.evaluation.crossval.cv_section`).
        val_dice_training_resolution: The trainer's own validation Dice (training resolution).
        cpu_seconds_per_case, cpu_threads: Speed of loading + predicting one case on the CPU.
        gpu_seconds_per_case, gpu: The same on a GPU, when measured.
        date: When the card was written (UTC, ISO 8601).
        bratseg_version: Version that wrote it.
        source_checkpoint: ``run/best.pt`` (the last two path parts only).
        source_sha256: The source checkpoint's sha256.
        remark: What the scores mean and how they were measured, in words.
        file, sha256, file_size: The shipped file (in ``NAME.json`` only).
        other: Keys this version does not know (kept, so nothing read is lost).
    """

    name: str = "?"
    architecture: str = "?"
    paper: str | None = None
    preset: str | None = None
    config: dict[str, Any] = field(default_factory=dict)
    parameters: int = 0
    data: CardData = field(default_factory=CardData)
    split: str | None = None
    seed: int | None = None
    epochs: int | None = None
    steps: int | None = None
    steps_per_epoch: int | None = None
    patch: list[int] | None = None
    preprocess: dict[str, Any] = field(default_factory=dict)
    postprocess: dict[str, Any] = field(default_factory=dict)
    recipe: dict[str, Any] | None = None
    swa: Any = None
    init_from: dict[str, Any] | None = None
    checkpoint: str | None = None
    training_wall_time_s: float | None = None
    run: dict[str, Any] = field(default_factory=dict)
    training_device: str | None = None
    val_dice: dict[str, float] = field(default_factory=dict)
    val_dice_std: dict[str, float] = field(default_factory=dict)
    val_hd95: dict[str, float] = field(default_factory=dict)
    val_hd95_std: dict[str, float] = field(default_factory=dict)
    hd95_units: str = HD95_UNITS
    val_per_case: list[dict[str, Any]] = field(default_factory=list)
    cross_validation: dict[str, Any] | None = None
    val_dice_training_resolution: dict[str, float] | None = None
    cpu_seconds_per_case: float | None = None
    cpu_threads: int | None = None
    gpu_seconds_per_case: float | None = None
    gpu: str | None = None
    date: str | None = None
    bratseg_version: str | None = None
    source_checkpoint: str | None = None
    source_sha256: str | None = None
    remark: str = ""
    file: str | None = None
    sha256: str | None = None
    file_size: int | None = None
    other: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The JSON form: every field in order; the optional ones only when set."""
        out: dict[str, Any] = {}
        for f in fields(self):
            if f.name == "other":
                continue
            value = getattr(self, f.name)
            if f.name in _OPTIONAL_KEYS and value is None:
                continue
            out[f.name] = asdict(value) if isinstance(value, CardData) else value
        return {**out, **self.other}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ModelCard:
        """Read a card written by any version: missing keys take defaults, unknown ones are kept.

        Raises:
            BratsInputError: ``data`` (or its ``data`` section) is not a mapping.
        """
        if not isinstance(data, Mapping):
            raise BratsInputError(f"a model card must be a JSON object, not {type(data).__name__}")
        known = {f.name for f in fields(cls)} - {"other"}
        values = {k: v for k, v in data.items() if k in known}
        section = values.get("data") or {}
        if not isinstance(section, Mapping):
            raise BratsInputError("the model card's 'data' must be a JSON object")
        data_keys = {f.name for f in fields(CardData)}
        values["data"] = CardData(**{k: v for k, v in section.items() if k in data_keys})
        other = {k: v for k, v in data.items() if k not in known}
        if other:
            logger.debug(
                "model card %s: keys of another version kept as they are: %s",
                data.get("name"),
                sorted(other),
            )
        return cls(**values, other=other)


def embedded_card(meta: Mapping[str, Any]) -> ModelCard | None:
    """The model card stored in a checkpoint's metadata (``meta["provenance"]["card"]``), if any.

    Args:
        meta: Checkpoint metadata, e.g. :func:`bratseg.zoo.read_checkpoint_meta` or
            ``LoadedModel.meta``.
    """
    card = (meta.get("provenance") or {}).get("card")
    return ModelCard.from_dict(card) if isinstance(card, Mapping) and card else None


def markdown_row(card: ModelCard) -> str:
    """One row of the models table in docs/models.md: model | arch | params | Dice WT/TC/ET | HD95 WT/TC/ET | CPU s | training."""
    d, h = card.val_dice, card.val_hd95
    params = card.parameters
    size = f"{params / 1e6:.1f}M" if params >= 1e6 else f"{params / 1e3:.0f}k"
    minutes = (card.training_wall_time_s or 0) / 60
    run_minutes = (card.run.get("wall_time_s") or 0) / 60
    of_run = f" of a {run_minutes:.0f} min run" if run_minutes - minutes > 1 else ""
    return (
        f"| {card.name} | {card.architecture} ({card.preset}) | {size} | "
        f"{d['wt']:.3f} / {d['tc']:.3f} / {d['et']:.3f} | "
        f"{h['wt']:.1f} / {h['tc']:.1f} / {h['et']:.1f} | "
        f"{card.cpu_seconds_per_case or 0:.1f} ({card.cpu_threads} thr) | "
        f"{minutes:.0f} min{of_run}, {card.epochs} ep / {card.steps} steps, "
        f"{card.training_device} |"
    )


def validation_text(card: ModelCard) -> str:
    """What a card's scores were measured on: its held-out cases, or its cross-validation."""
    cv = card.cross_validation
    if cv:
        cases = [row["case"] for row in card.val_per_case]
        return (
            f"cross-validation estimate, {cv['n_folds']} fold model(s) of the same recipe, each of "
            f"{cv['n_cases']} cases predicted by the fold that held it out: {', '.join(cases)}"
        )
    return ", ".join(card.data.val_cases or ["?"])


def _regions(values: dict[str, float] | None, std: dict[str, float] | None, fmt: str) -> str:
    if not values:
        return "?"
    return "  ".join(
        f"{r.upper()} {values[r]:{fmt}}" + (f" ± {std[r]:{fmt}}" if std else "")
        for r in REGIONS
        if r in values
    )


def _or_unknown(value: Any) -> Any:
    return "?" if value is None else value


def format_card(card: ModelCard) -> str:
    """The card as readable text (what ``napari-brats models NAME`` prints).

    Args:
        card: A model card; what it does not say is shown as ``?``.

    Returns:
        Multi-line text: what the model is, what it was trained on and how, how it scored on its
        validation cases (mean ± std and per case) and how fast it is.
    """
    q = _or_unknown
    minutes = float(card.training_wall_time_s or 0) / 60
    run_epochs = card.run.get("epochs")
    lines = [
        f"{card.name}: {card.architecture} ({q(card.preset)} preset), {int(card.parameters or 0):,} parameters",
        f"  paper:       {q(card.paper)}",
        f"  data:        {len(card.data.train_cases)} training / {len(card.data.val_cases)} "
        f"validation cases of {', '.join(card.data.folders or ['?'])}, {q(card.split)}",
        f"  validation:  {validation_text(card)}",
        f"  training:    {q(card.epochs)} epochs / {q(card.steps)} steps of {q(card.patch)} patches, "
        f"{minutes:.0f} min on {q(card.training_device)}"
        + (
            f" ({'last' if card.checkpoint == 'last' else 'best'} epoch of a {run_epochs}-epoch run)"
            if run_epochs
            else ""
        ),
        f"  recipe:      {(card.recipe or {}).get('source', '?')}",
        f"  Dice:        {_regions(card.val_dice, card.val_dice_std, '.3f')}",
        f"  HD95:        {_regions(card.val_hd95, card.val_hd95_std, '.1f')} ({card.hd95_units})",
        f"  speed:       {q(card.cpu_seconds_per_case)} s per case on CPU ({q(card.cpu_threads)} threads)"
        + (
            f", {card.gpu_seconds_per_case} s on {card.gpu or 'GPU'}"
            if card.gpu_seconds_per_case
            else ""
        ),
    ]
    if card.val_per_case:
        lines.append("  per case:    Dice WT/TC/ET, HD95 WT/TC/ET, seconds")
        for row in card.val_per_case:
            dice = "/".join(f"{row['dice'][r]:.3f}" for r in REGIONS)
            hd95 = "/".join(f"{row['hd95'][r]:.1f}" for r in REGIONS)
            lines.append(f"    {row['case']:<24} {dice}  {hd95}  {row.get('seconds', '?')}")
    if card.remark:
        lines.append(f"  remark:      {card.remark}")
    return "\n".join(lines)


__all__ = [
    "HD95_UNITS",
    "CardData",
    "ModelCard",
    "embedded_card",
    "format_card",
    "markdown_row",
    "validation_text",
]
