"""A pickled Lasagne network, described from its own layer graph (read as inert records).

Lasagne has no save format of its own: upstream pickles the output layer object, so the file holds
the whole graph. Each layer keeps its hyperparameters as attributes (Conv2DLayer: num_filters,
filter_size, stride, pad, flip_filters, n, nonlinearity; BatchNormLayer: axes, epsilon, beta, gamma,
mean, inv_std; Pool2DLayer: pool_size, stride, pad, ignore_border, mode; DenseLayer: num_units,
num_leading_axes; DropoutLayer: p) and its `input_layer`; parameters are Theano shared variables
whose value is `container.storage[0]` (a numpy array, or a GPU array already mapped to one by
zoo.safe_pickle). `describe` walks from the output layer to the InputLayer and returns the
steps in forward order, with every shape checked as the data flows; nothing here runs torch.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from zoo.errors import UsageError
from zoo.safe_pickle import Record, pickled_name

#: Lasagne nonlinearities the rebuild knows (module lasagne.nonlinearities); identity pickles as linear
ACTIVATIONS = ("rectify", "linear", "identity", "softmax", "sigmoid", "tanh", "elu", "softplus")
CONV_CLASSES = ("Conv2DLayer", "Conv2DDNNLayer", "Conv2DMMLayer")
POOL_CLASSES = ("MaxPool2DLayer", "Pool2DLayer", "MaxPool2DDNNLayer", "Pool2DDNNLayer")


@dataclass
class Step:
    """One layer of the network in forward order: its kind, hyperparameters and arrays."""

    kind: str  # conv, batchnorm, pool, dense, dropout, activation
    layer: str  # the Lasagne class, e.g. lasagne.layers.conv.Conv2DLayer
    name: str | None
    params: dict[str, Any] = field(default_factory=dict)
    arrays: dict[str, np.ndarray] = field(default_factory=dict)
    in_shape: tuple[int, ...] = ()  # without the batch dimension

    def summary(self) -> str:
        shown = ", ".join(f"{k}={v}" for k, v in self.params.items() if v is not None)
        return f"{self.layer.rsplit('.', 1)[-1]}({shown})"


@dataclass
class Network:
    """The input shape (batch dimension None) and the steps from input to output."""

    input_shape: tuple[int | None, ...]
    steps: list[Step]

    def parameters(self) -> list[tuple[str, tuple[int, ...]]]:
        """(layer.array, shape) in Lasagne's get_all_param_values order."""
        out = []
        for index, step in enumerate(self.steps):
            for key, array in step.arrays.items():
                out.append((f"{index}:{step.kind}.{key}", tuple(array.shape)))
        return out

    @property
    def output_activation(self) -> str | None:
        for step in reversed(self.steps):
            if step.kind in ("conv", "dense", "activation"):
                return str(step.params.get("activation"))
        return None

    def summary(self) -> str:
        return " -> ".join([f"Input{tuple(self.input_shape)}"] + [s.summary() for s in self.steps])


