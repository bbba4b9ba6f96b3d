"""`stft-magnitude-image` entries (Kahl's AED): spectrogram images of 3 s chunks."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from zoo.frontends.base import Feeds, FrontEnd, Scaler, register_frontend
from zoo.frontends.signal import pad_clip, reshape_input

if TYPE_CHECKING:
    from zoo.manifest import Manifest, TensorSpec

#: Kahl's AED keeps a trailing chunk only when it is at least this long (upstream splitSignal)
MIN_CHUNK_SECONDS = 1.0


def stft_magnitude_image(chunk: np.ndarray, params: dict[str, Any]) -> np.ndarray:
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
    chunk = pad_clip(chunk, (count - 1) * step + frame, "zero")
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


def split_chunks_upstream(signal: np.ndarray, length: int, hop: int, minimum: int) -> list[np.ndarray]:
    """Chunks starting every *hop* samples, shorter tails kept (unpadded) if at least *minimum* long."""
    chunks = [signal[i : i + length] for i in range(0, signal.shape[0], hop)]
    chunks = [c for c in chunks if c.shape[0] >= minimum]
    return chunks or [signal]


@register_frontend
class StftImage(FrontEnd):
    """Spectrogram images of 3 s chunks every hop; a short chunk gives a narrower image, zero-padded."""

    kind = "stft-magnitude-image"

    def window(self, manifest: Manifest) -> tuple[int, int]:
        clip, rate = manifest.audio.clip, manifest.audio.sample_rate
        length = int(round((clip.seconds if clip else 3.0) * rate))
        return length, int(round(clip.hop * rate)) if clip and clip.hop else length

    def feeds(
        self, manifest: Manifest, signal: np.ndarray, input_spec: TensorSpec, scaler: Scaler | None
    ) -> list[Feeds]:
        assert manifest.audio.features is not None  # frontend_for chose this class by it
        params = dict(manifest.audio.features.params)
        rate = manifest.audio.sample_rate
        length, hop = self.window(manifest)
        minimum = int(round(float(params.get("min_seconds", MIN_CHUNK_SECONDS)) * rate))
        feeds = []
        for chunk in split_chunks_upstream(signal, length, hop, minimum):
            image = stft_magnitude_image(chunk, params)
            feeds.append({input_spec.name: reshape_input(image, input_spec.shape, str(manifest.path))})
        return feeds
