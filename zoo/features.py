"""Host-side preprocessing: audio in, one feed dict per network call out.

Everything the manifest's `audio` section says a user must do before the network
(resampling, normalisation, clipping, spectrogram front ends) lives here, written
with numpy and scipy only, so the same feeds go to the source framework and to
every converted artifact.
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np

from zoo.errors import UsageError, ZooError

#: z-score guard used by AclNet's host code: (x - mean) / (std + 1e-15)
ZSCORE_EPS = 1e-15
#: fixes the per-dimension levels of synthetic VGGish embeddings (the same space for every seed)
EMBEDDING_PROFILE_SEED = 128


# -- waveform helpers -----------------------------------------------------------


def to_mono(audio: np.ndarray) -> np.ndarray:
    """Float32 mono; a 2-D array is treated as (samples, channels) or (channels, samples)."""
    audio = np.asarray(audio, dtype=np.float32)
    if audio.ndim == 1:
        return audio
    if audio.ndim == 2:
        channel_axis = 0 if audio.shape[0] < audio.shape[1] else 1
        return audio.mean(axis=channel_axis).astype(np.float32)
    raise UsageError(f"audio must be 1-D (mono) or 2-D (multi-channel), got shape {audio.shape}.")


def resample(audio: np.ndarray, rate_in: int, rate_out: int) -> np.ndarray:
    """Polyphase resampling (scipy.signal.resample_poly) by the exact rational ratio."""
    if rate_in == rate_out:
        return audio.astype(np.float32, copy=False)
    from scipy.signal import resample_poly

    ratio = Fraction(rate_out, rate_in)
    return resample_poly(audio.astype(np.float64), ratio.numerator, ratio.denominator).astype(np.float32)


def zscore(clip: np.ndarray) -> np.ndarray:
    clip = clip.astype(np.float64)
    return ((clip - clip.mean()) / (clip.std() + ZSCORE_EPS)).astype(np.float32)


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
            clip = _pad(clip, length, pad)
        clips.append(clip.astype(np.float32, copy=False))
    return clips


def _pad(clip: np.ndarray, length: int, pad: str) -> np.ndarray:
    if pad == "repeat" and clip.shape[0] > 0:
        reps = int(np.ceil(length / clip.shape[0]))
        return np.tile(clip, reps)[:length]
    out = np.zeros(length, dtype=np.float32)
    out[: clip.shape[0]] = clip
    return out


# -- spectrogram front ends -------------------------------------------------------


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


def log_mel(audio: np.ndarray, sample_rate: int, params: dict) -> np.ndarray:
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
        audio = _pad(audio, n_fft, "zero")
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
    return np.log(mel + offset).astype(np.float32)


def stft_magnitude_image(chunk: np.ndarray, params: dict) -> np.ndarray:
    """Kahl's spectrogram image (height, width) in [0, 1], highest frequency in row 0.

    Rectangular frames of `frame` samples every `step`; numpy's rfft with n=nfft (which keeps the
    first nfft samples of each frame, as upstream did); magnitude; rotated so frequency runs top-down;
    min-max normalised; cropped or zero-padded to width x height. The final resize of upstream is
    the identity once the image has that size, so it is not repeated.
    """
    frame = int(params.get("frame", 882))
    step = int(params.get("step", 258))
    nfft = int(params.get("nfft", 511))
    height = int(params.get("height", 256))
    width = int(params.get("width", 512))
    # frames as python_speech_features' framesig makes them: the last one is completed with zeros
    count = 1 if chunk.shape[0] <= frame else 1 + int(np.ceil((chunk.shape[0] - frame) / step))
    chunk = _pad(chunk, (count - 1) * step + frame, "zero")
    index = np.arange(frame)[None, :] + step * np.arange(count)[:, None]
    frames = chunk.astype(np.float64)[index]
    magnitude = np.abs(np.fft.rfft(frames, n=nfft, axis=1))  # (frames, nfft // 2 + 1)
    image = np.rot90(magnitude)  # (bins, frames), row 0 = highest bin
    if params.get("flip", True) is False:
        image = image[::-1]
    low, high = float(image.min()), float(image.max())
    # upstream divides by zero on silence (NaN image); a flat image maps to zeros here
    image = (image - low) / (high - low) if high > low else np.zeros_like(image)
    out = np.zeros((height, width), dtype=np.float32)
    rows, cols = min(height, image.shape[0]), min(width, image.shape[1])
    out[:rows, :cols] = image[:rows, :cols]
    return out


# -- the contract -------------------------------------------------------------------


def _reshape(clip: np.ndarray, shape: list, origin: str) -> np.ndarray:
    static = [d if isinstance(d, int) else 1 for d in shape]
    if int(np.prod(static)) != clip.size:
        raise ZooError(f"{origin}: a clip of {clip.size} values does not fit the input shape {shape}.")
    return clip.reshape(static).astype(np.float32, copy=False)


def _clip_samples(manifest, input_spec) -> int:
    """Samples per network call: the waveform input's static size, else the manifest's clip seconds."""
    static = [d for d in input_spec.shape if isinstance(d, int)]
    if all(isinstance(d, int) for d in input_spec.shape):
        return int(np.prod(static))
    if manifest.audio.clip is None:
        raise ZooError(
            f"{manifest.path}: input {input_spec.name!r} has a dynamic shape and audio.clip is missing."
        )
    return int(round(manifest.audio.clip.seconds * manifest.audio.sample_rate))


def _hop_samples(manifest, length: int) -> int:
    clip = manifest.audio.clip
    if clip is None or clip.hop is None:
        return length
    return max(1, int(round(clip.hop * manifest.audio.sample_rate)))


def prepare_inputs(
    manifest,
    audio: np.ndarray,
    sample_rate: int,
    *,
    scaler: tuple[np.ndarray, np.ndarray] | None = None,
) -> list[dict[str, np.ndarray]]:
    """Mono audio at *sample_rate* -> one feed dict per network call, as the manifest's `audio` says.

    Streaming entries (audio.streaming) get one feed per chunk holding only the chunk input; the
    caller carries the recurrent inputs. Log-mel entries take an optional per-bin *scaler*
    (mean, std) from the user's training set (`scaler: user`); without it the features are left
    unstandardised. VGGish-embedding entries cannot be fed from audio here (no VGGish in zoo).
    """
    spec = manifest.audio
    origin = f"{manifest.path or manifest.name}"
    signal = resample(to_mono(audio), int(sample_rate), spec.sample_rate)
    features = spec.features
    first = manifest.inputs[0]

    if features is not None and features.kind == "vggish-embeddings":
        raise ZooError(
            f"{origin}: {manifest.name} takes VGGish + PCA embeddings (audio.features.kind: vggish-embeddings), "
            "not audio, and zoo has no VGGish front end: feed it embeddings you computed with VGGish, "
            "or use synthetic_feature_inputs() for tests."
        )
    if spec.normalize == "peak":
        signal = peak_normalize(signal)

    if features is not None and features.kind == "log-mel":
        return _log_mel_feeds(manifest, signal, first, scaler)
    if features is not None and features.kind == "stft-magnitude-image":
        return _image_feeds(manifest, signal, first)

    length = _clip_samples(manifest, first)
    hop = length if spec.streaming else _hop_samples(manifest, length)
    pad = spec.clip.pad if spec.clip is not None else "zero"
    feeds = []
    for clip in split_clips(signal, length, hop, pad):
        if spec.normalize == "zscore":
            clip = zscore(clip)
        feeds.append({first.name: _reshape(clip, first.shape, origin)})
    return feeds


def _log_mel_feeds(manifest, signal, input_spec, scaler) -> list[dict[str, np.ndarray]]:
    """Log mel over the whole signal, then patches of the input's frame count (hop from audio.clip)."""
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
    hop_frames = patch_frames
    if manifest.audio.clip is not None and manifest.audio.clip.hop is not None:
        ratio = manifest.audio.clip.hop / manifest.audio.clip.seconds
        hop_frames = max(1, int(round(patch_frames * ratio)))
    pad = manifest.audio.clip.pad if manifest.audio.clip is not None else "zero"
    feeds = []
    for start in _patch_starts(frames.shape[0], patch_frames, hop_frames):
        patch = frames[start : start + patch_frames]
        if patch.shape[0] < patch_frames:
            padded = np.zeros((patch_frames, bins), dtype=np.float32)
            if pad == "repeat":
                reps = int(np.ceil(patch_frames / patch.shape[0]))
                padded = np.tile(patch, (reps, 1))[:patch_frames]
            else:
                padded[: patch.shape[0]] = patch
            patch = padded
        feeds.append({input_spec.name: _reshape(patch, input_spec.shape, str(manifest.path))})
    return feeds