class _Reader:
    def __init__(self, origin: str):
        self.origin = origin

    def fail(self, where: str, message: str) -> UsageError:
        return UsageError(f"{self.origin}: field net, {where}: {message}")

    def attr(self, layer: Record, key: str, where: str, default: Any = ...) -> Any:
        attrs = layer.attrs
        if key in attrs:
            return attrs[key]
        if default is not ...:
            return default
        raise self.fail(
            where, f"the layer has no attribute {key!r} (attributes: {', '.join(sorted(attrs))})."
        )

    def ints(self, value: Any, count: int, where: str, what: str) -> tuple[int, ...]:
        values = tuple(value) if isinstance(value, tuple | list) else (value,) * count
        if len(values) != count or not all(isinstance(v, int) and not isinstance(v, bool) for v in values):
            raise self.fail(where, f"{what} is {value!r}, expected {count} integers.")
        return tuple(int(v) for v in values)

    def array(self, variable: Any, where: str, what: str) -> np.ndarray:
        """The numpy value of a Theano shared variable (container.storage[0])."""
        if isinstance(variable, np.ndarray):
            value = variable
        elif isinstance(variable, Record) and "container" in variable.attrs:
            container = variable.attrs["container"]
            storage = container.attrs.get("storage") if isinstance(container, Record) else None
            if not isinstance(storage, list) or len(storage) != 1:
                raise self.fail(where, f"{what} is a shared variable without a stored value.")
            value = storage[0]
        else:
            kind = pickled_name(variable) or type(variable).__name__
            raise self.fail(where, f"{what} is a {kind}, not a Theano shared variable holding an array.")
        if not isinstance(value, np.ndarray) or value.dtype.kind != "f":
            raise self.fail(where, f"{what} holds {type(value).__name__}, expected a float array.")
        return value

    def activation(self, value: Any, where: str) -> tuple[str, float | None]:
        """A nonlinearity by its pickled name: (name, parameter)."""
        name = pickled_name(value)
        if name is None or not name.startswith("lasagne.nonlinearities."):
            raise self.fail(where, f"nonlinearity {name or type(value).__name__} is not one of Lasagne's.")
        short = name.rsplit(".", 1)[-1]
        if short == "identity":
            short = "linear"
        if short in ACTIVATIONS:
            return short, None
        if short in ("LeakyRectify", "leaky_rectify", "very_leaky_rectify") and isinstance(value, Record):
            leak = value.attrs.get(
                "leakiness", {"leaky_rectify": 0.01, "very_leaky_rectify": 1 / 3}.get(short)
            )
            if isinstance(leak, int | float):
                return "leaky_rectify", float(leak)
        raise self.fail(
            where, f"nonlinearity {name} is not supported by the rebuild ({', '.join(ACTIVATIONS)})."
        )


def _chain(net: Any, reader: _Reader) -> list[Record]:
    """The layers from the input to *net* (the output layer), following input_layer."""
    chain: list[Record] = []
    seen: set[int] = set()
    layer = net
    while True:
        name = pickled_name(layer)
        if not isinstance(layer, Record) or name is None or not name.startswith("lasagne.layers."):
            found = name or type(layer).__name__
            raise reader.fail(
                f"layer {len(chain) + 1} from the output", f"expected a Lasagne layer, found {found}."
            )
        if id(layer) in seen:
            raise reader.fail(name, "the layer graph has a cycle.")
        seen.add(id(layer))
        chain.append(layer)
        if layer.pickled_name == "InputLayer":
            return chain[::-1]
        if "input_layers" in layer.attrs:
            raise reader.fail(name, "a layer with several inputs; only a chain of layers can be rebuilt.")
        layer = reader.attr(layer, "input_layer", name)


def describe(net: Any, origin: str) -> Network:
    """The network of a pickled Lasagne output layer, input first, shapes checked as data flows."""
    reader = _Reader(origin)
    chain = _chain(net, reader)
    first = chain[0]
    shape = tuple(reader.attr(first, "shape", "InputLayer"))
    if not all(d is None or (isinstance(d, int) and d > 0) for d in shape) or any(
        d is None for d in shape[1:]
    ):
        raise reader.fail("InputLayer", f"shape {shape} needs fixed sizes after the batch dimension.")
    steps: list[Step] = []
    current: tuple[int, ...] = tuple(int(d) for d in shape[1:])  # without the batch dimension
    for number, layer in enumerate(chain[1:], start=2):
        where = f"layer {number} ({layer.pickled_name})"
        step, out = _step(reader, layer, where, current)
        step.in_shape = current
        steps.append(step)
        current = out
    return Network(tuple(shape), steps)


def _step(reader: _Reader, layer: Record, where: str, shape: tuple[int, ...]) -> tuple[Step, tuple[int, ...]]:
    kind = layer.pickled_name
    full = f"{layer.pickled_module}.{kind}"
    name = layer.attrs.get("name")
    name = name if isinstance(name, str) else None
    if kind in CONV_CLASSES:
        return _conv(reader, layer, where, shape, Step("conv", full, name))
    if kind in POOL_CLASSES:
        return _pool(reader, layer, where, shape, Step("pool", full, name))
    if kind in ("BatchNormLayer", "BatchNormDNNLayer"):
        return _batchnorm(reader, layer, where, shape, Step("batchnorm", full, name))
    if kind == "DenseLayer":
        return _dense(reader, layer, where, shape, Step("dense", full, name))
    if kind == "DropoutLayer":
        p = reader.attr(layer, "p", where)
        if not isinstance(p, int | float) or not 0 <= p < 1:
            raise reader.fail(where, f"p is {p!r}, expected a probability.")
        return Step("dropout", full, name, {"p": float(p)}), shape
    if kind == "NonlinearityLayer":
        act, arg = reader.activation(reader.attr(layer, "nonlinearity", where), where)
        return Step("activation", full, name, {"activation": act, "activation_arg": arg}), shape
    raise reader.fail(
        where,
        f"{full} is not supported by the rebuild (conv, pool, batch norm, dense, dropout, nonlinearity).",
    )


