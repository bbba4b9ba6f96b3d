"""`vggish-embeddings` entries (AudioSet attention): the input is VGGish + PCA output, not audio.

The entry alone cannot be fed from audio: its own verification, calibration and benchmarks use
seeded synthetic embeddings drawn like the real ones. With a `chain` (zoo.composite), predict
hands it waveform windows of `frames` VGGish examples, which the chained runner turns into codes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from zoo.errors import ZooError
from zoo.frontends.base import Feeds, FrontEnd, Scaler, register_frontend
from zoo.frontends.signal import reshape_input

if TYPE_CHECKING:
    from zoo.manifest import Manifest, TensorSpec

#: fixes the per-dimension levels of synthetic VGGish embeddings (the same space for every seed)
EMBEDDING_PROFILE_SEED = 128


@register_frontend
class VggishEmbeddings(FrontEnd):
    """Embeddings computed upstream: refused as audio, synthesised for tests."""

    kind = "vggish-embeddings"
    takes_audio = False

    def window(self, manifest: Manifest) -> tuple[int, int]:
        """A composite's window (its chained VGGish examples); embeddings alone are not audio."""
        if manifest.chain is None:
            return super().window(manifest)
        from zoo.composite.runner import window_geometry

        return window_geometry(manifest)

    def prepare(
        self, manifest: Manifest, audio: np.ndarray, sample_rate: int, *, scaler: Scaler | None = None
    ) -> list[Feeds]:
        origin = f"{manifest.path or manifest.name}"
        if manifest.chain is not None:  # a composite: the chained runner makes the codes
            from zoo.composite.runner import WAVEFORM
            from zoo.frontends.signal import resample, split_clips, to_mono

            signal = resample(to_mono(audio), int(sample_rate), manifest.audio.sample_rate)
            length, hop = self.window(manifest)
            return [{WAVEFORM: clip} for clip in split_clips(signal, length, hop, "zero")]
        raise ZooError(
            f"{origin}: {manifest.name} takes VGGish + PCA embeddings (audio.features.kind: vggish-embeddings), "
            "not audio, and its manifest names no chain (zoo.composite) to make them: feed it embeddings "
            "you computed with VGGish, or use synthetic_feature_inputs() for tests."
        )

    def feeds(
        self, manifest: Manifest, signal: np.ndarray, input_spec: TensorSpec, scaler: Scaler | None
    ) -> list[Feeds]:
        return self.prepare(manifest, signal, manifest.audio.sample_rate)

    def synthetic_inputs(self, manifest: Manifest, count: int, seed: int = 0) -> list[Feeds]:
        """uint8 frames mapped to float by (x - 128) / 128, drawn like PCA-quantised embeddings.

        Every dimension has its own typical level (one fixed profile for all seeds, as the
        embedding space is the same for every clip), each clip moves around it, and frames drift
        smoothly in time.
        """
        rng = np.random.RandomState(seed)
        spec = manifest.inputs[0]
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
            feeds.append({spec.name: reshape_input(value, spec.shape, str(manifest.path))})
        return feeds
