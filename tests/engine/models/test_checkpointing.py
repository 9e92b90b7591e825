"""Activation checkpointing: same loss and gradients, fewer activations kept, same state_dict."""

from __future__ import annotations

import pytest
import torch

from bratseg.models import build_model, get_architecture, list_architectures
from bratseg.models.checkpointing import enable_activation_checkpointing
from bratseg.training.losses import loss_for
from bratseg.training.recipes import DEFAULT_RECIPES
from bratseg.training.setup import enable_gradient_checkpointing

ARCHS = [spec.name for spec in list_architectures()]


def _step(model: torch.nn.Module, arch: str, x: torch.Tensor, target: torch.Tensor):
    """One training forward/backward; returns loss, gradients and bytes of saved activations."""
    saved = [0]

    def pack(t: torch.Tensor) -> torch.Tensor:
        saved[0] += t.numel() * t.element_size()
        return t

    criterion = loss_for(get_architecture(arch), DEFAULT_RECIPES[arch])
    model.zero_grad()
    torch.manual_seed(1)  # the VAE branch samples
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        loss, _ = criterion(model(x), target)
    loss.backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    return float(loss.detach()), grads, saved[0]


@pytest.mark.parametrize("arch", ARCHS)
def test_checkpointing_keeps_the_training_step_and_saves_memory(arch):
    torch.manual_seed(0)
    model = build_model(arch, preset="tiny")
    size = 16
    x = torch.randn(1, model.config.in_channels, size, size, size)
    target = torch.randint(0, 4, (1, 1, size, size, size))
    keys = list(model.state_dict())

    loss_plain, grads_plain, saved_plain = _step(model, arch, x, target)
    assert enable_activation_checkpointing(model) > 0
    assert enable_activation_checkpointing(model) == 0  # idempotent
    loss_ckpt, grads_ckpt, saved_ckpt = _step(model, arch, x, target)

    assert loss_ckpt == pytest.approx(loss_plain, rel=1e-5)
    assert grads_ckpt.keys() == grads_plain.keys()
    for name, grad in grads_plain.items():
        torch.testing.assert_close(grads_ckpt[name], grad, rtol=1e-4, atol=1e-6, msg=name)
    assert saved_ckpt < 0.8 * saved_plain, (saved_ckpt, saved_plain)
    assert list(model.state_dict()) == keys  # checkpoints stay interchangeable

    model.eval()
    with torch.no_grad():
        assert model(x).shape[1] == get_architecture(arch).out_channels


def test_trainer_switch_reports_whether_it_applied():
    assert enable_gradient_checkpointing(build_model("ds-unet", preset="tiny"))
    assert not enable_gradient_checkpointing(torch.nn.Conv3d(4, 3, 1))
