"""Linear audio front ends as the IR's fastest ops: framing, windows and DFTs as one convolution.

TensorFlow frames a signal with a Gather over overlapping pieces, multiplies each frame by a
window and transforms it (RDFT in OpenVINO). All three are linear, so they are one matrix per
frame, and frames taken at a fixed hop make that matrix a strided convolution over the signal:
no frames are materialised, and OpenVINO's convolution kernels run it (measured 3x faster than
its gather plus MatMul, and far faster than its RDFT, which took 40-80 % of the YAMNet and
BirdNET IRs). The matrix is formed in float64 and rounded once to float32.
When only magnitudes are used and the window is symmetric about each frame's middle sample,
`band_limited_magnitudes` goes further: two Gathers take the samples after and before each
frame's middle (cheap for short frames), and their sums and differences need half the multiplies.

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


#: elementwise ops of one input: they commute with any permutation of their tensor's elements
_UNARY = ("Abs", "Sqrt", "Exp", "Log", "Relu", "Sigmoid", "Tanh", "Negative", "Floor", "Ceiling", "Convert")
#: elementwise ops of two inputs: they commute with a permutation when the constant side is
#: permuted with it
_BINARY = ("Add", "Subtract", "Multiply", "Divide", "Power", "Maximum", "Minimum")


def _single_use(value: Any) -> bool:
    """Whether exactly one input port reads *value*: what a rewrite may rewire in place (a value
    read twice, even by one op, would be rewired twice)."""
    return len(value.get_target_inputs()) == 1


def _constant_operand(node: Any) -> tuple[int, np.ndarray] | None:
    """(index of the non-constant input, the constant) for a binary elementwise op, else None."""
    kinds = [v.get_node().get_type_name() for v in node.input_values()]
    if len(kinds) != 2 or kinds.count("Constant") != 1:
        return None
    constant = node.input_value(kinds.index("Constant")).get_node()
    return 1 - kinds.index("Constant"), np.asarray(constant.get_data())


def _static(value: Any) -> list[int] | None:
    shape = value.get_partial_shape()
    return [int(d) for d in shape.to_shape()] if shape.is_static else None


def _unit_axes_only(before: list[int], after: list[int]) -> bool:
    """A reshape between these shapes only adds or drops axes of length 1."""
    return [d for d in before if d != 1] == [d for d in after if d != 1]


def _reversed(value: Any, axis: int, apply: bool) -> bool:
    """Whether *value* reversed along *axis* can be had by moving the reversal up to the output
    channels of a folded front-end convolution, through ops that commute with it; with *apply*,
    move it (reverse that kernel and the constants on the way). Every value passed through must
    have this one use, so nothing else sees the new order."""
    import openvino.opset13 as ops

    node, shape = value.get_node(), _static(value)
    kind = node.get_type_name()
    if shape is None or not _single_use(value):
        return False
    if kind == "Convolution" and node.get_friendly_name().endswith(FOLDED_TAG):
        kernel = node.input_value(1).get_node()
        if axis != 1 or kernel.get_type_name() != "Constant":
            return False
        if apply:
            flipped = np.ascontiguousarray(np.asarray(kernel.get_data())[::-1])
            node.input(1).replace_source_output(ops.constant(flipped).output(0))
        return True
    if kind in _UNARY:
        return _reversed(node.input_value(0), axis, apply)
    if kind in _BINARY:
        operand = _constant_operand(node)
        if operand is None or not _reversed(node.input_value(operand[0]), axis, apply):
            return False
        index, constant = operand
        full = constant.reshape((1,) * (len(shape) - constant.ndim) + constant.shape)
        if apply and full.shape[axis] > 1:
            flipped = ops.constant(np.ascontiguousarray(np.flip(full, axis)))
            node.input(1 - index).replace_source_output(flipped.output(0))
        return True
    if kind == "Transpose" and node.input_value(1).get_node().get_type_name() == "Constant":
        perm = np.asarray(node.input_value(1).get_node().get_data()).ravel()
        return _reversed(node.input_value(0), int(perm[axis]), apply)
    if kind in ("Reshape", "Squeeze", "Unsqueeze"):
        before = _static(node.input_value(0))
        # only a reshape that adds or drops unit axes keeps the reversed axis whole
        if before is None or not _unit_axes_only(before, shape) or shape[axis] == 1:
            return False
        position = [i for i, d in enumerate(shape) if d != 1].index(axis)
        return _reversed(node.input_value(0), [i for i, d in enumerate(before) if d != 1][position], apply)
    return False


def fold_band_reversals(model: Any) -> int:
    """Fold each whole-axis reversal of the front end (BirdNET flips its mel bands so the highest
    comes first) into the output channels of the folded convolution that makes those bands.

    OpenVINO runs ReverseSequence with its reference kernel; reordering the rows of a constant
    matrix costs nothing at run time and changes no value: every op between is elementwise (or
    moves axes), so it commutes with the permutation. Returns the number folded.
    """
    folded = 0
    for op in [o for o in model.get_ordered_ops() if o.get_type_name() == "ReverseSequence"]:
        data = op.input_value(0)
        dims = _static(data)
        lengths = op.input_value(1).get_node()
        if dims is None or lengths.get_type_name() != "Constant":
            continue
        axis = int(op.get_attributes()["seq_axis"]) % len(dims)
        if np.any(np.asarray(lengths.get_data()) != dims[axis]):
            continue  # a partial reversal is not a permutation of whole rows
        if not _reversed(data, axis, apply=False):
            continue
        _reversed(data, axis, apply=True)
        for target in list(op.output(0).get_target_inputs()):
            target.replace_source_output(data)
        folded += 1
    if folded:
        model.validate_nodes_and_infer_types()
    return folded


def _transposed(value: Any, perm: list[int], apply: bool) -> Any | None:
    """Transpose(*value*, *perm*) without a Transpose: the permutation moved up through
    elementwise ops, concatenations and unit-axis reshapes until it cancels against a transpose
    there. None where it cannot; with *apply* the ops on the way are rewired (each value passed
    through has this one use) and the equal output returned."""
    import openvino.opset13 as ops

    if perm == list(range(len(perm))):
        return value
    node, shape = value.get_node(), _static(value)
    kind = node.get_type_name()
    if shape is None or not _single_use(value):
        return None
    result: Any | None = None
    if kind == "Transpose" and node.input_value(1).get_node().get_type_name() == "Constant":
        earlier = [int(a) for a in np.asarray(node.input_value(1).get_node().get_data()).ravel()]
        return _transposed(node.input_value(0), [earlier[a] for a in perm], apply)
    if kind in _UNARY:
        result = _transposed(node.input_value(0), perm, apply)
        if result is not None and apply:
            node.input(0).replace_source_output(result)
    elif kind in _BINARY and _constant_operand(node) is not None:
        index, constant = _constant_operand(node)  # type: ignore[misc]
        result = _transposed(node.input_value(index), perm, apply)
        if result is not None and apply:
            full = constant.reshape((1,) * (len(perm) - constant.ndim) + constant.shape)
            moved = ops.constant(np.ascontiguousarray(np.transpose(full, perm)))
            node.input(index).replace_source_output(result)
            node.input(1 - index).replace_source_output(moved.output(0))
    elif kind == "Concat":
        parts = [_transposed(v, perm, apply) for v in node.input_values()]
        if all(part is not None for part in parts):
            axis = int(node.get_attributes()["axis"]) % len(perm)
            result = ops.concat(parts, perm.index(axis)).output(0) if apply else value
        return result
    elif kind in ("Reshape", "Squeeze", "Unsqueeze"):
        before = _static(node.input_value(0))
        if before is None or not _unit_axes_only(before, shape):
            return None
        # only unit axes come or go: the data's order is the order of the other axes
        kept_after = [i for i, d in enumerate(shape) if d != 1]
        kept_before = [i for i, d in enumerate(before) if d != 1]
        order = [kept_before[kept_after.index(a)] for a in perm if shape[a] != 1]
        inner = node.input_value(0)
        if order != kept_before:  # a permutation of unit axes moves no data
            units = [i for i, d in enumerate(before) if d == 1]
            inner = _transposed(inner, units + order, apply)
            if inner is None:
                return None
        target = np.array([shape[a] for a in perm], dtype=np.int64)
        return ops.reshape(inner, ops.constant(target), False).output(0) if apply else value
    if result is not None and apply:
        node.validate_and_infer_types()
        return node.output(0)
    return result


def cancel_front_end_transposes(boundary: Any) -> bool:
    """Move the transpose that feeds the network (*boundary*, an input port) up the front end
    until it cancels against the transposes there; nothing changes unless it cancels fully.

    A front end that computes bands x frames, turns them into frames x bands for elementwise
    steps, concatenates on a new last axis and turns the result back (BirdNET) spends its time
    moving memory: OpenVINO runs that concatenation with its reference kernel. The same
    elementwise steps on the untransposed tensor give the same values.
    """
    value = boundary.get_source_output()
    node = value.get_node()
    if node.get_type_name() != "Transpose" or node.input_value(1).get_node().get_type_name() != "Constant":
        return False
    perm = [int(a) for a in np.asarray(node.input_value(1).get_node().get_data()).ravel()]
    if _transposed(node.input_value(0), perm, apply=False) is None:
        return False
    boundary.replace_source_output(_transposed(node.input_value(0), perm, apply=True))
    return True


def _same_value(a: Any, b: Any) -> bool:
    return (
        a.get_node().get_friendly_name() == b.get_node().get_friendly_name()
        and a.get_index() == b.get_index()
    )


def _only_consumer(value: Any) -> Any | None:
    """The one op that reads *value* (through one or more of its inputs), else None."""
    readers = {t.get_node().get_friendly_name(): t.get_node() for t in value.get_target_inputs()}
    return next(iter(readers.values())) if len(readers) == 1 else None


def _bins_by_pairs(conv: Any) -> tuple[Any, int, int] | None:
    """(the value holding the DFT as [frames, bins, 2], frames, bins) when *conv*'s [1, 2 bins,
    frames] output only goes through a transpose to frames-first and reshapes that split (re, im)
    pairs."""
    shape = _static(conv.output(0))
    if shape is None or len(shape) != 3 or shape[0] != 1 or shape[1] % 2:
        return None
    frames, bins = shape[2], shape[1] // 2
    node = _only_consumer(conv.output(0))
    if node is None or node.get_type_name() != "Transpose":
        return None
    perm = node.input_value(1).get_node()
    if perm.get_type_name() != "Constant" or np.asarray(perm.get_data()).ravel().tolist() != [0, 2, 1]:
        return None
    value = node.output(0)
    while True:
        dims = [d for d in (_static(value) or [0]) if d != 1]
        if dims == [frames, bins, 2]:
            return value, frames, bins
        if dims != [frames, 2 * bins]:
            return None
        node = _only_consumer(value)
        if node is None or node.get_type_name() != "Reshape":
            return None
        value = node.output(0)


def _past_converts(node: Any | None) -> Any | None:
    while node is not None and node.get_type_name() == "Convert":
        node = _only_consumer(node.output(0))
    return node


def _squares(node: Any) -> bool:
    """Whether *node* squares its input: Power(x, 2) or x * x."""
    if node.get_type_name() == "Multiply":
        return _same_value(node.input_value(0), node.input_value(1))
    operand = _constant_operand(node) if node.get_type_name() == "Power" else None
    return operand is not None and operand[0] == 0 and bool(np.all(np.asarray(operand[1]) == 2.0))


def _mel_of_magnitudes(pairs: Any) -> Any | None:
    """The MatMul with a constant matrix that the magnitudes of *pairs* ([..., 2], re and im) feed
    alone, as TensorFlow's abs of a complex tensor lowers: square, sum over the pair axis, sqrt."""
    square = _past_converts(_only_consumer(pairs))
    if square is None or not _squares(square):
        return None
    total = _only_consumer(square.output(0))
    if total is None or total.get_type_name() != "ReduceSum" or total.get_attributes().get("keep_dims"):
        return None
    axes, rank = total.input_value(1).get_node(), len(_static(square.output(0)) or [])
    if axes.get_type_name() != "Constant" or [int(a) % rank for a in np.asarray(axes.get_data()).ravel()] != [
        rank - 1
    ]:
        return None
    root = _only_consumer(total.output(0))
    mel = (
        _past_converts(_only_consumer(root.output(0)))
        if root is not None and root.get_type_name() == "Sqrt"
        else None
    )
    if mel is None or mel.get_type_name() != "MatMul" or mel.get_attributes().get("transpose_a"):
        return None
    if mel.input_value(1).get_node().get_type_name() != "Constant" or _static(mel.output(0)) is None:
        return None
    return mel if mel.output(0).get_element_type().get_type_name() == "f32" else None


