"""`zoo evaluate`: accuracy of the source model and of every artifact on a labelled folder.

A dataset is a folder with one subfolder per class, named as in the entry's labels
(compared without regard to case and punctuation), holding audio files that
soundfile can read. Single-output detectors (voice activity) take the positive
class's folder plus a negative one (`non-speech`, `no-speech`, `background` ...).

Each file goes through the manifest's host-side preprocessing (zoo.frontends:
real resampling, normalisation, clips with overlap), every clip through the model,
and the clip outputs are aggregated as upstream does (mean or max of clip scores;
for streams, the recurrent state is carried from chunk to chunk and a file counts
as speech when upstream's segment rules find a speech segment in it).

The package: datasets (folders and audio), metrics (top-k, AP, mAP), predict (a model over a
file, VAD segments, per-model figures) and command (`zoo evaluate` itself).
"""

from __future__ import annotations

from zoo.evaluate.command import evaluate, load_models, parse_artifacts
from zoo.evaluate.datasets import (
    AUDIO_SUFFIXES,
    NEGATIVE,
    NEGATIVE_FOLDERS,
    LabelledFile,
    LabelledSet,
    folder_key,
    read_audio,
    read_classes,
    read_dataset,
)
from zoo.evaluate.metrics import (
    average_precision,
    mean_average_precision,
    one_hot,
    top_k_accuracy,
    top_k_hits,
)
from zoo.evaluate.predict import (
    FileResult,
    aggregate,
    agreement,
    chunk_seconds,
    clip_scores,
    decision_threshold,
    is_detector,
    is_multi_label,
    predict,
    score_results,
)

__all__ = [
    "AUDIO_SUFFIXES",
    "NEGATIVE",
    "NEGATIVE_FOLDERS",
    "FileResult",
    "LabelledFile",
    "LabelledSet",
    "aggregate",
    "agreement",
    "average_precision",
    "chunk_seconds",
    "clip_scores",
    "decision_threshold",
    "evaluate",
    "folder_key",
    "is_detector",
    "is_multi_label",
    "load_models",
    "mean_average_precision",
    "one_hot",
    "parse_artifacts",
    "predict",
    "read_audio",
    "read_classes",
    "read_dataset",
    "score_results",
    "top_k_accuracy",
    "top_k_hits",
]
