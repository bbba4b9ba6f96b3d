"""converters/spectral.py: framing, window and RDFT of an IR folded into one strided convolution.

Small OpenVINO graphs built the way TensorFlow's front end builds an STFT (pieces gathered into
overlapping frames, a window multiplied in, zero padding, RDFT on the last axis); the folded
graph must give the spectrum numpy computes in float64, within float32 rounding of the sums.
"""

from __future__ import annotations

import numpy as np
import pytest

from zoo.numerics import floor32

pytestmark = pytest.mark.unit

SAMPLES, FRAME, HOP, SIZE = 4000, 400, 160, 512
PIECE = 80  # gcd(FRAME, HOP): TensorFlow gathers pieces of this length


def stft_graph(framed: bool = True, axis_last: bool = True, periodic: bool = True):
    """[SAMPLES] -> frames (gathered pieces) x Hann -> zero pad to SIZE -> RDFT -> [frames, bins, 2].

    The periodic Hann (TensorFlow's) is symmetric about the frame's middle sample; numpy's
    symmetric one (periodic=False) is symmetric about a point between two samples."""
    import openvino as ov
    import openvino.opset13 as ops

    count = (SAMPLES - FRAME) // HOP + 1
    window = (np.hanning(FRAME + 1)[:-1] if periodic else np.hanning(FRAME)).astype(np.float32)
    if framed:
        signal = ops.parameter([SAMPLES], np.float32, name="signal")
        pieces = ops.reshape(signal, ops.constant(np.array([SAMPLES // PIECE, PIECE], np.int64)), False)
        index = np.arange(count)[:, None] * (HOP // PIECE) + np.arange(FRAME // PIECE)[None, :]
        gathered = ops.gather(
            pieces, ops.constant(index.astype(np.int64)), ops.constant(np.array(0, np.int64))
        )
        frames = ops.reshape(gathered, ops.constant(np.array([count, FRAME], np.int64)), False)
        given = signal
    else:
        given = frames = ops.parameter([count, FRAME], np.float32, name="frames")
    windowed = ops.multiply(frames, ops.constant(window[None, :]))
    padded = ops.pad(
        windowed,
        ops.constant(np.array([0, 0], np.int64)),
        ops.constant(np.array([0, SIZE - FRAME], np.int64)),
        "constant",
        ops.constant(np.array(0.0, np.float32)),
    )
    axes = [1] if axis_last else [0]
    spectrum = ops.rdft(
        padded, ops.constant(np.array(axes, np.int64)), ops.constant(np.array([SIZE], np.int64))
    )
    return ov.Model([spectrum], [given]), window, count


def run(model, data: np.ndarray) -> np.ndarray:
    import openvino as ov

    compiled = ov.Core().compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    return compiled({0: data})[0]


def expected_spectrum(signal: np.ndarray, window: np.ndarray, count: int) -> np.ndarray:
    frames = np.stack([signal[f * HOP : f * HOP + FRAME] for f in range(count)]).astype(np.float64)
    spectrum = np.fft.rfft(frames * window.astype(np.float64), n=SIZE)
    return np.stack([spectrum.real, spectrum.imag], axis=-1)


@pytest.mark.parametrize("framed", [True, False], ids=["strided-convolution", "matmul"])
def test_rdft_becomes_one_matrix_and_keeps_the_spectrum(framed):
    from converters.spectral import FOLDED_TAG, rdft_as_convolution

    model, window, count = stft_graph(framed)
    rng = np.random.RandomState(0)
    signal = (0.3 * rng.standard_normal(SAMPLES) + np.sin(0.05 * np.arange(SAMPLES))).astype(np.float32)
    data = signal if framed else np.stack([signal[f * HOP : f * HOP + FRAME] for f in range(count)])
    before = run(model, data)
    assert rdft_as_convolution(model) == 1
    kinds = [op.get_type_name() for op in model.get_ops()]
    assert "RDFT" not in kinds and "Pad" not in kinds
    folded = [op for op in model.get_ops() if op.get_friendly_name().endswith(FOLDED_TAG)]
    assert len(folded) == (1 if framed else 0)
    if framed:
        assert "Gather" not in kinds  # no frames are materialised
    after = run(model, data)
    exact = expected_spectrum(signal, window, count)
    assert after.shape == before.shape == exact.shape
    # float32 rounding of FRAME-long sums (zoo.numerics' floor: 4 standard deviations)
    bound = floor32(float(np.abs(exact).max()), (FRAME, 1))
    assert float(np.abs(after - exact).max()) < bound
    assert float(np.abs(before - exact).max()) < bound  # the RDFT it replaced agreed as well


def test_an_rdft_on_another_axis_is_left_alone():
    from converters.spectral import rdft_as_convolution

    model, _, _ = stft_graph(framed=False, axis_last=False)
    assert rdft_as_convolution(model) == 0
    assert "RDFT" in [op.get_type_name() for op in model.get_ops()]


BANDS, TAPS, STRIDE = 12, 64, 16


def banded_front_end(lengths: int = BANDS, shared: bool = False):
    """BirdNET's layout: two folded convolutions make bands x frames, turned frames x bands for
    |x| ** p and a band flip, stacked on a new last axis, scaled per channel, turned back to
    [batch, 2, bands, frames] for the network's first convolution."""
    import openvino as ov
    import openvino.opset13 as ops

    from converters.spectral import FOLDED_TAG

    rng = np.random.RandomState(1)
    signal = ops.parameter([1, 1024], np.float32, name="signal")
    branches, extra = [], []
    for index, exponent in enumerate((0.46, 0.38)):
        wave = ops.reshape(signal, ops.constant(np.array([1, 1, 1024], np.int64)), False)
        kernel = ops.constant(rng.standard_normal((BANDS, 1, TAPS)).astype(np.float32))
        conv = ops.convolution(wave, kernel, [STRIDE], [0], [0], [1])
        conv.set_friendly_name(f"bank{index}/{FOLDED_TAG}")
        frames_first = ops.transpose(conv, ops.constant(np.array([0, 2, 1], np.int64)))
        if shared and index == 0:
            extra.append(ops.reduce_sum(frames_first, ops.constant(np.array([1], np.int64)), False))
        power = ops.power(ops.abs(frames_first), ops.constant(np.array([[[exponent]]], np.float32)))
        flipped = ops.reverse_sequence(power, ops.constant(np.array([lengths], np.int64)), 0, 2)
        branches.append(ops.unsqueeze(flipped, ops.constant(np.array(3, np.int64))))
    stacked = ops.concat(branches, 3)
    scaled = ops.add(
        ops.multiply(stacked, ops.constant(np.array([[[[0.5, 2.0]]]], np.float32))),
        ops.constant(np.array([[[[-1.0, 0.25]]]], np.float32)),
    )
    image = ops.transpose(scaled, ops.constant(np.array([0, 3, 2, 1], np.int64)))
    network = ops.convolution(
        image,
        ops.constant(rng.standard_normal((4, 2, 3, 3)).astype(np.float32)),
        [1, 1],
        [0, 0],
        [0, 0],
        [1, 1],
    )
    return ov.Model([network, *extra], [signal]), network


def kinds(model) -> list[str]:
    return [op.get_type_name() for op in model.get_ops()]


def test_band_flips_and_transposes_leave_the_front_end_with_every_value_unchanged():
    from converters.spectral import cancel_front_end_transposes, fold_band_reversals

    model, network = banded_front_end()
    audio = np.random.RandomState(2).standard_normal((1, 1024)).astype(np.float32)
    before = run(model, audio)
    assert fold_band_reversals(model) == 2
    assert cancel_front_end_transposes(network.input(0))
    model.validate_nodes_and_infer_types()
    assert "ReverseSequence" not in kinds(model) and "Transpose" not in kinds(model)
    # a permutation of rows and of axes: the same products and the same elementwise steps, so
    # the same bits (any tolerance would hide a band put in the wrong place)
    assert np.array_equal(run(model, audio), before)


def test_partial_flips_and_values_read_elsewhere_are_left_alone():
    from converters.spectral import cancel_front_end_transposes, fold_band_reversals

    model, network = banded_front_end(lengths=BANDS - 1)  # flips only the first 11 bands
    assert fold_band_reversals(model) == 0
    assert kinds(model).count("ReverseSequence") == 2
    # the frames-first tensor of one branch is also read by another output: neither pass may
    # reorder it, and the graph stays as it was
    model, network = banded_front_end(shared=True)
    audio = np.random.RandomState(3).standard_normal((1, 1024)).astype(np.float32)
    before = [run_output(model, audio, i) for i in (0, 1)]
    assert fold_band_reversals(model) == 1
    assert not cancel_front_end_transposes(network.input(0))
    assert kinds(model).count("Transpose") == 3  # one per branch and the one before the network
    for index, expected in enumerate(before):
        assert np.array_equal(run_output(model, audio, index), expected)


def run_output(model, data: np.ndarray, index: int) -> np.ndarray:
    import openvino as ov

    compiled = ov.Core().compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    return compiled({0: data})[index]


def magnitude_mel_graph(power_op: str = "power", periodic: bool = True):
    """stft_graph's spectrum -> |z| as TensorFlow's abs of a complex tensor lowers it (square,
    sum over the (re, im) axis, sqrt) -> a mel-like matrix whose rows outside 20..200 are zero."""
    import openvino as ov
    import openvino.opset13 as ops

    model, _, count = stft_graph(framed=True, periodic=periodic)
    spectrum = model.get_results()[0].input_value(0)
    squared = (
        ops.power(spectrum, ops.constant(np.array([[[2.0]]], np.float32)))
        if power_op == "power"
        else ops.multiply(spectrum, spectrum)
    )
    magnitude = ops.sqrt(ops.reduce_sum(squared, ops.constant(np.array(-1, np.int64)), False))
    bins = SIZE // 2 + 1
    matrix = np.abs(np.random.RandomState(4).standard_normal((bins, 16))).astype(np.float32)
    matrix[:20] = 0.0
    matrix[200:] = 0.0
    mel = ops.matmul(magnitude, ops.constant(matrix.T.copy()), False, True)
    return ov.Model([mel], model.get_parameters()), count


@pytest.mark.parametrize(
    "power_op, periodic",
    [("power", True), ("multiply", True), ("power", False)],
    ids=["power-centred", "multiply-centred", "power-convolution"],
)
def test_magnitudes_are_computed_for_the_mel_band_only_and_keep_their_values(power_op, periodic):
    from converters.spectral import FOLDED_TAG, band_limited_magnitudes, rdft_as_convolution

    model, _ = magnitude_mel_graph(power_op, periodic)
    rng = np.random.RandomState(5)
    signal = (0.3 * rng.standard_normal(SAMPLES) + np.sin(0.05 * np.arange(SAMPLES))).astype(np.float32)
    assert rdft_as_convolution(model) == 1
    before = run(model, signal)
    assert band_limited_magnitudes(model) == 1
    kinds_after = [op.get_type_name() for op in model.get_ops()]
    assert "ReduceSum" not in kinds_after
    folded = [op for op in model.get_ops() if op.get_friendly_name().endswith(FOLDED_TAG)]
    weights = sorted(
        tuple(op.input_value(1).get_node().get_output_shape(0))
        for op in model.get_ops()
        if op.get_type_name() in ("MatMul", "Convolution")
        and op is not model.get_results()[0].input_value(0).get_node()
    )
    if periodic:  # bins 20..199 from the frame's folded halves: two (FRAME / 2) x 180 matrices
        assert not folded and weights == [(FRAME // 2, 180), (FRAME // 2, 180)]
    else:  # not centred on a sample: the strided convolution of the used (re, im) rows
        assert [tuple(op.input_value(1).get_node().get_output_shape(0)) for op in folded] == [
            (2 * 180, 1, FRAME)
        ]
    after = run(model, signal)
    assert after.shape == before.shape
    # the same products regrouped: float32 rounding of the FRAME-long DFT sums, carried through
    # the magnitude and the 180-long mel sums (zoo.numerics' floor, 4 standard deviations)
    bound = floor32(float(np.abs(before).max()), (FRAME, 180))
    assert float(np.abs(after - before).max()) < bound


def test_magnitudes_read_elsewhere_keep_every_bin():
    import openvino as ov
    import openvino.opset13 as ops

    from converters.spectral import band_limited_magnitudes, rdft_as_convolution

    model, _ = magnitude_mel_graph()
    mel = model.get_results()[0].input_value(0).get_node()
    magnitude = mel.input_value(0)
    model = ov.Model(
        [mel, ops.reduce_max(magnitude, ops.constant(np.array([1], np.int64)), False)], model.get_parameters()
    )
    assert rdft_as_convolution(model) == 1
    assert band_limited_magnitudes(model) == 0
