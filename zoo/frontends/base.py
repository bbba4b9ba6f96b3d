"""The front-end contract: one class per `audio.features.kind`, found by `frontend_for(manifest)`."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, ClassVar, TypeVar

import numpy as np

from zoo.errors import UsageError
from zoo.frontends.signal import peak_normalize, resample, to_mono

if TYPE_CHECKING:
    from zoo.manifest import Manifest, TensorSpec

Feeds = dict[str, np.ndarray]
Scaler = tuple[np.ndarray, np.ndarray]


class FrontEnd(ABC):
    """Host-side preprocessing: mono audio in, one feed dict per network call out."""

    #: the manifest's audio.features.kind this front end serves (None: no features, waveform clips)
    kind: ClassVar[str | None] = None
    #: False when the model's input cannot be computed from audio here (it needs an upstream model)
    takes_audio: ClassVar[bool] = True

    def prepare(
        self, manifest: Manifest, audio: np.ndarray, sample_rate: int, *, scaler: Scaler | None = None
    ) -> list[Feeds]:
        """Mono audio at *sample_rate* -> feeds: resampled, peak-normalised if asked, then `feeds`."""
        spec = manifest.audio
        signal = resample(to_mono(audio), int(sample_rate), spec.sample_rate)
        if spec.normalize == "peak":
            signal = peak_normalize(signal)
        return self.feeds(manifest, signal, manifest.inputs[0], scaler)

    @abstractmethod
    def feeds(
        self, manifest: Manifest, signal: np.ndarray, input_spec: TensorSpec, scaler: Scaler | None
    ) -> list[Feeds]:
        """Feeds for *signal*, already at the manifest's rate."""

    def window(self, manifest: Manifest) -> tuple[int, int]:
        """(samples one network call covers, samples between calls) at the manifest's rate: how
        `feeds` cuts a long signal, so a reader of long files (zoo predict) cuts it the same way."""
        raise UsageError(
            f"{manifest.path or manifest.name}: {manifest.name} takes {self.kind} as input, not audio; "
            "zoo predict runs models that take audio."
        )

    def synthetic_inputs(self, manifest: Manifest, count: int, seed: int = 0) -> list[Feeds]:
        """Seeded, plausible inputs: seeded noise at random levels through `prepare`."""
        rng = np.random.RandomState(seed)
        rate = manifest.audio.sample_rate
        seconds = manifest.audio.clip.seconds if manifest.audio.clip is not None else 1.0
        feeds: list[Feeds] = []
        while len(feeds) < count:
            level = 10 ** rng.uniform(-2, 0)
            noise = (rng.standard_normal(int(seconds * rate)) * level).astype(np.float32)
            feeds.extend(self.prepare(manifest, noise, rate))
        return feeds[:count]


def patch_hop(manifest: Manifest, patch: int) -> int:
    """Frames between spectrogram patches of *patch* frames: audio.clip.hop as a share of
    audio.clip.seconds, or back to back."""
    clip = manifest.audio.clip
    if clip is None or clip.hop is None:
        return patch
    return max(1, int(round(patch * clip.hop / clip.seconds)))


F = TypeVar("F", bound=type[FrontEnd])

_frontends: dict[str | None, FrontEnd] = {}


def register_frontend(cls: F) -> F:
    """Class decorator: serve the class's `kind` with one instance of it."""
    if cls.kind in _frontends and type(_frontends[cls.kind]).__qualname__ != cls.__qualname__:
        raise TypeError(f"front end {cls.kind!r} is declared twice ({cls.__name__}).")
    _frontends[cls.kind] = cls()
    return cls


def frontend_for(manifest: Manifest) -> FrontEnd:
    """The front end for a manifest's audio.features.kind (waveform clips when it has no features)."""
    features = manifest.audio.features
    kind = features.kind if features is not None else None
    if kind not in _frontends:
        known = ", ".join(str(k) for k in _frontends)
        raise UsageError(
            f"{manifest.path or manifest.name}: field audio.features.kind: no front end {kind!r} (known: {known})."
        )
    return _frontends[kind]
