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


def stft_graph(framed: bool = True, axis_last: bool = True):
    """[SAMPLES] -> frames (gathered pieces) x Hann -> zero pad to SIZE -> RDFT -> [frames, bins, 2]."""
    import openvino as ov
    import openvino.opset13 as ops

    count = (SAMPLES - FRAME) // HOP + 1
    window = np.hanning(FRAME + 1)[:-1].astype(np.float32)
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
