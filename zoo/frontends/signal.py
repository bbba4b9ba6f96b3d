"""Waveform helpers every front end shares: mono, resampling, normalisation, clips, input shapes.

Written with numpy and scipy only, so the same feeds go to the source framework and to every
converted artifact.
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np

from zoo.errors import UsageError, ZooError

#: z-score guard used by AclNet's host code: (x - mean) / (std + 1e-15)
ZSCORE_EPS = 1e-15


def to_mono(audio: np.ndarray) -> np.ndarray:
    """Float32 mono; a 2-D array is treated as (samples, channels) or (channels, samples)."""
    audio = np.asarray(audio, dtype=np.float32)
    if audio.ndim == 1:
        return audio
    if audio.ndim == 2:
        channel_axis = 0 if audio.shape[0] < audio.shape[1] else 1
        mono: np.ndarray = audio.mean(axis=channel_axis).astype(np.float32)
        return mono
    raise UsageError(f"audio must be 1-D (mono) or 2-D (multi-channel), got shape {audio.shape}.")


def resample(audio: np.ndarray, rate_in: int, rate_out: int) -> np.ndarray:
    """Polyphase resampling (scipy.signal.resample_poly) by the exact rational ratio."""
    if rate_in == rate_out:
        return audio.astype(np.float32, copy=False)
    from scipy.signal import resample_poly

    ratio = Fraction(rate_out, rate_in)
    resampled: np.ndarray = resample_poly(audio.astype(np.float64), ratio.numerator, ratio.denominator)
    return resampled.astype(np.float32)


def zscore(clip: np.ndarray) -> np.ndarray:
    clip = clip.astype(np.float64)
    scaled: np.ndarray = (clip - clip.mean()) / (clip.std() + ZSCORE_EPS)
    return scaled.astype(np.float32)


def peak_normalize(audio: np.ndarray) -> np.ndarray:
    peak = float(np.max(np.abs(audio))) if audio.size else 0.0
    if peak == 0.0:
        return audio.astype(np.float32)
    return (audio / peak).astype(np.float32)


def split_clips(audio: np.ndarray, length: int, hop: int, pad: str = "zero") -> list[np.ndarray]:
    """Clips of *length* samples every *hop* samples; the last one padded (zero/repeat) or dropped (none).

    Audio shorter than one clip still gives one (padded) clip, so every input yields a prediction.
    """
    if length <= 0 or hop <= 0:
        raise UsageError(f"clip length and hop must be positive, got {length} and {hop}.")
    total = audio.shape[0]
    if total <= length:
        starts = [0]
    else:
        count = 1 + int(np.ceil((total - length) / hop))
        starts = [i * hop for i in range(count)]
        if pad == "none":
            starts = [s for s in starts if s + length <= total] or [0]
    clips = []
    for start in starts:
        clip = audio[start : start + length]
        if clip.shape[0] < length:
            clip = pad_clip(clip, length, pad)
        clips.append(clip.astype(np.float32, copy=False))
    return clips


def pad_clip(clip: np.ndarray, length: int, pad: str) -> np.ndarray:
    if pad == "repeat" and clip.shape[0] > 0:
        reps = int(np.ceil(length / clip.shape[0]))
        return np.tile(clip, reps)[:length]
    out = np.zeros(length, dtype=np.float32)
    out[: clip.shape[0]] = clip
    return out


def reshape_input(clip: np.ndarray, shape: list[int | str], origin: str) -> np.ndarray:
    """*clip* as the input's shape (dynamic dimensions become 1), float32."""
    static = [d if isinstance(d, int) else 1 for d in shape]
    if int(np.prod(static)) != clip.size:
        raise ZooError(f"{origin}: a clip of {clip.size} values does not fit the input shape {shape}.")
    return clip.reshape(static).astype(np.float32, copy=False)
