"""Training losses for every seed network, driven by the model's train-mode output dict.

Targets travel through the data pipeline as a class-index map ``(B, 1, X, Y, Z)`` with values
indexing :data:`bratseg.labels.CLASSES` (0 background, 1 NCR, 2 ED, 3 ET). The loss turns it into
what each output kind needs: three nested region masks (WT, TC, ET) for ``"regions"`` models, a
one-hot class volume for ``"classes"`` models.

Loss kinds (``Recipe.loss``):

* ``"dice"``: soft Dice per region with squared denominator and smoothing 1, summed over regions
  (Jiang et al. 2020, Henry et al. 2021, Adeniji & Liu).
* ``"dice_bce"`` / ``"dice_focal"``: batched Dice + binary cross-entropy (or Focal, gamma 2) per
  region (Futrega et al. 2021).
* ``"softmax_dice"``: soft Dice on the softmax over the four classes (Ashtari et al. 2021).

On top: deep-supervision heads weighted 1/2, 1/4, ... (Futrega et al. 2021) or equally (Henry et al. 2021); cascade
stages and decoders summed (Jiang et al. 2020); VAE regularisation Dice + 0.1 L2 + 0.1 KL (Adeniji & Liu).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any, cast

import torch
import torch.nn.functional as F
from monai.losses import DiceFocalLoss, DiceLoss

from bratseg.labels import CLASSES, REGION_TISSUES, REGIONS

logger = logging.getLogger(__name__)

LOSS_KINDS = ("dice", "dice_bce", "dice_focal", "softmax_dice")

#: Class indices (in CLASSES order) making up each region, in REGIONS order.
_REGION_CLASS_INDICES: tuple[tuple[int, ...], ...] = tuple(
    tuple(CLASSES.index(t) for t in REGION_TISSUES[r]) for r in REGIONS
)


def regions_from_index(index: torch.Tensor) -> torch.Tensor:
    """Nested region masks from a class-index map.

    Args:
        index: Class indices, shape (B, 1, X, Y, Z) (any numeric dtype).

    Returns:
        Float tensor (B, 3, X, Y, Z): WT, TC, ET masks in :data:`REGIONS` order.
    """
    idx = index.long()
    masks = []
    for classes in _REGION_CLASS_INDICES:
        m = torch.zeros_like(idx, dtype=torch.bool)
        for c in classes:
            m |= idx == c
        masks.append(m)
    return torch.cat(masks, dim=1).float()


def onehot_from_index(index: torch.Tensor) -> torch.Tensor:
    """One-hot class volume (B, 4, X, Y, Z) from a class-index map (B, 1, X, Y, Z)."""
    idx = index.long().squeeze(1)
    return F.one_hot(idx, num_classes=len(CLASSES)).permute(0, 4, 1, 2, 3).float()


def resize_index(index: torch.Tensor, shape: Sequence[int]) -> torch.Tensor:
    """Nearest-neighbour resize of a class-index map (B, 1, X, Y, Z) to spatial ``shape``."""
    if tuple(index.shape[2:]) == tuple(shape):
        return index
    return F.interpolate(index.float(), size=tuple(shape), mode="nearest")


def _base_loss(
    kind: str, output_kind: str, region_weights: Sequence[float] = (1.0, 1.0, 1.0)
) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """The per-output criterion ``(logits (B,K,...), index (B,1,...)) -> scalar``.

    ``region_weights`` (WT, TC, ET) multiply each region's term of a region loss; (1, 1, 1)
    leaves the loss exactly as the papers define it.
    """
    if kind not in LOSS_KINDS:
        raise ValueError(f"unknown loss {kind!r}; use one of {', '.join(LOSS_KINDS)}")
    if output_kind == "classes":
        # Ashtari et al. 2021: soft Dice on the softmax, squared norms, +1 smoothing.
        # Computed per class and averaged (a single Dice over all four channels would be
        # dominated by the background).
        soft_dice = DiceLoss(
            softmax=True, squared_pred=True, smooth_nr=1.0, smooth_dr=1.0, batch=True
        )
        if kind != "softmax_dice":
            logger.info(
                "loss %r is for region outputs; a class-output model uses softmax Dice", kind
            )
        if [float(w) for w in region_weights] != [1.0, 1.0, 1.0]:
            logger.warning("region_weights apply to region outputs; ignored for a class output")
        return lambda logits, index: soft_dice(logits, onehot_from_index(index))
    crit: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    if kind == "dice_bce":
        # Futrega et al. 2021: batched Dice + binary cross-entropy per region. (MONAI's
        # DiceCELoss applies a softmax cross-entropy to multi-channel input, wrong for the
        # overlapping regions, hence Dice + BCEWithLogits.)
        dice = DiceLoss(sigmoid=True, batch=True, smooth_nr=1e-5, smooth_dr=1e-5)
        bce = torch.nn.BCEWithLogitsLoss()

        def dice_bce(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
            return dice(logits, target) + bce(logits, target)

        crit = dice_bce
    elif kind == "dice_focal":
        # Futrega et al. 2021: Focal (gamma 2) instead of cross-entropy.
        crit = DiceFocalLoss(sigmoid=True, batch=True, gamma=2.0, smooth_nr=1e-5, smooth_dr=1e-5)
    else:
        # Jiang et al. 2020; Henry et al. 2021; Adeniji & Liu: soft Dice per region, squared denominator, epsilon 1, summed over
        # the three regions.
        crit = DiceLoss(
            sigmoid=True,
            squared_pred=True,
            smooth_nr=1.0,
            smooth_dr=1.0,
            batch=True,
            reduction="sum",
        )
    weights = [float(w) for w in region_weights]
    if weights == [1.0, 1.0, 1.0]:
        return lambda logits, index: crit(logits, regions_from_index(index))
    if kind not in ("dice", "dice_bce"):
        raise ValueError(f"region_weights apply to the 'dice' and 'dice_bce' losses, not {kind!r}")
    # "dice" sums its regions, "dice_bce" averages them: keep that, weight each region's term.
    scale = 1.0 if kind == "dice" else 1.0 / len(REGIONS)

    def weighted(logits: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        target = regions_from_index(index)
        terms = [
            w * crit(logits[:, c : c + 1], target[:, c : c + 1]) for c, w in enumerate(weights) if w
        ]
        return scale * cast(torch.Tensor, sum(terms))

    return weighted


def _weight_key(weights: Sequence[float]) -> tuple[float, ...]:
    """Region weights as a dict key: the same for a recipe's float64 and a batch's float32."""
    return tuple(round(float(w), 6) for w in weights)


def deep_supervision_weights(n_heads: int, scheme: str = "halving") -> list[float]:
    """Weights of the deep-supervision heads (the main output has weight 1).

    Args:
        n_heads: Number of auxiliary heads, ordered from the finest to the coarsest.
        scheme: ``"halving"`` (1/2, 1/4, ...; Futrega et al. 2021) or ``"equal"``
            (unweighted sum; Henry et al. 2021).
    """
    if scheme == "equal":
        return [1.0] * n_heads
    return [0.5 ** (i + 1) for i in range(n_heads)]


def vae_regularisation(vae: Mapping[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """L2 reconstruction and KL terms of the VAE branch (Adeniji & Liu, after Myronenko).

    Args:
        vae: ``{"recon": (B,C,X,Y,Z), "target": (B,C,X,Y,Z), "mu": (B,L...), "logvar": (B,L...)}``.

    Returns:
        ``(l2, kl)``: mean squared reconstruction error and
        ``mean(mu^2 + sigma^2 - log sigma^2 - 1)``.
    """
    recon, target = vae["recon"], vae["target"]
    if recon.shape != target.shape:
        target = F.interpolate(target.float(), size=recon.shape[2:], mode="trilinear")
    l2 = F.mse_loss(recon.float(), target.float())
    mu, logvar = vae["mu"].float(), vae["logvar"].float()
    kl = torch.mean(mu.pow(2) + logvar.exp() - logvar - 1.0)
    return l2, kl


class SegmentationLoss(torch.nn.Module):
    """Total training loss for one architecture and recipe.

    Call with the model's train-mode output (dict or bare logits tensor) and the class-index
    target (B, 1, X, Y, Z). Returns ``(total, parts)`` where ``parts`` maps term names to floats.

    Args:
        output_kind: ``"regions"`` or ``"classes"`` (from the ArchitectureSpec).
        kind: One of :data:`LOSS_KINDS`.
        deep_supervision: ``"halving"`` or ``"equal"`` weighting of ``out["deep"]``.
        vae_weight_l2: Weight of the VAE L2 term (Adeniji & Liu: 0.1).
        vae_weight_kl: Weight of the VAE KL term (Adeniji & Liu: 0.1).
        region_weights: WT, TC, ET weights of a region loss (1, 1, 1: the papers' loss).
    """

    def __init__(
        self,
        output_kind: str,
        kind: str = "dice",
        deep_supervision: str = "halving",
        vae_weight_l2: float = 0.1,
        vae_weight_kl: float = 0.1,
        region_weights: Sequence[float] = (1.0, 1.0, 1.0),
    ) -> None:
        super().__init__()
        self.output_kind = output_kind
        self.kind = kind
        self.deep_supervision = deep_supervision
        self.vae_weight_l2 = vae_weight_l2
        self.vae_weight_kl = vae_weight_kl
        self.region_weights = _weight_key(region_weights)
        self._criteria = {self.region_weights: _base_loss(kind, output_kind, region_weights)}

    def _criterion_for(
        self, weights: Sequence[float]
    ) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
        key = _weight_key(weights)
        if key not in self._criteria:
            self._criteria[key] = _base_loss(self.kind, self.output_kind, key)
        return self._criteria[key]

    def _term(
        self, logits: torch.Tensor, index: torch.Tensor, groups: list[tuple[Any, Any]]
    ) -> torch.Tensor:
        index = resize_index(index, logits.shape[2:])
        if len(groups) == 1 and groups[0][1] is None:
            return self._criterion_for(groups[0][0])(logits.float(), index)
        n = logits.shape[0]
        terms = [
            (len(rows) / n) * self._criterion_for(w)(logits[rows].float(), index[rows])
            for w, rows in groups
        ]
        return cast(torch.Tensor, sum(terms))

    def _groups(self, sample_weights: torch.Tensor | None) -> list[tuple[Any, Any]]:
        """Samples that share region weights: ``[(weights, row indices or None for all)]``."""
        if sample_weights is None or self.output_kind == "classes":  # classes: weights unused
            return [(self.region_weights, None)]
        rows = [_weight_key(r) for r in sample_weights.detach().cpu().tolist()]
        if len(set(rows)) == 1:
            return [(rows[0], None)]
        return [(w, [i for i, r in enumerate(rows) if r == w]) for w in dict.fromkeys(rows)]

    def forward(
        self,
        output: Mapping[str, Any] | torch.Tensor,
        index: torch.Tensor,
        sample_weights: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """Total loss and its parts.

        Args:
            output: The model's train-mode output (dict, or the logits (B, K, X, Y, Z)).
            index: Class-index target (B, 1, X, Y, Z).
            sample_weights: Optional (B, 3) WT, TC, ET weights per sample, in place of the
                loss's ``region_weights`` (a recipe's ``source_region_weights``). Samples with
                the same weights share one batched criterion, weighted by their share of the
                batch.
        """
        if isinstance(output, torch.Tensor):
            output = {"logits": output}
        logits = output["logits"]
        groups = self._groups(sample_weights)
        parts: dict[str, float] = {}
        main = self._term(logits, index, groups)
        total = main
        parts["seg"] = float(main.detach())
        # Jiang et al. 2020: losses of every stage and decoder are added together.
        stages = [s for s in (output.get("stages") or []) if s is not logits]
        if stages:
            stage_loss = cast(torch.Tensor, sum(self._term(s, index, groups) for s in stages))
            total = total + stage_loss
            parts["stages"] = float(stage_loss.detach())
        deep = list(output.get("deep") or [])
        if deep:
            weights = deep_supervision_weights(len(deep), self.deep_supervision)
            ds = cast(
                torch.Tensor,
                sum(w * self._term(d, index, groups) for w, d in zip(weights, deep)),
            )
            total = total + ds
            parts["deep"] = float(ds.detach())
        vae = output.get("vae")
        if vae:
            l2, kl = vae_regularisation(vae)
            # Adeniji & Liu: L = L_dice + 0.1 L2 + 0.1 KL.
            total = total + self.vae_weight_l2 * l2 + self.vae_weight_kl * kl
            parts["l2"] = float(l2.detach())
            parts["kl"] = float(kl.detach())
        return total, parts


def loss_for(spec: Any, recipe: Any) -> SegmentationLoss:
    """The training loss for an architecture and recipe.

    Args:
        spec: :class:`bratseg.models.ArchitectureSpec` (uses ``output_kind``).
        recipe: :class:`bratseg.training.recipes.Recipe` (uses ``loss``, ``deep_supervision``,
            ``vae_weight_l2``, ``vae_weight_kl``).

    Returns:
        A :class:`SegmentationLoss` consuming the model's train-mode output dict.
    """
    loss = SegmentationLoss(
        output_kind=spec.output_kind,
        kind=recipe.loss,
        deep_supervision=recipe.deep_supervision,
        vae_weight_l2=recipe.vae_weight_l2,
        vae_weight_kl=recipe.vae_weight_kl,
        region_weights=recipe.region_weights,
    )
    for weights in (recipe.source_region_weights or {}).values():
        loss._criterion_for(weights)  # refuse a bad loss now, not mid-run
    return loss
