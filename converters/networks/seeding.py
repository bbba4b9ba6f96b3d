"""Seeded, realistic weights for rebuilt networks (reference weights when upstream publishes none).

Plain random weights make deep networks saturate: outputs collapse to one class and parity checks
become meaningless. So weights get a He-uniform draw (as the upstream training code initialises
them), then every batch-norm layer takes its statistics from seeded calibration inputs, one layer
after the other, as a trained network's running statistics would be.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import torch
    from torch import nn


def _batch_norms(module: nn.Module) -> list[nn.Module]:
    """Batch-norm layers: torch's, and any layer with set_statistics/affine_parameters (Lasagne style)."""
    from torch import nn

    return [
        m
        for m in module.modules()
        if isinstance(m, nn.modules.batchnorm._BatchNorm) or hasattr(m, "set_statistics")
    ]


def _set_statistics(layer: Any, mean: torch.Tensor, var: torch.Tensor) -> None:
    if hasattr(layer, "set_statistics"):
        layer.set_statistics(mean, var)
    else:
        layer.running_mean.copy_(mean.to(layer.running_mean.dtype))
        layer.running_var.copy_(var.to(layer.running_var.dtype))


def _affine(layer: Any) -> tuple[torch.Tensor, torch.Tensor]:
    if hasattr(layer, "affine_parameters"):
        gamma, beta = layer.affine_parameters()
        return gamma, beta
    return layer.weight, layer.bias


def seeded_init(module: nn.Module, seed: int) -> None:
    """He-uniform conv/linear weights, small biases, batch-norm affine near identity; all from *seed*."""
    import torch
    from torch import nn

    generator = torch.Generator().manual_seed(int(seed))
    with torch.no_grad():
        for layer in module.modules():
            if isinstance(layer, nn.Conv1d | nn.Conv2d | nn.Linear):
                fan_in = layer.weight[0].numel()
                bound = math.sqrt(2.0 / fan_in) * math.sqrt(3.0)
                layer.weight.copy_(
                    torch.empty_like(layer.weight).uniform_(-bound, bound, generator=generator)
                )
                if layer.bias is not None:
                    layer.bias.copy_(torch.randn(layer.bias.shape, generator=generator) * 0.05)
        for layer in _batch_norms(module):
            gamma, beta = _affine(layer)
            gamma.copy_(torch.empty_like(gamma).uniform_(0.8, 1.2, generator=generator))
            beta.copy_(torch.randn(beta.shape, generator=generator) * 0.1)


def calibrate_batchnorm(module: nn.Module, inputs: tuple[torch.Tensor, ...]) -> None:
    """Set every batch norm's statistics from what reaches it when *inputs* run through *module*.

    A pre-hook measures the per-channel mean and variance of the layer's input and stores them
    before the layer runs in eval mode, so later layers already see normalised activations.
    """
    import torch

    def measure(layer: nn.Module, args: tuple[torch.Tensor, ...]) -> None:
        x = args[0].detach().double()
        dims = [d for d in range(x.dim()) if d != 1]
        _set_statistics(layer, x.mean(dim=dims), x.var(dim=dims, unbiased=False))

    handles = [m.register_forward_pre_hook(measure) for m in _batch_norms(module)]
    try:
        module.eval()
        with torch.no_grad():
            module(*inputs)
    finally:
        for handle in handles:
            handle.remove()


def calibration_audio(sample_rate: int, seconds: float, count: int, seed: int) -> list[np.ndarray]:
    """Seeded varied audio: noise at several levels, tones, sweeps, bursts; float32 in [-1, 1]."""
    rng = np.random.RandomState(seed)
    n = int(round(sample_rate * seconds))
    t = np.arange(n) / sample_rate
    makers: list[Callable[[], np.ndarray]] = [
        lambda: rng.standard_normal(n) * 10 ** rng.uniform(-2.5, -0.5),
        lambda: np.sin(2 * np.pi * rng.uniform(80, sample_rate / 4) * t) * rng.uniform(0.05, 0.9),
        lambda: (
            np.sin(
                2 * np.pi * (rng.uniform(50, 500) + rng.uniform(500, sample_rate / 4) * t / seconds / 2) * t
            )
            * 0.5
        ),
        lambda: (rng.standard_normal(n) * (rng.uniform(size=n // 400 + 1) > 0.7).repeat(400)[:n]) * 0.3,
        lambda: np.cumsum(rng.standard_normal(n)) / np.sqrt(n) * 0.2,
    ]
    clips = []
    for i in range(count):
        clip = makers[i % len(makers)]()
        clips.append(np.clip(clip, -1.0, 1.0).astype(np.float32))
    return clips


def scale_final_layer(
    module: nn.Module,
    final_layer: Any,
    inputs: tuple[torch.Tensor, ...],
    target_std: float = 3.0,
    target_mean: float | None = None,
) -> None:
    """Scale the last linear/conv layer so its outputs spread like a trained classifier's logits.

    Calibrated random networks give nearly flat class scores, where any rounding flips the top
    class; a trained network is far more decisive. The spread is measured on *inputs*. A multi-label
    (sigmoid) head also gets *target_mean*: most classes absent, as in a trained tagger, instead of
    half of them saturated at 1.
    """
    import torch

    seen: list[torch.Tensor] = []
    handle = final_layer.register_forward_hook(lambda _m, _a, out: seen.append(out.detach()))
    try:
        module.eval()
        with torch.no_grad():
            module(*inputs)
    finally:
        handle.remove()
    out = torch.cat([s.reshape(s.shape[0], -1) for s in seen])
    spread = float(out.std(dim=1).mean())
    if spread > 0:
        with torch.no_grad():
            factor = target_std / spread
            final_layer.weight.mul_(factor)
            if final_layer.bias is not None:
                final_layer.bias.mul_(factor)
                if target_mean is not None:
                    final_layer.bias.add_(target_mean - float(out.mean()) * factor)
