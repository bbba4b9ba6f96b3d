"""`log-mel` entries (DCASE 2018): log mel spectrogram over the whole signal, cut into patches."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from zoo.errors import UsageError, ZooError
from zoo.frontends.base import Feeds, FrontEnd, Scaler, patch_hop, register_frontend
from zoo.frontends.signal import pad_clip, reshape_input

if TYPE_CHECKING:
    from zoo.manifest import Manifest, TensorSpec


def hz_to_mel(freq: np.ndarray | float) -> np.ndarray:
    """Slaney's mel scale (librosa's default, htk=False): linear below 1 kHz, logarithmic above."""
    freq = np.asarray(freq, dtype=np.float64)
    f_sp = 200.0 / 3
    min_log_hz = 1000.0
    min_log_mel = min_log_hz / f_sp
    logstep = np.log(6.4) / 27.0
    mels = freq / f_sp
    return np.where(
        freq >= min_log_hz, min_log_mel + np.log(np.maximum(freq, 1e-10) / min_log_hz) / logstep, mels
    )


def mel_to_hz(mels: np.ndarray | float) -> np.ndarray:
    mels = np.asarray(mels, dtype=np.float64)
    f_sp = 200.0 / 3
    min_log_hz = 1000.0
    min_log_mel = min_log_hz / f_sp
    logstep = np.log(6.4) / 27.0
    return np.where(mels >= min_log_mel, min_log_hz * np.exp(logstep * (mels - min_log_mel)), f_sp * mels)


def mel_filters(sample_rate: int, n_fft: int, n_mels: int, fmin: float, fmax: float) -> np.ndarray:
    """Triangular mel filters with Slaney area normalisation, shape (n_mels, 1 + n_fft // 2).

    The same matrix as librosa.filters.mel(sr, n_fft, n_mels, fmin, fmax) with its defaults
    (htk=False, norm='slaney'), which upstream DCASE code used; written out so librosa is not needed.
    """
    fft_freqs = np.linspace(0.0, sample_rate / 2.0, 1 + n_fft // 2)
    mel_points = mel_to_hz(np.linspace(hz_to_mel(fmin), hz_to_mel(fmax), n_mels + 2))
    widths = np.diff(mel_points)
    ramps = mel_points[:, None] - fft_freqs[None, :]
    lower = -ramps[:-2] / widths[:-1, None]
    upper = ramps[2:] / widths[1:, None]
    weights = np.maximum(0.0, np.minimum(lower, upper))
    weights *= (2.0 / (mel_points[2 : n_mels + 2] - mel_points[:n_mels]))[:, None]
    return weights.astype(np.float32)


def log_mel(audio: np.ndarray, sample_rate: int, params: dict[str, Any]) -> np.ndarray:
    """Log mel spectrogram (frames, mel_bins) as Kong's DCASE 2018 code makes it.

    scipy.signal.spectrogram with numpy's (symmetric) Hamming window, no detrending, one-sided
    magnitude, no centre padding and scipy's default fs=1 density scaling (upstream passes no rate),
    then mel filters and log(x + offset).
    """
    from scipy.signal import spectrogram

    n_fft = int(params.get("n_fft", 2048))
    hop = int(params.get("hop", 1024))
    mel_bins = int(params.get("mel_bins", 64))
    fmin = float(params.get("fmin", 50))
    fmax = float(params.get("fmax", sample_rate / 2))
    offset = float(params.get("log_offset", 1e-8))
    window_name = str(params.get("window", "hamming"))
    windows = {"hamming": np.hamming, "hann": np.hanning, "hanning": np.hanning}
    if window_name not in windows:
        raise UsageError(
            f"audio.features.params.window: expected one of {', '.join(windows)}, got {window_name!r}."
        )
    if audio.shape[0] < n_fft:
        audio = pad_clip(audio, n_fft, "zero")
    _, _, magnitude = spectrogram(
        audio.astype(np.float64),
        fs=1.0,
        window=windows[window_name](n_fft),
        nperseg=n_fft,
        noverlap=n_fft - hop,
        detrend=False,
        return_onesided=True,
        mode="magnitude",
    )
    mel = magnitude.T @ mel_filters(sample_rate, n_fft, mel_bins, fmin, fmax).T.astype(np.float64)
    logged: np.ndarray = np.log(mel + offset)
    return logged.astype(np.float32)


def patch_starts(total: int, length: int, hop: int) -> list[int]:
    if total <= length:
        return [0]
    return [i * hop for i in range(1 + int(np.ceil((total - length) / hop)))]


@register_frontend
class LogMel(FrontEnd):
    """Log mel over the whole signal, then patches of the input's frame count (hop from audio.clip).

    Takes an optional per-bin *scaler* (mean, std) from the user's training set (`scaler: user`);
    without it the features are left unstandardised.
    """

    kind = "log-mel"

    def window(self, manifest: Manifest) -> tuple[int, int]:
        """A patch of P frames spans (P - 1) hops plus one FFT of samples."""
        assert manifest.audio.features is not None  # frontend_for chose this class by it
        params = manifest.audio.features.params
        n_fft, step = int(params.get("n_fft", 2048)), int(params.get("hop", 1024))
        patch = int(manifest.inputs[0].shape[-2])
        return (patch - 1) * step + n_fft, patch_hop(manifest, patch) * step

    def feeds(
        self, manifest: Manifest, signal: np.ndarray, input_spec: TensorSpec, scaler: Scaler | None
    ) -> list[Feeds]:
        assert manifest.audio.features is not None  # frontend_for chose this class by it
        params = dict(manifest.audio.features.params)
        rate = manifest.audio.sample_rate
        frames = log_mel(signal, rate, params)
        if scaler is not None:
            mean, std = (np.asarray(a, dtype=np.float32) for a in scaler)
            frames = (frames - mean) / std
        patch_frames, bins = int(input_spec.shape[-2]), int(input_spec.shape[-1])
        if frames.shape[1] != bins:
            raise ZooError(
                f"{manifest.path}: audio.features.params.mel_bins gives {frames.shape[1]} bins but input "
                f"{input_spec.name!r} expects {bins}."
            )
        hop_frames = patch_hop(manifest, patch_frames)
        pad = manifest.audio.clip.pad if manifest.audio.clip is not None else "zero"
        feeds = []
        for start in patch_starts(frames.shape[0], patch_frames, hop_frames):
            patch = frames[start : start + patch_frames]
            if patch.shape[0] < patch_frames:
                padded = np.zeros((patch_frames, bins), dtype=np.float32)
                if pad == "repeat":
                    reps = int(np.ceil(patch_frames / patch.shape[0]))
                    padded = np.tile(patch, (reps, 1))[:patch_frames]
                else:
                    padded[: patch.shape[0]] = patch
                patch = padded
            feeds.append({input_spec.name: reshape_input(patch, input_spec.shape, str(manifest.path))})
        return feeds