def _centred_halves(kernel: np.ndarray, used: np.ndarray, bins: int) -> tuple[np.ndarray, np.ndarray] | None:
    """(cosine half, sine half), each [frame / 2, len(used)], of the windowed DFT rows of *kernel*
    ((re, im) rows per bin, frame long) recentred on the frame's middle sample c, when the window
    is symmetric about c and zero at sample 0 (a periodic window, as TensorFlow's Hann); else None.

    Recentring multiplies bin k by exp(i 2 pi k c / size), which no magnitude sees. Then the real
    row is even about c and the imaginary row odd, so a frame's DFT needs only the sums
    x[c+m] + x[c-m] against the cosine half and the differences against the sine half: half the
    multiplies. The rows are rotated in float64 from the float32 kernel.
    """
    from zoo.numerics.budget import U32

    length = kernel.shape[-1]
    if length % 2:
        return None
    half, size = length // 2, 2 * (bins - 1)
    rows = kernel.reshape(-1, length).astype(np.float64)
    real, imaginary = rows[2 * used], rows[2 * used + 1]
    turn = 2.0 * np.pi * used[:, None].astype(np.float64) * half / size
    real_c = real * np.cos(turn) - imaginary * np.sin(turn)
    imaginary_c = real * np.sin(turn) + imaginary * np.cos(turn)
    m = np.arange(1, half)
    # Each kernel entry is a float64 value rounded once to float32 (off by at most u of its size);
    # a rotated entry combines two, and a pair compares two of those: 4 u of the largest entry.
    # The window is a float32 constant of the model too, a float32 evaluation of its formula
    # (TensorFlow's Hann: 0.5 - 0.5 cos), allowed 4 u of error per sample: 8 u more per pair.
    # The halves take each pair's mean, so the IR's window is symmetric where the model's was
    # off by that rounding.
    limit = 12.0 * U32 * float(np.abs(rows).max())
    if (
        max(
            float(np.abs(real_c[:, half + m] - real_c[:, half - m]).max()),
            float(np.abs(imaginary_c[:, half + m] + imaginary_c[:, half - m]).max()),
            float(np.abs(real_c[:, 0]).max()),
            float(np.abs(imaginary_c[:, 0]).max()),
        )
        > limit
    ):
        return None
    even = np.empty((half, len(used)))
    even[0] = real_c[:, half] / 2.0  # the sums' first column is 2 x[c]
    even[1:] = ((real_c[:, half + m] + real_c[:, half - m]) / 2.0).T
    odd = np.zeros((half, len(used)))  # the differences' first column is 0
    odd[1:] = ((imaginary_c[:, half + m] - imaginary_c[:, half - m]) / 2.0).T
    return even.astype(np.float32), odd.astype(np.float32)


