"""Host-side preprocessing: audio in, one feed dict per network call out.

Everything the manifest's `audio` section says a user must do before the network (resampling,
normalisation, clipping, spectrogram front ends) lives here, one `FrontEnd` class per
`audio.features.kind`, so the same feeds go to the source framework and to every artifact.
Callers use `prepare_inputs` / `synthetic_feature_inputs`, or `frontend_for(manifest)`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from zoo.frontends import (  # noqa: F401 - their front ends register
    embeddings,
    image,
    librosa_mel,
    logmel,
    vggish,
    waveform,
)
from zoo.frontends.base import Feeds, FrontEnd, Scaler, frontend_for, register_frontend

if TYPE_CHECKING:
    from zoo.manifest import Manifest

__all__ = [
    "Feeds",
    "FrontEnd",
    "frontend_for",
    "prepare_inputs",
    "register_frontend",
    "synthetic_feature_inputs",
]


def prepare_inputs(
    manifest: Manifest, audio: np.ndarray, sample_rate: int, *, scaler: Scaler | None = None
) -> list[Feeds]:
    """Mono audio at *sample_rate* -> one feed dict per network call, as the manifest's `audio` says."""
    return frontend_for(manifest).prepare(manifest, audio, sample_rate, scaler=scaler)


def synthetic_feature_inputs(manifest: Manifest, count: int, seed: int = 0) -> list[Feeds]:
    """Seeded, plausible inputs: synthetic features where the input is not audio-derived here, else
    seeded noise through prepare_inputs."""
    return frontend_for(manifest).synthetic_inputs(manifest, count, seed)
