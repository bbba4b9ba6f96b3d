"""Whole-array MaxPool and AveragePool for onnx.reference, the engine of the float64 yardsticks.

onnx.reference computes a pool one output element at a time in Python. For BirdNET, whose two
stem pools read a 96 x 511 map per channel, that loop took about 80 % of `zoo verify`. These
kernels take every window at once from a strided view of the padded input and reduce it with
numpy, for the attribute sets they cover: explicit or VALID padding, floor rounding, any kernel,
strides and dilations, one output. Anything else (SAME padding, ceil rounding, MaxPool's indices
output, integer inputs) goes to onnx's own implementation. The windows are the same; a mean may
round differently from onnx's in the last float64 bit (another summation order), which is 2^-29
of a float32 unit and no yardstick can see.
"""

from __future__ import annotations

from functools import cache
from typing import Any

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view


def pool_windows(
    x: np.ndarray,
    kernel: list[int],
    strides: list[int],
    dilations: list[int],
    pads: list[int],
    fill: float,
) -> np.ndarray:
    """A strided view [N, C, *outputs, *kernel] of every pooling window of *x* [N, C, *spatial].

    *pads* lists the leading pads of each spatial axis, then the trailing ones (ONNX's order); the
    padded cells hold *fill*. Output lengths round down, as ONNX's ``ceil_mode=0``.
    """
    spatial = x.ndim - 2
    widths = [(0, 0), (0, 0)] + [(pads[i], pads[i + spatial]) for i in range(spatial)]
    padded = np.pad(x, widths, constant_values=fill)
    spans = [(k - 1) * d + 1 for k, d in zip(kernel, dilations, strict=True)]
    view = sliding_window_view(padded, spans, axis=tuple(range(2, x.ndim)))
    step = tuple(slice(None, None, s) for s in strides) + tuple(slice(None, None, d) for d in dilations)
    return view[(slice(None), slice(None), *step)]


def max_pool(
    x: np.ndarray, kernel: list[int], strides: list[int], dilations: list[int], pads: list[int]
) -> np.ndarray:
    """ONNX MaxPool (floor rounding): padded cells never win."""
    windows = pool_windows(x, kernel, strides, dilations, pads, -np.inf)
    return np.asarray(windows.max(axis=tuple(range(x.ndim, windows.ndim))), dtype=x.dtype)


def average_pool(
    x: np.ndarray,
    kernel: list[int],
    strides: list[int],
    dilations: list[int],
    pads: list[int],
    count_include_pad: bool,
) -> np.ndarray:
    """ONNX AveragePool (floor rounding): each window's sum over its cell count, padded cells
    counted only with *count_include_pad*."""
    axes = tuple(range(x.ndim, 2 * x.ndim - 2))
    sums = pool_windows(x, kernel, strides, dilations, pads, 0.0).sum(axis=axes)
    if count_include_pad:
        return np.asarray(sums / float(np.prod(kernel)), dtype=x.dtype)
    ones = np.ones((1, 1, *x.shape[2:]), dtype=x.dtype)
    counts = pool_windows(ones, kernel, strides, dilations, pads, 0.0).sum(axis=axes)
    return np.asarray(sums / counts, dtype=x.dtype)


#: the attributes of MaxPool and AveragePool up to opset 22 (storage_order orders only the indices)
_KNOWN = {
    "auto_pad",
    "ceil_mode",
    "count_include_pad",
    "dilations",
    "kernel_shape",
    "pads",
    "storage_order",
    "strides",
}


#: (kernel, strides, dilations, pads) of a pooling window, each per spatial axis (pads: leading, then trailing)
Window = tuple[list[int], list[int], list[int], list[int]]


def _covered(x: np.ndarray, attributes: dict[str, Any]) -> Window | None:
    """(kernel, strides, dilations, pads) when these kernels compute a pool of *x* with these ONNX
    attributes, else None."""
    auto_pad, kernel_shape = attributes.get("auto_pad"), attributes.get("kernel_shape")
    strides, dilations, pads = (attributes.get(k) for k in ("strides", "dilations", "pads"))
    if {k for k, v in attributes.items() if v is not None} - _KNOWN:
        return None  # an attribute of a newer schema: its meaning is onnx's to apply
    mode = auto_pad.decode() if isinstance(auto_pad, bytes) else (auto_pad or "NOTSET")
    if mode not in ("NOTSET", "VALID") or attributes.get("ceil_mode") or not kernel_shape or x.ndim < 3:
        return None
    if not np.issubdtype(x.dtype, np.floating):
        return None
    spatial = x.ndim - 2
    kernel = [int(k) for k in kernel_shape]
    stride = [int(s) for s in strides] if strides else [1] * spatial
    dilation = [int(d) for d in dilations] if dilations else [1] * spatial
    pad = [int(p) for p in pads] if pads and mode == "NOTSET" else [0] * (2 * spatial)
    if (
        len(kernel) != spatial
        or len(stride) != spatial
        or len(dilation) != spatial
        or len(pad) != 2 * spatial
    ):
        return None
    return kernel, stride, dilation, pad


@cache
def pool_ops() -> list[type]:
    """The two op classes for ``ReferenceEvaluator(new_ops=...)``; each defers to onnx's own
    implementation (its base class) for what it does not cover. onnx.reference passes every
    attribute of the op's schema by name."""
    from onnx.reference.ops.op_average_pool import AveragePool_19
    from onnx.reference.ops.op_max_pool import MaxPool as OnnxMaxPool

    def run(
        op: Any, base: Any, pool: Any, x: np.ndarray, attributes: dict[str, Any]
    ) -> tuple[np.ndarray, ...]:
        """``pool(x, (kernel, strides, dilations, pads), attributes)`` where covered, else *base*'s own."""
        covered = _covered(x, attributes)
        if covered is None or len(op.onnx_node.output) > 1:
            result: tuple[np.ndarray, ...] = base._run(op, x, **attributes)
            return result
        return (pool(x, covered, attributes),)

    def mean(x: np.ndarray, window: Window, attributes: dict[str, Any]) -> np.ndarray:
        return average_pool(x, *window, bool(attributes.get("count_include_pad")))

    class AveragePool(AveragePool_19):
        op_domain = ""

        def _run(self, x: np.ndarray, **attributes: Any) -> tuple[np.ndarray, ...]:  # type: ignore[override]
            return run(self, AveragePool_19, mean, x, attributes)

    class MaxPool(OnnxMaxPool):
        op_domain = ""

        def _run(self, x: np.ndarray, **attributes: Any) -> tuple[np.ndarray, ...]:  # type: ignore[override]
            return run(self, OnnxMaxPool, lambda x, window, _: max_pool(x, *window), x, attributes)

    return [AveragePool, MaxPool]
