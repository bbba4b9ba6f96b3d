"""Window scores -> what the task asks for: clip-level top-k, a detection table, speech segments.

The manifest decides: voice-activity entries (streaming, one output) give speech segments;
sound-event-detection entries and entries reported per window (`audio.aggregate: none`, BirdNET)
give a detection table; every other entry gives the clip-level top-k, its window scores averaged
(or maxed, per `audio.aggregate`) as upstream aggregates them. Collectors take one window at a time
and keep what their output needs, so a long file does not pile up every score.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from zoo.predict.vad import VadRules, speech_segments

if TYPE_CHECKING:
    from zoo.manifest import Manifest
    from zoo.predict.audio import Geometry

CLASSIFICATION = "classification"
DETECTION = "detection"
VOICE_ACTIVITY = "voice-activity"
EMBEDDING = "embedding"

#: default --threshold per task (BirdNET's analyzer reports from 0.1; silero-vad decides at 0.5)
DEFAULT_THRESHOLD = {CLASSIFICATION: 0.0, DETECTION: 0.1, VOICE_ACTIVITY: 0.5, EMBEDDING: 0.0}
DEFAULT_TOP_K = 5


def task_of(manifest: Manifest, average: bool = False) -> str:
    """What predict reports for this entry; *average* (--average) turns a detection model whose
    windows average (Kahl's AED, as upstream's AED_test.py does) into one clip-level top-k."""
    if manifest.task == "audio-embedding":
        return EMBEDDING
    if manifest.task == "voice-activity-detection" or (
        manifest.audio.streaming and manifest.num_classes == 1
    ):
        return VOICE_ACTIVITY
    if manifest.task == "sound-event-detection" or manifest.audio.aggregate == "none":
        if average and manifest.audio.aggregate in ("mean", "max"):
            return CLASSIFICATION
        return DETECTION
    return CLASSIFICATION


def window_scores(manifest: Manifest, raw: np.ndarray) -> np.ndarray:
    """Scores in [0, 1] from the main output: a sigmoid over logits (BirdNET, as its analyzer applies
    it), exp of log-probabilities (DCASE), probabilities as they are."""
    values = np.asarray(raw, dtype=np.float64).reshape(-1)
    if manifest.main_output.kind == "logits":
        values = 1.0 / (1.0 + np.exp(-np.clip(values, -15.0, 15.0)))
    elif manifest.main_output.kind == "log-probabilities":
        values = np.exp(values)
    return values


@dataclass
class Options:
    """What the command line asked for."""

    top_k: int | None = None
    threshold: float | None = None
    windows: bool = False
    keep_rows: bool = False  # the plot draws every window's scores
    average: bool = False  # detection models whose windows average: one clip-level result
    vad: VadRules = field(default_factory=VadRules)


@dataclass
class FileResult:
    """One file's prediction, ready for any output format."""

    path: Path
    seconds: float
    windows: int = 0
    top: list[tuple[str, float]] = field(default_factory=list)
    timeline: list[dict[str, Any]] = field(default_factory=list)
    detections: list[tuple[float, float, str, float]] = field(default_factory=list)
    segments: list[tuple[float, float]] = field(default_factory=list)
    rows: np.ndarray | None = None  # (windows, classes) scores, when kept for the plot
    starts: np.ndarray | None = None  # window start times in seconds, with rows
    wall_seconds: float = 0.0


class Collector:
    """Takes each window's raw main output in order; `finish` gives the file's result."""

    def __init__(
        self, manifest: Manifest, labels: list[str], grid: Geometry, options: Options, result: FileResult
    ):
        self.manifest, self.labels, self.grid, self.options, self.result = (
            manifest,
            labels,
            grid,
            options,
            result,
        )
        self.task = task_of(manifest, options.average)
        threshold = options.threshold
        self.threshold = DEFAULT_THRESHOLD[self.task] if threshold is None else threshold
        self.top_k = options.top_k
        self.sum: np.ndarray | None = None
        self.peak: np.ndarray | None = None
        self.kept: list[np.ndarray] = []
        self.count = 0
        self.log_mean = manifest.main_output.kind == "log-probabilities"

    def span(self, index: int) -> tuple[float, float]:
        start = index * self.grid.hop / self.grid.rate
        end = min(start + self.grid.length / self.grid.rate, self.result.seconds)
        return round(start, 6), round(end, 6)

    def add(self, index: int, raw: np.ndarray) -> None:
        if self.task == EMBEDDING:  # the values themselves, one row per window (0.96 s for VGGish)
            self.count += 1
            self.kept.append(np.asarray(raw, dtype=np.float32).reshape(-1))
            return
        scores = window_scores(self.manifest, raw)
        self.count += 1
        if self.options.keep_rows or self.task == VOICE_ACTIVITY:
            self.kept.append(scores.astype(np.float32))
        if self.task == DETECTION:
            self._detect(index, scores)
            return
        if self.task == CLASSIFICATION:
            # DCASE averages log-probabilities; the mean is taken where upstream takes it
            summed = np.log(np.maximum(scores, 1e-300)) if self.log_mean else scores
            self.sum = summed.copy() if self.sum is None else self.sum + summed
            self.peak = scores.copy() if self.peak is None else np.maximum(self.peak, scores)
            if self.options.windows:
                start, end = self.span(index)
                top = self._ranked(scores, self.top_k or DEFAULT_TOP_K)
                self.result.timeline.append(
                    {"start": start, "end": end, "top": [{"label": n, "score": s} for n, s in top]}
                )

    def _ranked(self, scores: np.ndarray, k: int | None) -> list[tuple[str, float]]:
        order = np.argsort(-scores, kind="stable")
        chosen = [int(i) for i in order if scores[i] >= self.threshold]
        if k is not None:
            chosen = chosen[:k]
        return [(self._label(i), float(scores[i])) for i in chosen]

    def _label(self, index: int) -> str:
        return self.labels[index] if index < len(self.labels) else f"class_{index}"

    def _detect(self, index: int, scores: np.ndarray) -> None:
        start, end = self.span(index)
        for label, score in self._ranked(scores, self.top_k):
            self.result.detections.append((start, end, label, score))

    def finish(self) -> FileResult:
        result = self.result
        result.windows = self.count
        if self.kept:
            result.rows = np.stack(self.kept)
            result.starts = np.arange(self.count) * self.grid.hop / self.grid.rate
        if self.task == CLASSIFICATION and self.sum is not None:
            clip = self.sum / max(self.count, 1)
            if self.log_mean:
                clip = np.exp(clip)
            if self.manifest.audio.aggregate == "max":
                assert self.peak is not None  # set with sum
                clip = self.peak
            result.top = self._ranked(clip, self.top_k or DEFAULT_TOP_K)
        if self.task == VOICE_ACTIVITY and result.rows is not None:
            rate = self.grid.rate
            total = int(round(result.seconds * rate))
            rules = VadRules(
                threshold=self.threshold,
                min_speech_ms=self.options.vad.min_speech_ms,
                min_silence_ms=self.options.vad.min_silence_ms,
                speech_pad_ms=self.options.vad.speech_pad_ms,
            )
            pairs = speech_segments(result.rows[:, 0], self.grid.hop, rate, total, rules)
            result.segments = [(round(a / rate, 6), round(b / rate, 6)) for a, b in pairs]
            if not self.options.keep_rows and not self.options.windows:
                result.rows = result.starts = None
        return result
