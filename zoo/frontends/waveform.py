"""Entries without features: the network takes waveform clips (z-scored if the manifest says so)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from zoo.errors import ZooError
from zoo.frontends.base import Feeds, FrontEnd, Scaler, register_frontend
from zoo.frontends.signal import reshape_input, split_clips, zscore

if TYPE_CHECKING:
    from zoo.manifest import Manifest, TensorSpec


def clip_samples(manifest: Manifest, input_spec: TensorSpec) -> int:
    """Samples per network call: the waveform input's static size, else the manifest's clip seconds."""
    static = [d for d in input_spec.shape if isinstance(d, int)]
    if all(isinstance(d, int) for d in input_spec.shape):
        return int(np.prod(static))
    if manifest.audio.clip is None:
        raise ZooError(
            f"{manifest.path}: input {input_spec.name!r} has a dynamic shape and audio.clip is missing."
        )
    return int(round(manifest.audio.clip.seconds * manifest.audio.sample_rate))


def hop_samples(manifest: Manifest, length: int) -> int:
    clip = manifest.audio.clip
    if clip is None or clip.hop is None:
        return length
    return max(1, int(round(clip.hop * manifest.audio.sample_rate)))


@register_frontend
class WaveformClips(FrontEnd):
    """Clips of the input's length every audio.clip.hop; streaming entries get back-to-back chunks.

    Streaming entries (audio.streaming) get one feed per chunk holding only the chunk input; the
    caller carries the recurrent inputs.
    """

    kind = None

    def window(self, manifest: Manifest) -> tuple[int, int]:
        length = clip_samples(manifest, manifest.inputs[0])
        return length, length if manifest.audio.streaming else hop_samples(manifest, length)

    def feeds(
        self, manifest: Manifest, signal: np.ndarray, input_spec: TensorSpec, scaler: Scaler | None
    ) -> list[Feeds]:
        spec = manifest.audio
        origin = f"{manifest.path or manifest.name}"
        length = clip_samples(manifest, input_spec)
        hop = length if spec.streaming else hop_samples(manifest, length)
        pad = spec.clip.pad if spec.clip is not None else "zero"
        feeds = []
        for clip in split_clips(signal, length, hop, pad):
            if spec.normalize == "zscore":
                clip = zscore(clip)
            feeds.append({input_spec.name: reshape_input(clip, input_spec.shape, origin)})
        return feeds
