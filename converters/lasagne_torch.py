"""A Lasagne network description (converters/lasagne_graph.py) as a PyTorch module, and back.

Mapping of each step (Theano cannot run here, so this module is the reference verify compares to):
- Conv2DLayer: torch correlates; Lasagne convolves when flip_filters is true, so W is flipped in both
  spatial axes then (and kept as is when false); pad 'same' is filter_size // 2 on each side;
- DenseLayer: W (inputs, units) is the transpose of torch's Linear weight; a 4D input is flattened
  in C order, as Lasagne's num_leading_axes=1 flattens;
- BatchNormLayer: (x - mean) * (gamma * inv_std) + beta from the four stored arrays (LasagneBatchNorm);
- Pool2DLayer with ignore_border: torch's pooling without ceil mode; average_inc_pad counts the padding;
- DropoutLayer: identity at inference (`deterministic=True`, as upstream's test script asks).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from converters.lasagne_graph import Network, Step
from converters.networks.kahl_aed import LasagneBatchNorm


class Activation(nn.Module):
    """A Lasagne nonlinearity by name (softmax over axis 1, as Lasagne's row-wise softmax)."""

    def __init__(self, name: str, arg: float | None = None):
        super().__init__()
        self.name = name
        self.arg = arg

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.name == "rectify":
            return F.relu(x)
        if self.name == "softmax":
            return F.softmax(x, dim=1)
        if self.name == "sigmoid":
            return torch.sigmoid(x)
        if self.name == "tanh":
            return torch.tanh(x)
        if self.name == "elu":
            return F.elu(x)
        if self.name == "softplus":
            return F.softplus(x)
        if self.name == "leaky_rectify":
            return F.leaky_relu(x, float(self.arg or 0.0))
        return x  # linear


class Flatten(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.flatten(x, 1)


def _module(step: Step) -> nn.Module:
    p = step.params
    if step.kind == "conv":
        conv = nn.Conv2d(
            p["in_channels"], p["out_channels"], p["kernel"], stride=p["stride"], padding=p["padding"],
            dilation=p["dilation"], bias="b" in step.arrays,
        )  # fmt: skip
        return nn.Sequential(conv, Activation(p["activation"], p["activation_arg"]))
    if step.kind == "dense":
        linear = nn.Linear(p["in_features"], p["out_features"], bias="b" in step.arrays)
        parts = [Flatten()] if p["flatten"] else []
        return nn.Sequential(*parts, linear, Activation(p["activation"], p["activation_arg"]))
    if step.kind == "batchnorm":
        return LasagneBatchNorm(p["features"], eps=p["epsilon"])
    if step.kind == "pool":
        if p["mode"] == "max":
            return nn.MaxPool2d(p["size"], p["stride"], p["padding"])
        return nn.AvgPool2d(
            p["size"], p["stride"], p["padding"], count_include_pad=p["mode"] == "average_inc_pad"
        )
    if step.kind == "dropout":
        return nn.Dropout(p["p"])
    return Activation(p["activation"], p["activation_arg"])


class LasagneNet(nn.Module):
    """The steps of a pickled Lasagne network, in order; `final_layer` and `multi_label` for seeding."""

    def __init__(self, network: Network):
        super().__init__()
        self.input_shape = network.input_shape
        self.kinds = [s.kind for s in network.steps]
        self.layers = nn.ModuleList(_module(s) for s in network.steps)
        self.multi_label = network.output_activation == "sigmoid"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = layer(x)
        return x

    @property
    def final_layer(self) -> nn.Module:
        return [m for m in self.modules() if isinstance(m, nn.Linear | nn.Conv2d)][-1]


def _core(module: nn.Module) -> nn.Module:
    """The conv/linear inside a step's Sequential, or the step's module itself."""
    if isinstance(module, nn.Sequential):
        return next(m for m in module if isinstance(m, nn.Conv2d | nn.Linear))
    return module


def load_arrays(net: LasagneNet, network: Network) -> None:
    """Copy the pickle's arrays into the module (flip, transpose as Lasagne's semantics require)."""
    with torch.no_grad():
        for step, layer in zip(network.steps, net.layers, strict=True):
            core = _core(layer)
            for key, array in step.arrays.items():
                value = np.asarray(array, dtype=np.float32)
                if step.kind == "conv" and key == "W" and step.params["flip_filters"]:
                    value = value[:, :, ::-1, ::-1]
                elif step.kind == "dense" and key == "W":
                    value = value.T
                target = {"W": "weight", "b": "bias"}.get(key, key)
                getattr(core, target).copy_(torch.from_numpy(np.ascontiguousarray(value)))
            if step.kind == "batchnorm":  # Lasagne's beta=None / gamma=None: no shift / no scale
                for key, neutral in (("beta", 0.0), ("gamma", 1.0)):
                    if key not in step.arrays:
                        getattr(core, key).fill_(neutral)


def store_arrays(net: LasagneNet, network: Network) -> None:
    """The module's weights back into the description's arrays, as Lasagne stores them (float32)."""
    for step, layer in zip(network.steps, net.layers, strict=True):
        core = _core(layer)
        for key in list(step.arrays):
            target = {"W": "weight", "b": "bias"}.get(key, key)
            value = getattr(core, target).detach().numpy().astype(np.float32)
            if step.kind == "conv" and key == "W" and step.params["flip_filters"]:
                value = value[:, :, ::-1, ::-1]
            elif step.kind == "dense" and key == "W":
                value = value.T
            step.arrays[key] = np.ascontiguousarray(value)


def build(network: Network) -> Any:
    """An eval-mode module with the pickle's weights."""
    net = LasagneNet(network)
    load_arrays(net, network)
    return net.eval()
