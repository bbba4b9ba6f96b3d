"""Audio in blocks: a file read piece by piece and turned into network calls by the verify front end.

Memory stays independent of the file's length: each block holds a bounded number of windows.
Each block is resampled from just the input samples its windows need plus the resampling filter's
reach on either side (polyphase resampling is local, and a slice starting on a multiple of the
ratio's denominator lands on the same output grid), so every sample equals what resampling the
whole file gives. The resampled block then goes through `zoo.frontends.prepare_inputs`, the code
`zoo verify --audio` runs, and only the windows that lie inside the block are kept. Entries that
peak-normalise the whole file (`audio.normalize: peak`) read it as one block, since their scale
depends on every sample.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from zoo.audio_files import readable
from zoo.errors import UsageError

if TYPE_CHECKING:
    from zoo.frontends import Feeds
    from zoo.manifest import Manifest

#: audio per block, in seconds of the model's rate (a few hundred windows at most)
BLOCK_SECONDS = 30.0


@dataclass(frozen=True)
class Geometry:
    """Where the network's windows lie, in samples at the model's rate: one every *hop*, *length* long."""

    length: int
    hop: int
    rate: int

    def count(self, total: int) -> int:
        """How many windows the front end makes of *total* samples (at least one)."""
        if total <= self.length:
            return 1
        return 1 + -(-(total - self.length) // self.hop)


def geometry(manifest: Manifest) -> Geometry:
    """The window length and hop the manifest's front end uses (its own rule, in samples)."""
    from zoo.frontends import frontend_for

    length, hop = frontend_for(manifest).window(manifest)
    return Geometry(length, hop, manifest.audio.sample_rate)


@dataclass(frozen=True)
class AudioInfo:
    """What soundfile says about a file before it is read, and its length at the model's rate."""

    path: Path
    rate: int
    frames: int
    model_rate: int

    @property
    def seconds(self) -> float:
        return self.frames / self.rate

    @property
    def model_frames(self) -> int:
        """Samples after resampling to the model's rate (resample_poly's output length)."""
        return -(-self.frames * self.model_rate // self.rate)


def probe(path: Path, model_rate: int) -> AudioInfo:
    """The file's rate and length; an unreadable or empty file is exit 2 naming it."""
    rate, frames = readable(path)
    return AudioInfo(Path(path), rate, frames, model_rate)


def _read(handle: object, start: int, stop: int) -> np.ndarray:
    """Mono float32 samples [start, stop) of an open SoundFile, averaged over channels as read_audio does."""
    handle.seek(start)  # type: ignore[attr-defined]
    data = handle.read(stop - start, dtype="float32", always_2d=True)  # type: ignore[attr-defined]
    mono: np.ndarray = data.mean(axis=1).astype(np.float32)
    return mono


@dataclass
class Block:
    """The network calls of windows [first, first + len(feeds)) of one file."""

    first: int
    feeds: list[Feeds]


def blocks(manifest: Manifest, info: AudioInfo, grid: Geometry) -> Iterator[Block]:
    """The file's windows in blocks, through the verify front end; the last block ends the file."""
    import soundfile

    from zoo.frontends import prepare_inputs
    from zoo.frontends.signal import resample

    total = info.model_frames
    windows = grid.count(total)
    per_block = max(1, int(BLOCK_SECONDS * grid.rate) // grid.hop)
    features = manifest.audio.features
    if manifest.audio.normalize == "peak" or (features is not None and features.kind == "librosa-mel"):
        # the whole file at once: peak normalisation, and centred frames (padded at the signal's
        # ends only), see all of it, as verify's front end does
        per_block = windows
    ratio = Fraction(grid.rate, info.rate)
    up, down = ratio.numerator, ratio.denominator
    # the resampling filter reaches 10 * max(up, down) upsampled samples either way
    margin = 10 * max(up, down) // up + 4
    try:
        handle = soundfile.SoundFile(str(info.path))
    except Exception as exc:  # as in probe(): the file changed or is unreadable
        raise UsageError(f"{info.path}: cannot read this audio file: {exc}") from exc
    with handle:
        for first in range(0, windows, per_block):
            count = min(per_block, windows - first)
            last = first + count >= windows
            begin = first * grid.hop
            end = total if last else min(total, begin + (count - 1) * grid.hop + grid.length)
            if up == down:
                block = _read(handle, begin, end)
            else:
                start = max(0, (begin * down // up - margin) // down * down)
                stop = min(info.frames, -(-end * down // up) + margin)
                resampled = resample(_read(handle, start, stop), info.rate, grid.rate)
                offset = start * up // down
                block = resampled[begin - offset : end - offset]
            feeds = prepare_inputs(manifest, block, grid.rate)
            yield Block(first, feeds if last else feeds[:count])
