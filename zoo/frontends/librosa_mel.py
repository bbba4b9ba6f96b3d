"""`librosa-mel` entries (musicnn): librosa's melspectrogram, optionally rounded and log-compressed.

Exactly what `librosa.feature.melspectrogram(y, sr, n_fft, hop_length, n_mels)` computes, written
with numpy so librosa is not a dependency: frames centred by padding n_fft // 2 samples on both
sides (pad mode 'reflect', librosa's default until 0.10, the one musicnn's librosa >= 0.7 used;
librosa 0.10 changed it to 'constant': `pad_mode` says which), a periodic Hann window, |STFT|^power,
then Slaney mel filters (zoo.frontends.logmel.mel_filters, librosa's conventions). musicnn then
casts to float16 (`cast: float16`) and takes log10(10000 x + 1) (`log_scale: 10000`), and cuts
the (frames, mels) spectrogram into patches of the input's frame count every `audio.clip.hop`
(musicnn: back to back, the last partial patch dropped: `clip.pad: none`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from zoo.errors import UsageError
from zoo.frontends.base import Feeds, FrontEnd, Scaler, patch_hop, register_frontend
from zoo.frontends.logmel import mel_filters
from zoo.frontends.signal import reshape_input

if TYPE_CHECKING:
    from zoo.manifest import Manifest, TensorSpec

#: every parameter this front end reads, with its default (librosa's, where librosa has one)
DEFAULTS: dict[str, Any] = {
    "n_fft": 2048,
    "hop_length": 512,
    "n_mels": 128,
    "fmin": 0.0,
    "fmax": None,
    "power": 2.0,
    "center": True,
    "pad_mode": "reflect",
    "cast": None,
    "log_scale": None,
}
PAD_MODES = ("reflect", "constant")


def settings(params: dict[str, Any], origin: str) -> dict[str, Any]:
    """The manifest's params over the defaults; an unknown or out-of-range one is a UsageError."""
    unknown = sorted(set(params) - set(DEFAULTS))
    if unknown:
        raise UsageError(
            f"{origin}: field audio.features.params: unknown {', '.join(unknown)} "
            f"(librosa-mel reads {', '.join(DEFAULTS)})."
        )
    values = {**DEFAULTS, **params}
    if values["pad_mode"] not in PAD_MODES:
        raise UsageError(
            f"{origin}: field audio.features.params.pad_mode: expected one of {', '.join(PAD_MODES)}, "
            f"got {values['pad_mode']!r}."
        )
    if values["cast"] not in (None, "float16"):
        raise UsageError(
            f"{origin}: field audio.features.params.cast: expected float16 or nothing, got {values['cast']!r}."
        )
    return values


def stft_power(
    signal: np.ndarray, n_fft: int, hop: int, power: float, center: bool, pad_mode: str
) -> np.ndarray:
    """|STFT|^power, shape (1 + n_fft // 2, frames), as librosa.stft frames and windows it."""
    y = np.asarray(signal, dtype=np.float64)
    if center:
        y = np.pad(y, n_fft // 2, mode="reflect" if pad_mode == "reflect" else "constant")
    if y.shape[0] < n_fft:
        raise UsageError(f"a signal of {signal.shape[0]} samples is shorter than one frame of {n_fft}.")
    frames = 1 + (y.shape[0] - n_fft) // hop
    window = 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(n_fft) / n_fft)  # periodic Hann (fftbins=True)
    strided = np.lib.stride_tricks.sliding_window_view(y, n_fft)[::hop][:frames]
    spectrum = np.fft.rfft(strided * window, axis=1)
    magnitude: np.ndarray = np.abs(spectrum).T ** power
    return magnitude


def melspectrogram(signal: np.ndarray, sample_rate: int, params: dict[str, Any]) -> np.ndarray:
    """(frames, n_mels) float32: librosa's melspectrogram, then the optional cast and log compression."""
    n_fft, hop, n_mels = int(params["n_fft"]), int(params["hop_length"]), int(params["n_mels"])
    fmax = float(params["fmax"]) if params["fmax"] is not None else sample_rate / 2.0
    power = stft_power(
        signal, n_fft, hop, float(params["power"]), bool(params["center"]), str(params["pad_mode"])
    )
    mel = mel_filters(sample_rate, n_fft, n_mels, float(params["fmin"]), fmax).astype(np.float64) @ power
    frames = mel.T.astype(np.float32)
    if params["cast"] == "float16":
        frames = frames.astype(np.float16)
    if params["log_scale"] is not None:
        frames = np.log10(float(params["log_scale"]) * frames.astype(np.float64) + 1.0)
    return np.asarray(frames, dtype=np.float32)


@register_frontend
class LibrosaMel(FrontEnd):
    """librosa's mel spectrogram over the whole signal, cut into patches of the input's frame count."""

    kind = "librosa-mel"

    def window(self, manifest: Manifest) -> tuple[int, int]:
        """Centred frames every hop_length samples: a patch of P frames spans (P - 1) hops."""
        assert manifest.audio.features is not None  # frontend_for chose this class by it
        step = int(manifest.audio.features.params.get("hop_length", DEFAULTS["hop_length"]))
        patch = int(manifest.inputs[0].shape[-2])
        return (patch - 1) * step, patch_hop(manifest, patch) * step

    def feeds(
        self, manifest: Manifest, signal: np.ndarray, input_spec: TensorSpec, scaler: Scaler | None
    ) -> list[Feeds]:
        assert manifest.audio.features is not None  # frontend_for chose this class by it
        origin = str(manifest.path or manifest.name)
        params = settings(dict(manifest.audio.features.params), origin)
        length, bins = int(input_spec.shape[-2]), int(input_spec.shape[-1])
        if int(params["n_mels"]) != bins:
            raise UsageError(
                f"{origin}: field audio.features.params.n_mels: {params['n_mels']} bins, but input "
                f"{input_spec.name!r} takes {bins}."
            )
        frames = melspectrogram(signal, manifest.audio.sample_rate, params)
        clip = manifest.audio.clip
        hop = patch_hop(manifest, length)
        pad = clip.pad if clip is not None else "zero"
        # what silence gives, for padding: every input yields at least one patch
        silent = melspectrogram(np.zeros(2 * int(params["n_fft"])), manifest.audio.sample_rate, params)[0]
        if frames.shape[0] < length:
            frames = np.concatenate([frames, np.tile(silent, (length - frames.shape[0], 1))])
        starts = list(range(0, frames.shape[0] - length + 1, hop))
        if pad != "none" and starts[-1] + length < frames.shape[0]:
            starts.append(starts[-1] + hop)  # the partial last patch, padded with silence
            frames = np.concatenate([frames, np.tile(silent, (starts[-1] + length - frames.shape[0], 1))])
        return [
            {input_spec.name: reshape_input(frames[start : start + length], input_spec.shape, origin)}
            for start in starts
        ]