def _patch_starts(total: int, length: int, hop: int) -> list[int]:
    if total <= length:
        return [0]
    return [i * hop for i in range(1 + int(np.ceil((total - length) / hop)))]


#: Kahl's AED keeps a trailing chunk only when it is at least this long (upstream splitSignal)
MIN_CHUNK_SECONDS = 1.0


def split_chunks_upstream(signal: np.ndarray, length: int, hop: int, minimum: int) -> list[np.ndarray]:
    """Chunks starting every *hop* samples, shorter tails kept (unpadded) if at least *minimum* long."""
    chunks = [signal[i : i + length] for i in range(0, signal.shape[0], hop)]
    chunks = [c for c in chunks if c.shape[0] >= minimum]
    return chunks or [signal]


def _image_feeds(manifest, signal, input_spec) -> list[dict[str, np.ndarray]]:
    """Spectrogram images of 3 s chunks every hop; a short chunk gives a narrower image, zero-padded."""
    params = dict(manifest.audio.features.params)
    clip = manifest.audio.clip
    rate = manifest.audio.sample_rate
    length = int(round((clip.seconds if clip else 3.0) * rate))
    hop = int(round(clip.hop * rate)) if clip and clip.hop else length
    minimum = int(round(float(params.get("min_seconds", MIN_CHUNK_SECONDS)) * rate))
    feeds = []
    for chunk in split_chunks_upstream(signal, length, hop, minimum):
        image = stft_magnitude_image(chunk, params)
        feeds.append({input_spec.name: _reshape(image, input_spec.shape, str(manifest.path))})
    return feeds