def _centred_spectrum(
    conv: Any, halves: tuple[np.ndarray, np.ndarray], frames: int
) -> tuple[list[Any], Any, Any] | None:
    """(the ops made, real, imaginary): [frames, bins] parts of *conv*'s frames made from its signal
    with the centred halves: two Gathers of the samples after and before each frame's middle, their
    sum and difference, and one MatMul each. None when the convolution is not a plain framing."""
    import openvino.opset13 as ops

    layout = conv.get_attributes()
    signal = _static(conv.input_value(0))
    if signal is None or len(signal) != 3 or signal[:2] != [1, 1] or layout["dilations"] != [1]:
        return None
    if any(layout["pads_begin"]) or any(layout["pads_end"]):
        return None
    even, odd = halves
    half, hop = even.shape[0], int(layout["strides"][0])
    flat = ops.reshape(conv.input_value(0), ops.constant(np.array([signal[2]], np.int64)), False)
    middles = np.arange(frames)[:, None] * hop + half
    offsets = np.arange(half)[None, :]
    axis = ops.constant(np.array(0, np.int64))
    after = ops.gather(flat, ops.constant((middles + offsets).astype(np.int32)), axis)
    before = ops.gather(flat, ops.constant((middles - offsets).astype(np.int32)), axis)
    sums, differences = ops.add(after, before), ops.subtract(after, before)
    real = ops.matmul(sums, ops.constant(np.ascontiguousarray(even)), False, False)
    imaginary = ops.matmul(differences, ops.constant(np.ascontiguousarray(odd)), False, False)
    return [flat, after, before, sums, differences, real, imaginary], real.output(0), imaginary.output(0)


