"""A model over one file: clip outputs, aggregated as upstream does, and the calls that follow.

Classifiers aggregate clip scores (mean or max); detectors decide by threshold, and
streaming detectors (silero-vad) carry the recurrent state from chunk to chunk and count
a file as speech when upstream's segment rules find a speech segment in it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from zoo.evaluate.datasets import LabelledSet
from zoo.evaluate.metrics import mean_average_precision, one_hot, top_k_accuracy
from zoo.streams import run_calls

if TYPE_CHECKING:
    from zoo.manifest import Manifest
    from zoo.runtimes import Runner


def is_detector(manifest: Manifest) -> bool:
    """One output score with a decision threshold: voice activity and similar detectors."""
    return manifest.num_classes == 1


def is_multi_label(manifest: Manifest) -> bool:
    """Entries whose scores are independent per class (sigmoid), where mAP is the usual measure."""
    return manifest.task == "audio-tagging" or (
        manifest.main_output.kind == "logits" and (manifest.num_classes or 0) > 1
    )


def clip_scores(manifest: Manifest, outputs: list[dict[str, np.ndarray]]) -> np.ndarray:
    """The main output of each clip as rows (clips, classes)."""
    name = manifest.main_output.name
    return np.stack([np.asarray(o[name], dtype=np.float64).reshape(-1) for o in outputs])


def aggregate(manifest: Manifest, rows: np.ndarray) -> np.ndarray:
    """One score vector per file from clip rows, as upstream aggregates clips.

    mean: average of clip scores (AclNet, YAMNet, DCASE's mean of log-softmax); max: the
    strongest clip; none: entries that report per clip (BirdNET) get the max over clips,
    i.e. "detected somewhere in the file".
    """
    mode = manifest.audio.aggregate
    scores: np.ndarray = rows.mean(axis=0) if mode == "mean" else rows.max(axis=0)
    return scores


def decision_threshold(manifest: Manifest) -> float:
    return manifest.verify.decision_threshold or 0.5


def chunk_seconds(manifest: Manifest) -> float:
    length = int(np.prod([d for d in manifest.inputs[0].shape if isinstance(d, int)]))
    return length / manifest.audio.sample_rate


@dataclass
class FileResult:
    scores: np.ndarray  # aggregated main output (classes,)
    rows: np.ndarray  # per clip (clips, classes)
    detected: bool | None = None  # detectors: did the file contain the positive class


def predict(model: Runner, manifest: Manifest, feeds: list[dict[str, np.ndarray]]) -> FileResult:
    _, outputs = run_calls(model, manifest, feeds)
    rows = clip_scores(manifest, outputs)
    result = FileResult(aggregate(manifest, rows), rows)
    if is_detector(manifest):
        threshold = decision_threshold(manifest)
        if manifest.audio.streaming:  # speech by the rules `zoo predict` segments with, unpadded
            from zoo.predict.vad import VadRules, speech_segments

            chunk = round(chunk_seconds(manifest) * manifest.audio.sample_rate)
            found = speech_segments(
                rows[:, 0], chunk, manifest.audio.sample_rate, len(rows) * chunk,
                VadRules(threshold=threshold, speech_pad_ms=0.0),
            )  # fmt: skip
            result.detected = bool(found)
        else:
            result.detected = bool(result.scores[0] >= threshold)
    return result


def score_results(manifest: Manifest, dataset: LabelledSet, results: list[FileResult]) -> dict[str, Any]:
    """Accuracy figures of one model over the dataset."""
    labels = dataset.labels
    if is_detector(manifest):
        truth = labels >= 0
        decided = np.array([bool(r.detected) for r in results])
        return {
            "files": len(results),
            "accuracy": float((decided == truth).mean()),
            "detected": int(decided.sum()),
            "positives": int(truth.sum()),
        }
    scores = np.stack([r.scores for r in results])
    found = {"files": len(results), "top1": top_k_accuracy(scores, labels, 1)}
    if scores.shape[1] >= 5:
        found["top5"] = top_k_accuracy(scores, labels, 5)
    if is_multi_label(manifest):
        found["mAP"] = mean_average_precision(scores, one_hot(labels, scores.shape[1]))
    return found


def window_figures(manifest: Manifest, reference: list[FileResult], other: list[FileResult]) -> dict:
    """Agreement window by window (clip or chunk), as `zoo verify` measures it on unlabelled audio.

    Voice activity: the share of chunks on the same side of the threshold; classifiers: the
    manifest's verify.agreement metrics (zoo.verify.metrics.window_agreement).
    """
    from zoo.verify.metrics import scores_of, window_agreement

    if not reference:
        return {}
    settings = manifest.verify.agreement
    ref = scores_of(np.concatenate([r.rows for r in reference]), settings.scores)
    got = scores_of(np.concatenate([r.rows for r in other]), settings.scores)
    if is_detector(manifest):
        threshold = decision_threshold(manifest)
        same = (ref[:, 0] >= threshold) == (got[:, 0] >= threshold)
        return {
            "windows": int(ref.shape[0]),
            "decision": float(same.mean()),
            "mean_abs_score": float(np.abs(got - ref).mean()),
        }
    return window_agreement(ref, got, settings.confident, settings.detect, settings.floor)


def agreement(manifest: Manifest, reference: list[FileResult], other: list[FileResult]) -> float:
    """Share of files where two models make the same call (top-1 class, or detection)."""
    if is_detector(manifest):
        same = [a.detected == b.detected for a, b in zip(reference, other, strict=True)]
    else:
        same = [
            int(np.argmax(a.scores)) == int(np.argmax(b.scores))
            for a, b in zip(reference, other, strict=True)
        ]
    return float(np.mean(same)) if same else float("nan")
