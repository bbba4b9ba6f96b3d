"""`vggish-log-mel` entries (VGGish): upstream's log-mel examples, as vggish_input.py computes them.

Upstream (tensorflow/models research/audioset/vggish, mel_features.py and vggish_input.py):
16 kHz mono; frames of 25 ms (400 samples) every 10 ms (160), no padding; a periodic Hann window;
|rfft| with 512 points (the next power of two); 64 mel bands 125-7500 Hz on the HTK mel scale
(1127 ln(1 + f / 700)) with triangles linear in mel between linearly spaced mel edges, built over
the 257 bins spaced linearly from 0 Hz to Nyquist, the DC bin's weight set to zero, no area
normalisation; log(mel + 0.01); examples of 96 frames every 96 frames (0.96 s), no padding.

zoo.frontends.logmel is Kong's DCASE front end (Slaney mel, librosa's normalised filters, scipy's
spectrogram scaling): none of its conventions match, so the matrix is built here.

Differences from upstream, on purpose: resampling is zoo's polyphase resampler (scipy's
resample_poly, as for every entry) where upstream calls resampy; a signal shorter than one example
(0.975 s) is zero-padded to one, where upstream returns no example at all.
"""

from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING

import numpy as np

from zoo.frontends.base import Feeds, FrontEnd, Scaler, register_frontend
from zoo.frontends.signal import pad_clip, reshape_input

if TYPE_CHECKING:
    from zoo.manifest import Manifest, TensorSpec

SAMPLE_RATE = 16000
WINDOW = 400  # 25 ms
HOP = 160  # 10 ms
FFT = 512  # 2 ** ceil(log2(400))
MEL_BANDS = 64
MEL_MIN_HZ = 125.0
MEL_MAX_HZ = 7500.0
LOG_OFFSET = 0.01
EXAMPLE_FRAMES = 96  # 0.96 s
EXAMPLE_HOP_FRAMES = 96
#: samples one example needs (95 hops and one window) and the step between examples
EXAMPLE_SAMPLES = (EXAMPLE_FRAMES - 1) * HOP + WINDOW
EXAMPLE_HOP_SAMPLES = EXAMPLE_HOP_FRAMES * HOP


def periodic_hann(length: int) -> np.ndarray:
    """0.5 - 0.5 cos(2 pi n / N), n = 0 .. N-1: the periodic Hann window (not numpy's symmetric one)."""
    return 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(length) / length)


def htk_mel(hertz: np.ndarray | float) -> np.ndarray:
    """HTK's mel scale: 1127 ln(1 + f / 700)."""
    return 1127.0 * np.log1p(np.asarray(hertz, dtype=np.float64) / 700.0)


@lru_cache(maxsize=4)
def mel_matrix(
    bins: int = FFT // 2 + 1,
    rate: int = SAMPLE_RATE,
    bands: int = MEL_BANDS,
    low: float = MEL_MIN_HZ,
    high: float = MEL_MAX_HZ,
) -> np.ndarray:
    """(bins, bands) weights that post-multiply a magnitude spectrogram, as mel_features builds them."""
    bin_mels = htk_mel(np.linspace(0.0, rate / 2.0, bins))[:, None]
    edges = np.linspace(float(htk_mel(low)), float(htk_mel(high)), bands + 2)
    lower, centre, upper = edges[:-2], edges[1:-1], edges[2:]
    rising = (bin_mels - lower) / (centre - lower)
    falling = (upper - bin_mels) / (upper - centre)
    weights = np.maximum(0.0, np.minimum(rising, falling))
    weights[0, :] = 0.0  # HTK leaves the DC bin out
    weights.flags.writeable = False
    return weights


def log_mel(signal: np.ndarray) -> np.ndarray:
    """(frames, 64) float64 log-mel of a 16 kHz signal with at least one 400-sample frame."""
    data = np.asarray(signal, dtype=np.float64).reshape(-1)
    count = 1 + (data.shape[0] - WINDOW) // HOP
    index = np.arange(WINDOW)[None, :] + HOP * np.arange(count)[:, None]
    magnitude = np.abs(np.fft.rfft(data[index] * periodic_hann(WINDOW), FFT))
    logged: np.ndarray = np.log(magnitude @ mel_matrix() + LOG_OFFSET)
    return logged


def examples(signal: np.ndarray) -> np.ndarray:
    """(examples, 96, 64) float32 log-mel examples of a 16 kHz signal (padded to one example at least)."""
    data = np.asarray(signal, dtype=np.float32).reshape(-1)
    if data.shape[0] < EXAMPLE_SAMPLES:
        data = pad_clip(data, EXAMPLE_SAMPLES, "zero")
    frames = log_mel(data)
    count = 1 + (frames.shape[0] - EXAMPLE_FRAMES) // EXAMPLE_HOP_FRAMES
    starts = EXAMPLE_HOP_FRAMES * np.arange(count)
    return np.stack([frames[s : s + EXAMPLE_FRAMES] for s in starts]).astype(np.float32)


@register_frontend
class VggishLogMel(FrontEnd):
    """One network call per 0.96 s example, input [1, 96, 64]."""

    kind = "vggish-log-mel"

    def window(self, manifest: Manifest) -> tuple[int, int]:
        return EXAMPLE_SAMPLES, EXAMPLE_HOP_SAMPLES

    def feeds(
        self, manifest: Manifest, signal: np.ndarray, input_spec: TensorSpec, scaler: Scaler | None
    ) -> list[Feeds]:
        origin = str(manifest.path or manifest.name)
        return [
            {input_spec.name: reshape_input(example, input_spec.shape, origin)}
            for example in examples(signal)
        ]