def _conv(
    reader: _Reader, layer: Record, where: str, shape: tuple[int, ...], step: Step
) -> tuple[Step, tuple[int, ...]]:
    if len(shape) != 3 or reader.attr(layer, "n", where, 2) != 2:
        raise reader.fail(where, f"a 2D convolution needs (channels, height, width) input, got {shape}.")
    kernel = reader.ints(reader.attr(layer, "filter_size", where), 2, where, "filter_size")
    stride = reader.ints(reader.attr(layer, "stride", where), 2, where, "stride")
    dilation = reader.ints(reader.attr(layer, "filter_dilation", where, 1), 2, where, "filter_dilation")
    pad_value = reader.attr(layer, "pad", where)
    if pad_value == "same":
        if any(k % 2 == 0 for k in kernel):
            raise reader.fail(where, f"pad 'same' with an even filter_size {kernel}.")
        pad = tuple(k // 2 for k in kernel)
    elif pad_value == "full":
        pad = tuple(k - 1 for k in kernel)
    elif pad_value == "valid":
        pad = (0, 0)
    else:
        pad = reader.ints(pad_value, 2, where, "pad")
    if reader.attr(layer, "untie_biases", where, False):
        raise reader.fail(where, "untie_biases=True is not supported by the rebuild.")
    flip = reader.attr(layer, "flip_filters", where)
    if not isinstance(flip, bool | int):
        raise reader.fail(where, f"flip_filters is {flip!r}, expected a boolean.")
    weight = reader.array(reader.attr(layer, "W", where), where, "W")
    filters = reader.attr(layer, "num_filters", where)
    if weight.shape != (filters, shape[0], *kernel):
        raise reader.fail(
            where,
            f"W has shape {weight.shape}, expected {(filters, shape[0], *kernel)} (num_filters, input channels, filter_size).",
        )
    step.arrays["W"] = weight
    _bias(reader, layer, where, step, filters)
    act, arg = reader.activation(reader.attr(layer, "nonlinearity", where), where)
    out = [filters]
    for size, k, s, p, d in zip(shape[1:], kernel, stride, pad, dilation, strict=True):
        span = size + 2 * p - d * (k - 1)
        if span < 1:
            raise reader.fail(where, f"the {k}x{k} filter does not fit input {shape}.")
        out.append((span - 1) // s + 1)
    step.params = {
        "in_channels": shape[0], "out_channels": int(filters), "kernel": kernel, "stride": stride,
        "padding": pad, "dilation": dilation, "flip_filters": bool(flip), "activation": act, "activation_arg": arg,
    }  # fmt: skip
    return step, tuple(out)


def _pool(
    reader: _Reader, layer: Record, where: str, shape: tuple[int, ...], step: Step
) -> tuple[Step, tuple[int, ...]]:
    if len(shape) != 3:
        raise reader.fail(where, f"2D pooling needs (channels, height, width) input, got {shape}.")
    size = reader.ints(reader.attr(layer, "pool_size", where), 2, where, "pool_size")
    stride_value = reader.attr(layer, "stride", where, None)
    stride = size if stride_value is None else reader.ints(stride_value, 2, where, "stride")
    pad = reader.ints(reader.attr(layer, "pad", where, (0, 0)), 2, where, "pad")
    mode = reader.attr(layer, "mode", where, "max")
    if mode not in ("max", "average_inc_pad", "average_exc_pad"):
        raise reader.fail(where, f"pooling mode {mode!r} is not supported by the rebuild.")
    if not reader.attr(layer, "ignore_border", where, True):
        raise reader.fail(where, "ignore_border=False is not supported by the rebuild.")
    out = [shape[0]]
    for n, k, s, p in zip(shape[1:], size, stride, pad, strict=True):
        if n + 2 * p < k:
            raise reader.fail(where, f"pool_size {size} does not fit input {shape}.")
        out.append((n + 2 * p - k) // s + 1)
    step.params = {"mode": mode, "size": size, "stride": stride, "padding": pad}
    return step, tuple(out)


def _batchnorm(
    reader: _Reader, layer: Record, where: str, shape: tuple[int, ...], step: Step
) -> tuple[Step, tuple[int, ...]]:
    axes = tuple(reader.attr(layer, "axes", where))
    expected = (0,) + tuple(range(2, len(shape) + 1))
    if axes != expected:
        raise reader.fail(where, f"axes {axes}: the rebuild normalises per channel only (axes {expected}).")
    epsilon = reader.attr(layer, "epsilon", where, 1e-4)
    features = shape[0]
    for key in ("beta", "gamma", "mean", "inv_std"):
        value = reader.attr(layer, key, where, None)
        if value is None and key in ("beta", "gamma"):
            continue  # Lasagne allows beta=None / gamma=None: no shift / no scale
        array = reader.array(value, where, key)
        if array.shape != (features,):
            raise reader.fail(where, f"{key} has shape {array.shape}, expected ({features},).")
        step.arrays[key] = array
    step.params = {"features": features, "epsilon": float(epsilon)}
    return step, shape


def _dense(
    reader: _Reader, layer: Record, where: str, shape: tuple[int, ...], step: Step
) -> tuple[Step, tuple[int, ...]]:
    if reader.attr(layer, "num_leading_axes", where, 1) != 1:
        raise reader.fail(where, "num_leading_axes other than 1 is not supported by the rebuild.")
    inputs = int(np.prod(shape))
    units = reader.attr(layer, "num_units", where)
    weight = reader.array(reader.attr(layer, "W", where), where, "W")
    if weight.shape != (inputs, units):
        raise reader.fail(
            where,
            f"W has shape {weight.shape}, expected {(inputs, units)} (flattened input {shape}, num_units).",
        )
    step.arrays["W"] = weight
    _bias(reader, layer, where, step, units)
    act, arg = reader.activation(reader.attr(layer, "nonlinearity", where), where)
    step.params = {"in_features": inputs, "out_features": int(units), "flatten": len(shape) > 1,
                   "activation": act, "activation_arg": arg}  # fmt: skip
    return step, (int(units),)


def _bias(reader: _Reader, layer: Record, where: str, step: Step, size: int) -> None:
    """The layer's optional bias b: one value per filter or unit."""
    bias = reader.attr(layer, "b", where, None)
    if bias is not None:
        step.arrays["b"] = reader.array(bias, where, "b")
        if step.arrays["b"].shape != (size,):
            raise reader.fail(where, f"b has shape {step.arrays['b'].shape}, expected ({size},).")


def output_shape(step: Step, shape: tuple[int, ...]) -> tuple[int, ...]:
    """What a step makes of an input of *shape* (no batch dimension), by Lasagne's rules."""
    p = step.params
    if step.kind == "conv":
        sizes = zip(shape[1:], p["kernel"], p["stride"], p["padding"], p["dilation"], strict=True)
        return (p["out_channels"], *((n + 2 * pd - d * (k - 1) - 1) // s + 1 for n, k, s, pd, d in sizes))
    if step.kind == "pool":
        windows = zip(shape[1:], p["size"], p["stride"], p["padding"], strict=True)
        return (shape[0], *((n + 2 * pd - k) // s + 1 for n, k, s, pd in windows))
    if step.kind == "dense":
        return (p["out_features"],)
    return shape


def with_shapes(network: Network) -> Network:
    """Fill every step's in_shape from the input shape (for networks described by hand)."""
    shape = tuple(int(d) for d in network.input_shape[1:] if d is not None)
    for step in network.steps:
        step.in_shape = shape
        shape = output_shape(step, shape)
    return network
