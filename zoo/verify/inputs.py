"""What `zoo verify` feeds every model: the deterministic probe set, and the user's own recordings.

Both go through the manifest's host preprocessing (resampling, normalisation, clipping, front end),
so the source framework and every artifact see the same network calls. A streaming model's probe
or file is one stream (its chunks in order).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from zoo.audio_files import audio_files
from zoo.errors import UsageError

if TYPE_CHECKING:
    from zoo.manifest import Manifest

SYNTHETIC_COUNT = 16
STREAM_SECONDS = 10.0

Feeds = dict[str, np.ndarray]


@dataclass
class ProbeInputs:
    """Per probe (or file), the network calls it makes: clip feeds, or the chunk feeds of one stream."""

    names: list[str]
    feeds: list[list[Feeds]]
    streaming: bool = False
    kind: str = "standard"  # the probe set's kind, "synthetic-features", or "audio" for user files

    @property
    def calls(self) -> int:
        return sum(len(f) for f in self.feeds)

    def digest(self) -> str:
        """sha256 of every input array in order: the same probes give the same digest on every machine."""
        hasher = hashlib.sha256()
        for name, calls in zip(self.names, self.feeds, strict=True):
            hasher.update(name.encode() + b"\0")
            for feed in calls:
                for key in sorted(feed):
                    hasher.update(key.encode() + b"\0" + np.ascontiguousarray(feed[key]).tobytes())
        return hasher.hexdigest()


def verify_seconds(manifest: Manifest) -> float:
    """How long each verify probe is: verify.seconds, else a 10 s stream for streaming models, else one clip."""
    if manifest.verify.seconds:
        return float(manifest.verify.seconds)
    if manifest.audio.streaming:
        return STREAM_SECONDS
    if manifest.audio.clip is not None:
        return float(manifest.audio.clip.seconds)
    return 1.0


def build_inputs(manifest: Manifest, seed: int = 0) -> ProbeInputs:
    """The probe set at the manifest's rate and length, through the host preprocessing."""
    from zoo.frontends import frontend_for, prepare_inputs, synthetic_feature_inputs
    from zoo.probes import probe_set

    limit = manifest.verify.max_probes
    if not frontend_for(manifest).takes_audio:
        synthetic = synthetic_feature_inputs(manifest, min(SYNTHETIC_COUNT, limit or SYNTHETIC_COUNT), seed)
        return ProbeInputs(
            [f"synthetic-{i + 1}" for i in range(len(synthetic))],
            [[f] for f in synthetic],
            kind="synthetic-features",
        )
    rate = manifest.audio.sample_rate
    probes = probe_set(rate, verify_seconds(manifest), kind=manifest.verify.probes, seed=seed)[:limit]
    names: list[str] = []
    feeds: list[list[Feeds]] = []
    for probe in probes:
        names.append(probe.name)
        feeds.append(prepare_inputs(manifest, probe.audio, rate))
    return ProbeInputs(names, feeds, streaming=manifest.audio.streaming, kind=manifest.verify.probes)


def audio_inputs(manifest: Manifest, paths: Sequence[Path]) -> ProbeInputs:
    """The user's recordings (any rate soundfile reads) through the manifest's host preprocessing."""
    from zoo.evaluate import read_audio
    from zoo.frontends import frontend_for, prepare_inputs

    if not frontend_for(manifest).takes_audio:
        raise UsageError(
            f"--audio: {manifest.name} takes {manifest.audio.features.kind if manifest.audio.features else 'features'} "
            "as input, not audio; verify it on its probes."
        )
    files = audio_files(paths, "--audio")  # verify_many has checked them: given files stay as they are
    names: list[str] = []
    feeds: list[list[Feeds]] = []
    for path in files:
        samples, rate = read_audio(path)
        names.append(path.name)
        feeds.append(prepare_inputs(manifest, samples, rate))
    return ProbeInputs(names, feeds, streaming=manifest.audio.streaming, kind="audio")


def espeak_version() -> str | None:
    """The installed espeak-ng's version (speech probes depend on it), or None."""
    import shutil
    import subprocess

    binary = shutil.which("espeak-ng")
    if binary is None:
        return None
    try:
        text = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return text.strip().splitlines()[0] if text.strip() else None
