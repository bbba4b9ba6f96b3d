"""zoo.frontends.librosa_mel against librosa's definition written out here plainly, and musicnn's patching.

librosa is not installed (zoo does not depend on it), so the reference below follows librosa
0.7's code step by step with loops: `util.pad_center`-free framing of the reflect-padded signal,
`scipy.signal.get_window('hann', n_fft, fftbins=True)`, `np.fft.rfft` per frame, |X|^2, and
`filters.mel` (Slaney mel scale, triangles between mel-spaced points, area normalisation).
"""

from __future__ import annotations

import numpy as np
import pytest

from zoo.errors import UsageError
from zoo.frontends.librosa_mel import melspectrogram, settings

MUSICNN = {"n_fft": 512, "hop_length": 256, "n_mels": 96, "cast": "float16", "log_scale": 10000}


def _slaney_hz_to_mel(f: float) -> float:
    return f / (200.0 / 3) if f < 1000.0 else 15.0 + np.log(f / 1000.0) / (np.log(6.4) / 27.0)


def _slaney_mel_to_hz(m: float) -> float:
    return m * (200.0 / 3) if m < 15.0 else 1000.0 * np.exp((np.log(6.4) / 27.0) * (m - 15.0))


def _librosa_mel_basis(sr: int, n_fft: int, n_mels: int) -> np.ndarray:
    fft_freqs = [k * sr / n_fft for k in range(n_fft // 2 + 1)]
    low, high = _slaney_hz_to_mel(0.0), _slaney_hz_to_mel(sr / 2.0)
    points = [_slaney_mel_to_hz(low + (high - low) * i / (n_mels + 1)) for i in range(n_mels + 2)]
    basis = np.zeros((n_mels, len(fft_freqs)))
    for m in range(n_mels):
        left, centre, right = points[m], points[m + 1], points[m + 2]
        for k, f in enumerate(fft_freqs):
            rising = (f - left) / (centre - left)
            falling = (right - f) / (right - centre)
            basis[m, k] = max(0.0, min(rising, falling)) * 2.0 / (right - left)
    return basis


def _librosa_melspectrogram(y: np.ndarray, sr: int, n_fft: int, hop: int, n_mels: int) -> np.ndarray:
    """(n_mels, frames): librosa.feature.melspectrogram(y, sr, n_fft=, hop_length=, n_mels=) of 2019."""
    from scipy.signal import get_window

    half = n_fft // 2
    padded = np.concatenate([y[1 : half + 1][::-1], y, y[-half - 1 : -1][::-1]])  # numpy 'reflect'
    window = get_window("hann", n_fft, fftbins=True)
    frames = []
    for start in range(0, len(padded) - n_fft + 1, hop):
        spectrum = np.fft.rfft(padded[start : start + n_fft] * window)
        frames.append(np.abs(spectrum) ** 2)
    return _librosa_mel_basis(sr, n_fft, n_mels) @ np.array(frames).T


def _music(seconds: float, rate: int = 16000) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    notes = sum(np.sin(2 * np.pi * f * t) / (i + 1) for i, f in enumerate((220.0, 277.2, 329.6, 440.0)))
    beat = np.exp(-30 * (t % 0.5)) * np.random.RandomState(0).standard_normal(t.shape)
    return (0.2 * notes + 0.3 * beat).astype(np.float32)


def test_mel_power_spectrogram_is_librosas():
    y = _music(2.0)
    ours = melspectrogram(y, 16000, settings({"n_fft": 512, "hop_length": 256, "n_mels": 96}, "test"))
    reference = _librosa_melspectrogram(y.astype(np.float64), 16000, 512, 256, 96).T
    assert ours.shape == reference.shape == (1 + len(y) // 256, 96)
    np.testing.assert_allclose(ours, reference, rtol=2e-5, atol=1e-6 * reference.max())


def test_musicnn_compression_is_float16_then_log10():
    y = _music(2.0)
    ours = melspectrogram(y, 16000, settings(MUSICNN, "test"))
    reference = _librosa_melspectrogram(y.astype(np.float64), 16000, 512, 256, 96).T
    expected = np.log10(10000 * reference.astype(np.float32).astype(np.float16).astype(np.float64) + 1)
    # float16 rounding of values computed in float32 vs float64 may differ by one float16 step
    assert np.mean(np.isclose(ours, expected, rtol=0, atol=1e-6)) > 0.99
    np.testing.assert_allclose(ours, expected, atol=5e-4)
    assert ours.dtype == np.float32 and ours.min() >= 0.0


def test_pad_mode_changes_only_the_edge_frames():
    y = _music(1.0)
    reflect = melspectrogram(y, 16000, settings({**MUSICNN, "pad_mode": "reflect"}, "test"))
    constant = melspectrogram(y, 16000, settings({**MUSICNN, "pad_mode": "constant"}, "test"))
    differs = np.flatnonzero(np.abs(reflect - constant).max(axis=1) > 0)
    assert differs.tolist() == [0, len(reflect) - 1]


def test_patches_are_musicnns_back_to_back_187_frames(tmp_path):
    from zoo.catalog import Catalog
    from zoo.frontends import prepare_inputs

    manifest = Catalog().get("musicnn-mtt")
    y = _music(10.0)
    feeds = prepare_inputs(manifest, y, 16000)
    spectrogram = melspectrogram(y, 16000, settings(dict(manifest.audio.features.params), "test"))
    # musicnn's batch_data: range(0, frames - 187 + 1, 187); the partial last patch is dropped
    starts = list(range(0, spectrogram.shape[0] - 187 + 1, 187))
    assert len(feeds) == len(starts) == 3
    for feed, start in zip(feeds, starts, strict=True):
        assert feed["patches"].shape == (1, 187, 96)
        np.testing.assert_array_equal(feed["patches"][0], spectrogram[start : start + 187])
    # shorter than one patch: one patch, padded with what silence gives (log10(1) = 0)
    short = prepare_inputs(manifest, y[:16000], 16000)
    assert len(short) == 1 and np.all(short[0]["patches"][0, 63:] == 0.0)


def test_unknown_or_bad_parameters_are_named():
    with pytest.raises(UsageError, match="unknown n_bins"):
        settings({"n_bins": 96}, "m.yaml")
    with pytest.raises(UsageError, match="pad_mode: expected one of reflect, constant"):
        settings({"pad_mode": "edge"}, "m.yaml")
