"""Linear audio front ends as the IR's fastest ops: framing, windows and DFTs as one convolution.

TensorFlow frames a signal with a Gather over overlapping pieces, multiplies each frame by a
window and transforms it (RDFT in OpenVINO). All three are linear, so they are one matrix per
frame, and frames taken at a fixed hop make that matrix a strided convolution over the signal:
no frames are materialised, and OpenVINO's convolution kernels run it (measured 3x faster than
its gather plus MatMul, and far faster than its RDFT, which took 40-80 % of the YAMNet and
BirdNET IRs). The matrix is formed in float64 and rounded once to float32.

OpenVINO is imported inside the functions.
"""

from __future__ import annotations

from typing import Any

import numpy as np

#: friendly-name tag of the strided convolutions made here (a front end, not the network's)
FOLDED_TAG = "frames_by_bands"


def window_of(frames: Any) -> np.ndarray | None:
    """The constant window multiplied into *frames* just before the FFT, or None."""
    node = frames.get_node()
    while node.get_type_name() in ("Unsqueeze", "Reshape"):
        node = node.input_value(0).get_node()
    if node.get_type_name() != "Multiply":
        return None
    for value in node.input_values():
        source = value.get_node()
        if source.get_type_name() == "Constant":
            window = np.asarray(source.get_data(), dtype=np.float64).ravel()
            if window.size == int(frames.get_partial_shape()[-1].get_length()):
                return window
    return None


def framing_of(frames: Any, n: int) -> tuple[Any, int, int] | None:
    """(signal as [batch, 1, samples], hop, frame count) when *frames* is TensorFlow's framing of
    one signal: Reshape(Gather(Reshape(signal, [b, L/g, g]), indices[f, j] = f*s + j, axis 1))
    (or without the batch: [L/g, g] on axis 0) with hop = s * g; None for anything else."""
    import openvino.opset13 as ops

    gather = frames.get_node()
    while gather.get_type_name() == "Reshape":
        gather = gather.input_value(0).get_node()
    if gather.get_type_name() != "Gather" or gather.get_attributes().get("batch_dims", 0) != 0:
        return None
    indices, axis = (gather.input_value(i).get_node() for i in (1, 2))
    data = gather.input_value(0).get_partial_shape()
    if indices.get_type_name() != "Constant" or axis.get_type_name() != "Constant" or not data.is_static:
        return None
    dims = [int(d) for d in data.to_shape()]
    index = np.asarray(indices.get_data())
    if len(dims) == 2:
        dims = [1, *dims]  # no batch dimension: the frames' axis is the first
    elif len(dims) != 3:
        return None
    if int(np.asarray(axis.get_data())) % len(data.to_shape()) != len(data.to_shape()) - 2 or index.ndim != 2:
        return None
    count, width = index.shape
    piece = dims[2]
    if count < 2 or width * piece != n:
        return None
    step = int(index[1, 0] - index[0, 0])
    if not np.array_equal(index, np.arange(count)[:, None] * step + np.arange(width)[None, :] + index[0, 0]):
        return None
    start, samples = int(index[0, 0]) * piece, dims[1] * piece
    hop = step * piece
    if start != 0 or (samples - n) // hop + 1 != count:
        return None
    signal = ops.reshape(
        gather.input_value(0), ops.constant(np.array([dims[0], 1, samples], np.int64)), False
    )
    return signal.output(0), hop, count


def unwindowed(frames: Any) -> tuple[Any, np.ndarray | None]:
    """(the frames before a constant window was multiplied in, the window), else (*frames*, None).

    Reshapes and unsqueezes between the multiply and *frames* keep the row order, so flattening
    either gives the same rows.
    """
    window = window_of(frames)
    if window is None:
        return frames, None
    node = frames.get_node()
    while node.get_type_name() in ("Unsqueeze", "Reshape"):
        node = node.input_value(0).get_node()
    others = [v for v in node.input_values() if v.get_node().get_type_name() != "Constant"]
    return (others[0], window) if len(others) == 1 else (frames, None)


