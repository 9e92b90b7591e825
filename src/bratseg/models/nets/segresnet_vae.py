"""SegResNet with VAE regularisation (Adeniji & Liu, after Myronenko 2018).

Built on :class:`monai.networks.nets.SegResNetVAE` with the options of Adeniji & Liu as small changes:
squeeze-excitation on every residual block (:class:`SEResBlock`), max-pool downsampling (2x2x2
max-pool + 1x1x1 conv doubling the channels instead of a stride-2 3x3x3 conv), trilinear
upsampling, He-normal init (Glorot for the sigmoid output layer). Output: 3 region logits.

The VAE branch runs only in training and needs the fixed input size ``config.input_image_size``
(its dense layers are sized from it; each size a multiple of ``config.vae_divisor`` = 16).
MONAI's VAE decoder shares the up-sampling blocks of the segmentation decoder.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from monai.networks.blocks.segresnet_block import ResBlock
from monai.networks.nets import SegResNetVAE
from torch import nn

from bratseg.models.blocks.meta import built_for_shapes
from bratseg.models.blocks.squeeze_excitation import SEResBlock
from bratseg.models.config import SegResNetVAEConfig


def _with_se(layer: nn.Sequential, norm: tuple | str, reduction: int) -> nn.Sequential:
    """Replace every MONAI ResBlock in ``layer`` by an :class:`SEResBlock` of the same width."""
    children = [
        SEResBlock(
            3,
            m.conv1.conv.in_channels if hasattr(m.conv1, "conv") else m.conv1.in_channels,
            norm,
            reduction,
        )
        if isinstance(m, ResBlock)
        else m
        for m in layer
    ]
    return nn.Sequential(*children)


class SegResNetVAENet(SegResNetVAE):
    """Adeniji & Liu network.

    Shapes:
        input (B, 4, X, Y, Z), X/Y/Z multiples of ``config.size_divisor`` (8); in training exactly
        ``config.input_image_size``.
        eval: logits (B, 3, X, Y, Z).
        train: {"logits": (B, 3, X, Y, Z), "vae": {"recon": (B, 4, X, Y, Z), "mu": (B, nz/2),
        "logvar": (B, nz/2), "target": the input (B, 4, X, Y, Z)}}.
    """

    def __init__(self, config: SegResNetVAEConfig) -> None:
        size = tuple(int(s) for s in config.input_image_size)
        if len(size) != 3 or any(s % config.vae_divisor for s in size):
            raise ValueError(
                f"segresnet-vae: input_image_size {size} must be 3 multiples of "
                f"{config.vae_divisor}"
            )
        super().__init__(
            input_image_size=size,
            vae_estimate_std=True,
            vae_nz=config.vae_nz // 2,  # MONAI's vae_nz is the size of the mean vector
            spatial_dims=3,
            init_filters=config.init_filters,
            in_channels=config.in_channels,
            out_channels=config.out_channels,
            dropout_prob=config.dropout,
            blocks_down=tuple(config.blocks_down),
            blocks_up=tuple(config.blocks_up),
            upsample_mode="nontrainable",  # Adeniji & Liu: linear upsampling
            norm=("GROUP", {"num_groups": config.groups}),
        )
        self.config = config
        if config.maxpool_downsample:  # Adeniji & Liu
            for i, layer in enumerate(self.down_layers):
                if i > 0:
                    width = config.init_filters * 2**i
                    widen = nn.Conv3d(width // 2, width, 1, bias=False)
                    layer[0] = nn.Sequential(nn.MaxPool3d(2), widen)
        if config.squeeze_excitation:  # Adeniji & Liu
            self.down_layers = nn.ModuleList(
                _with_se(layer, self.norm, config.se_reduction) for layer in self.down_layers
            )
            self.up_layers = nn.ModuleList(
                _with_se(layer, self.norm, config.se_reduction) for layer in self.up_layers
            )
        if config.he_init and not built_for_shapes(self):
            self._he_init()

    def _he_init(self) -> None:
        """He-normal for conv/linear layers, Glorot-normal for the sigmoid output (Adeniji & Liu)."""
        for module in self.modules():
            if isinstance(module, (nn.Conv3d, nn.Linear)):
                nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
        final = [m for m in self.conv_final.modules() if isinstance(m, nn.Conv3d)][-1]
        nn.init.xavier_normal_(final.weight)

    def _vae_branch(
        self, net_input: torch.Tensor, encoded: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        """VAE on the encoder output (B, 8F, X/8, Y/8, Z/8) -> recon, mu, logvar, target."""
        h = self.vae_down(encoded).flatten(1)
        mu = self.vae_fc1(h)
        sigma = F.softplus(self.vae_fc2(h))
        z = mu + sigma * torch.randn_like(mu)
        h = self.act_mod(self.vae_fc3(z)).view([-1, self.smallest_filters] + list(self.fc_insize))
        h = self.vae_fc_up_sample(h)
        for up, upl in zip(self.up_samples, self.up_layers):
            h = upl(up(h))
        recon = self.vae_conv_final(h)
        logvar = torch.log(sigma.pow(2) + 1e-8)
        return {"recon": recon, "mu": mu, "logvar": logvar, "target": net_input}

    def forward(  # type: ignore[override]
        self, x: torch.Tensor
    ) -> torch.Tensor | dict[str, object]:
        """(B, 4, X, Y, Z) -> logits (B, 3, X, Y, Z) (eval) or the train dict."""
        net_input = x
        encoded, down_x = self.encode(x)
        down_x.reverse()
        logits = self.decode(encoded, down_x)
        if not self.training:
            return logits
        if tuple(x.shape[2:]) != tuple(self.input_image_size):
            want = tuple(self.input_image_size)
            raise ValueError(
                f"segresnet-vae trains on inputs of exactly {want} "
                f"(config.input_image_size), got {tuple(x.shape[2:])}"
            )
        return {"logits": logits, "vae": self._vae_branch(net_input, encoded)}
