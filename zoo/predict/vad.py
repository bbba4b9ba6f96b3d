"""Speech segments from per-chunk speech probabilities, by the rules silero-vad's users know.

A segment opens at the first chunk whose probability reaches the threshold. It closes once the
probability has stayed below a lower threshold (threshold - 0.15, at least 0.01) for the minimum
silence: the segment then ends where that quiet stretch began, and a rise back above the threshold
before the minimum silence has passed cancels the pending end. Segments not longer than the
minimum speech duration are dropped; one still open at the end of the audio ends there. Finally
every segment is widened by the speech pad on each side, but where two segments are closer than
two pads the gap between them is split at its middle instead, so they never overlap.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class VadRules:
    """The thresholds and durations, in silero-vad's usual defaults (durations in milliseconds)."""

    threshold: float = 0.5
    min_speech_ms: float = 250.0
    min_silence_ms: float = 100.0
    speech_pad_ms: float = 30.0

    @property
    def low(self) -> float:
        return max(self.threshold - 0.15, 0.01)


def speech_segments(
    probabilities: np.ndarray, chunk: int, rate: int, total: int, rules: VadRules | None = None
) -> list[tuple[int, int]]:
    """(start, end) sample pairs of speech in *total* samples; chunk *i* starts at sample i * chunk."""
    rules = rules or VadRules()
    min_speech = rate * rules.min_speech_ms / 1000
    min_silence = rate * rules.min_silence_ms / 1000
    pad = int(rate * rules.speech_pad_ms / 1000)
    found: list[list[int]] = []
    opened: int | None = None  # sample where the current segment began
    quiet: int | None = None  # sample where the current quiet stretch began
    for index, p in enumerate(np.asarray(probabilities, dtype=np.float64).reshape(-1)):
        here = index * chunk
        if p >= rules.threshold:
            quiet = None
            if opened is None:
                opened = here
            continue
        if opened is None or p >= rules.low:
            continue
        if quiet is None:
            quiet = here
        if here - quiet < min_silence:
            continue
        if quiet - opened > min_speech:
            found.append([opened, quiet])
        opened = quiet = None
    if opened is not None and total - opened > min_speech:
        found.append([opened, total])
    return _padded(found, pad, total)


def _padded(found: list[list[int]], pad: int, total: int) -> list[tuple[int, int]]:
    """Each segment widened by *pad*; a gap narrower than two pads is shared at its middle."""
    for index, segment in enumerate(found):
        if index == 0:
            segment[0] = max(0, segment[0] - pad)
        if index + 1 < len(found):
            following = found[index + 1]
            gap = following[0] - segment[1]
            if gap < 2 * pad:
                segment[1] += gap // 2
                following[0] = max(0, following[0] - gap // 2)
            else:
                segment[1] = min(total, segment[1] + pad)
                following[0] = max(0, following[0] - pad)
        else:
            segment[1] = min(total, segment[1] + pad)
    return [(a, b) for a, b in found]