def linear_frames(frames: Any, weights: np.ndarray, rows: list[int], name: str) -> Any:
    """*frames* [..., n] times *weights* [n, m] as the output [*rows, m]: a strided convolution over
    the signal when the frames are a plain framing of one, else a reshape and a MatMul."""
    import openvino.opset13 as ops

    n, m = weights.shape
    framing = framing_of(frames, n)
    if framing is not None and framing[2] == int(np.prod(rows)):
        signal, hop, _ = framing
        kernel = ops.constant(np.ascontiguousarray(weights.T.reshape(m, 1, n), np.float32))
        conv = ops.convolution(signal, kernel, [hop], [0], [0], [1])
        conv.set_friendly_name(f"{name}/{FOLDED_TAG}")
        bands = ops.transpose(conv, ops.constant(np.array([0, 2, 1], dtype=np.int64)))
        return ops.reshape(bands, ops.constant(np.array(rows + [m], dtype=np.int64)), False)
    flat = ops.reshape(frames, ops.constant(np.array(rows + [n], dtype=np.int64)), False)
    return ops.matmul(flat, ops.constant(weights.astype(np.float32)), False, False)


def rdft_as_convolution(model: Any) -> int:
    """Replace each last-axis RDFT (with the window and zero padding before it) by one matrix.

    RDFT of a frame x zero-padded to N: Re_k = sum_n x_n cos(2 pi k n / N), Im_k = -sum_n x_n
    sin(2 pi k n / N); with the window w folded in, columns (Re_0, Im_0, Re_1, ...) of a
    [frame x 2(N/2+1)] matrix, reshaped to RDFT's [..., N/2+1, 2]. Returns the number replaced.
    """
    import openvino.opset13 as ops

    replaced = 0
    for rdft in [op for op in model.get_ordered_ops() if op.get_type_name() == "RDFT"]:
        inputs = rdft.input_values()
        out_shape = rdft.output(0).get_partial_shape()
        if not out_shape.is_static or any(v.get_node().get_type_name() != "Constant" for v in inputs[1:]):
            continue
        rank = len(out_shape.to_shape()) - 1
        axes = [int(a) % rank for a in np.asarray(inputs[1].get_node().get_data()).ravel()]
        if axes != [rank - 1]:
            continue
        frames = inputs[0]
        # named after what feeds the transform, so name patterns for the front end still match
        name = f"{frames.get_node().get_friendly_name()}/dft"
        length = int(frames.get_partial_shape()[-1].get_length())
        size = int(np.asarray(inputs[2].get_node().get_data()).ravel()[0]) if len(inputs) > 2 else length
        pad = frames.get_node()
        if pad.get_type_name() == "Pad" and _zero_pad_at_end(pad):
            frames = pad.input_value(0)
            length = int(frames.get_partial_shape()[-1].get_length())
        if length > size:
            continue
        frames, window = unwindowed(frames)
        bins = size // 2 + 1
        angle = 2.0 * np.pi * np.outer(np.arange(length), np.arange(bins)) / size
        weights = np.empty((length, 2 * bins), dtype=np.float64)
        weights[:, 0::2], weights[:, 1::2] = np.cos(angle), -np.sin(angle)
        if window is not None:
            weights *= window[:, None]
        shape = [int(d) for d in out_shape.to_shape()]
        product = linear_frames(frames, weights, shape[:-2], name)
        spectrum = ops.reshape(product, ops.constant(np.array(shape, dtype=np.int64)), False)
        spectrum.set_friendly_name(name)
        for target in list(rdft.output(0).get_target_inputs()):
            target.replace_source_output(spectrum.output(0))
        replaced += 1
    return replaced


def _zero_pad_at_end(pad: Any) -> bool:
    """A constant-mode Pad with value 0 that pads only the end of the last axis."""
    values = pad.input_values()
    if any(v.get_node().get_type_name() != "Constant" for v in values[1:]):
        return False
    begin, end = (np.asarray(values[i].get_node().get_data()).ravel() for i in (1, 2))
    fill = float(np.asarray(values[3].get_node().get_data())) if len(values) > 3 else 0.0
    mode = pad.get_attributes().get("pad_mode", "constant")
    return mode == "constant" and fill == 0.0 and not begin.any() and not end[:-1].any()