def band_limited_magnitudes(model: Any) -> int:
    """Make each folded DFT whose magnitudes only feed a mel MatMul compute just the bins the mel
    matrix uses, real parts and imaginary parts apart, with as few multiplies as the window allows.

    TensorFlow's STFT magnitude comes out as interleaved (re, im) pairs for every bin, squared
    and summed over a last axis of 2 (a strided reduction), then multiplied by a mel matrix whose
    rows for bins outside its band are zero. Here only the used bins are computed, the squares
    add two contiguous blocks, and one MatMul maps them to frames x mels. The dropped bins
    contributed exact zeros. With a window symmetric about the frame's middle sample (periodic
    Hann) the bins come from the frame's folded halves (`_centred_halves`: half the multiplies;
    the frames are gathered, which for short frames such as YAMNet's 96 x 400 costs less than
    the multiplies saved); otherwise from a strided convolution of the used rows. Returns the
    number rewritten.
    """
    import openvino.opset13 as ops

    rewritten = 0
    for conv in [op for op in model.get_ordered_ops() if op.get_friendly_name().endswith(FOLDED_TAG)]:
        found = _bins_by_pairs(conv)
        mel = _mel_of_magnitudes(found[0]) if found is not None else None
        if found is None or mel is None:
            continue
        _, frames, bins = found
        matrix = np.asarray(mel.input_value(1).get_node().get_data(), dtype=np.float32)
        if mel.get_attributes().get("transpose_b"):
            matrix = matrix.T
        if matrix.shape[0] != bins:
            continue
        used = np.flatnonzero(np.abs(matrix).sum(axis=1) > 0)
        kernel = np.asarray(conv.input_value(1).get_node().get_data())
        centred = _centred_halves(kernel, used, bins)
        spectrum = _centred_spectrum(conv, centred, frames) if centred is not None else None
        made: list[Any]
        if spectrum is not None:  # frames x bins, from half the multiplies
            made, real, imaginary = spectrum
            bins_first = False
        else:  # bins x frames, from the strided convolution of the used rows
            rows = np.concatenate([kernel[2 * used], kernel[2 * used + 1]])  # re block, then im block
            layout = conv.get_attributes()
            narrow = ops.convolution(
                conv.input_value(0),
                ops.constant(np.ascontiguousarray(rows)),
                layout["strides"],
                layout["pads_begin"],
                layout["pads_end"],
                layout["dilations"],
            )
            narrow.set_friendly_name(conv.get_friendly_name())
            halves = ops.split(narrow, ops.constant(np.array(1, np.int64)), 2)
            real, imaginary = halves.outputs()
            made, bins_first = [halves], True
        squares = [ops.multiply(real, real), ops.multiply(imaginary, imaginary)]
        power = ops.add(*squares)
        magnitude = ops.sqrt(power)
        shape = [len(used), frames] if bins_first else [frames, len(used)]
        flat = ops.reshape(magnitude, ops.constant(np.array(shape, np.int64)), False)
        product = ops.matmul(flat, ops.constant(np.ascontiguousarray(matrix[used])), bins_first, False)
        made += [*squares, power, magnitude, flat, product]
        given = _static(mel.output(0))
        if given != [frames, matrix.shape[1]]:
            product = ops.reshape(product, ops.constant(np.array(given, np.int64)), False)
            made.append(product)
        # under the replaced MatMul's name, so name patterns for the front end still match
        name = mel.get_friendly_name()
        for index, op in enumerate(made[:-1]):
            op.set_friendly_name(f"{name}/band_limited/{index}")
        product.set_friendly_name(name)
        for target in list(mel.output(0).get_target_inputs()):
            target.replace_source_output(product.output(0))
        rewritten += 1
    if rewritten:
        model.validate_nodes_and_infer_types()
    return rewritten