def synthetic_feature_inputs(manifest, count: int, seed: int = 0) -> list[dict[str, np.ndarray]]:
    """Seeded, plausible inputs for entries whose input is not audio-derived here.

    VGGish embeddings: uint8 frames mapped to float by (x - 128) / 128, drawn like PCA-quantised
    embeddings: every dimension has its own typical level (one fixed profile for all seeds, as
    the embedding space is the same for every clip), each clip moves around it, and frames drift
    smoothly in time. Other entries: features of seeded noise through prepare_inputs.
    """
    rng = np.random.RandomState(seed)
    spec = manifest.inputs[0]
    features = manifest.audio.features
    if features is not None and features.kind == "vggish-embeddings":
        frames, dims = int(spec.shape[-2]), int(spec.shape[-1])
        profile = np.random.RandomState(EMBEDDING_PROFILE_SEED).normal(128.0, 24.0, size=(1, dims))
        spread = np.linspace(30.0, 8.0, dims)[None, :]  # PCA: leading components vary most
        feeds = []
        for _ in range(count):
            clip = profile + rng.normal(0.0, 1.0, size=(1, dims)) * spread
            steps = (
                rng.normal(0.0, 1.0, size=(frames, dims)).cumsum(axis=0)
                / np.sqrt(np.arange(1, frames + 1))[:, None]
            )
            raw = np.clip(np.rint(clip + steps * spread * 0.5), 0, 255).astype(np.uint8)
            value = (raw.astype(np.float32) - 128.0) / 128.0
            feeds.append({spec.name: _reshape(value, spec.shape, str(manifest.path))})
        return feeds
    rate = manifest.audio.sample_rate
    seconds = manifest.audio.clip.seconds if manifest.audio.clip is not None else 1.0
    feeds = []
    while len(feeds) < count:
        level = 10 ** rng.uniform(-2, 0)
        noise = (rng.standard_normal(int(seconds * rate)) * level).astype(np.float32)
        feeds.extend(prepare_inputs(manifest, noise, rate))
    return feeds[:count]
