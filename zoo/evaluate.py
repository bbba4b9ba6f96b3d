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
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from zoo.errors import UsageError, ZooError
from zoo.streams import run_calls

if TYPE_CHECKING:
    from zoo.manifest import Manifest
    from zoo.runtimes import Runner

#: suffixes of the audio files a dataset folder may hold (formats libsndfile reads)
AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".oga", ".mp3", ".aif", ".aiff", ".au", ".caf", ".w64", ".rf64")
#: names a detector's negative folder may have ({label} is the positive class)
NEGATIVE_FOLDERS = ("non-{label}", "no-{label}", "not-{label}", "non{label}", "background", "negative")
#: upstream silero-vad get_speech_timestamps defaults
VAD_NEG_OFFSET = 0.15
VAD_MIN_SPEECH_S = 0.25
VAD_MIN_SILENCE_S = 0.1
#: the artifacts `zoo evaluate` and `zoo bench` know, in display order
ARTIFACT_ORDER = ("source", "onnx", "FP32", "FP16", "INT8")


# -- datasets ---------------------------------------------------------------------------


def folder_key(name: str) -> str:
    """Case- and punctuation-blind form of a class name, so 'Chirping birds' matches 'chirping_birds'."""
    return re.sub(r"[^0-9a-z]+", "-", name.casefold()).strip("-")


@dataclass(frozen=True)
class LabelledFile:
    path: Path
    label: int  # class index in output order; NEGATIVE for a detector's negative folder


NEGATIVE = -1


@dataclass
class LabelledSet:
    """The files of a dataset folder with their class indices."""

    directory: Path
    classes: list[str]
    files: list[LabelledFile] = field(default_factory=list)
    detector: bool = False

    @property
    def labels(self) -> np.ndarray:
        return np.array([f.label for f in self.files], dtype=np.int64)

    def counts(self) -> dict[str, int]:
        found: dict[str, int] = {}
        for item in self.files:
            name = self.classes[item.label] if item.label >= 0 else "(negative)"
            found[name] = found.get(name, 0) + 1
        return found


def is_detector(manifest) -> bool:
    """One output score with a decision threshold: voice activity and similar detectors."""
    return manifest.num_classes == 1


def is_multi_label(manifest) -> bool:
    """Entries whose scores are independent per class (sigmoid), where mAP is the usual measure."""
    return manifest.task == "audio-tagging" or (
        manifest.main_output.kind == "logits" and (manifest.num_classes or 0) > 1
    )


def read_dataset(directory: str | Path, classes: list[str], *, detector: bool = False) -> LabelledSet:
    """Map each subfolder to a class index; refuse folders that name no class."""
    directory = Path(directory)
    if not directory.is_dir():
        raise UsageError(
            f"--dataset {directory}: not a folder (expected one subfolder per class with audio files)."
        )
    index = {}
    for position, name in enumerate(classes):
        index.setdefault(name, position)
    by_key = {}
    for position, name in enumerate(classes):
        by_key.setdefault(folder_key(name), position)
    negatives = {folder_key(p.format(label=classes[0])) for p in NEGATIVE_FOLDERS} if detector else set()
    found = LabelledSet(directory, list(classes), detector=detector)
    folders = sorted(p for p in directory.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not folders:
        raise UsageError(
            f"--dataset {directory}: has no subfolders; expected one subfolder per class named as in the labels "
            f"(e.g. {', '.join(repr(c) for c in classes[:3])})."
        )
    for folder in folders:
        key = folder_key(folder.name)
        if folder.name in index:
            label = index[folder.name]
        elif key in by_key:
            label = by_key[key]
        elif key in negatives:
            label = NEGATIVE
        else:
            close = difflib.get_close_matches(folder.name, classes, n=3, cutoff=0.6)
            hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
            extra = (
                f" A detector also takes a negative folder named {NEGATIVE_FOLDERS[0].format(label=classes[0])!r}."
                if detector
                else ""
            )
            raise UsageError(
                f"--dataset {directory}: subfolder {folder.name!r} is not a class name of this model's labels "
                f"({len(classes)} classes).{hint}{extra}"
            )
        for path in sorted(folder.rglob("*")):
            if path.is_file() and path.suffix.lower() in AUDIO_SUFFIXES and not path.name.startswith("."):
                found.files.append(LabelledFile(path, label))
    if not found.files:
        raise UsageError(
            f"--dataset {directory}: no audio files in its class folders (looked for {', '.join(AUDIO_SUFFIXES)})."
        )
    return found


def read_audio(path: str | Path) -> tuple[np.ndarray, int]:
    """(mono float32 samples, sample rate) of one audio file, read with soundfile."""
    import soundfile

    try:
        data, rate = soundfile.read(str(path), dtype="float32", always_2d=True)
    except Exception as exc:  # libsndfile reports bad files with its own error types
        raise ZooError(f"{path}: cannot read this audio file: {exc}") from exc
    if data.shape[0] == 0:
        raise ZooError(f"{path}: the audio file holds no samples.")
    return data.mean(axis=1).astype(np.float32), int(rate)


# -- metrics ----------------------------------------------------------------------------


def top_k_hits(scores: np.ndarray, targets: np.ndarray, k: int) -> np.ndarray:
    """Per row: is the target among the k highest scores (ties keep the lower class index first)?"""
    scores = np.asarray(scores, dtype=np.float64)
    order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return (order == np.asarray(targets)[:, None]).any(axis=1)


def top_k_accuracy(scores: np.ndarray, targets: np.ndarray, k: int) -> float:
    return float(top_k_hits(scores, targets, k).mean()) if len(targets) else float("nan")


def average_precision(scores: np.ndarray, positives: np.ndarray) -> float | None:
    """Area under the precision-recall steps, tied scores forming one step; None without positives."""
    scores = np.asarray(scores, dtype=np.float64)
    positives = np.asarray(positives, dtype=bool)
    total = int(positives.sum())
    if total == 0:
        return None
    order = np.argsort(-scores, kind="stable")
    scores, positives = scores[order], positives[order]
    true_pos = np.cumsum(positives)
    # the last index of each group of equal scores is where a threshold can cut
    cuts = np.r_[np.nonzero(np.diff(scores))[0], scores.shape[0] - 1]
    precision = true_pos[cuts] / (cuts + 1)
    recall = true_pos[cuts] / total
    steps = np.diff(np.r_[0.0, recall])
    return float(np.sum(steps * precision))


def mean_average_precision(scores: np.ndarray, targets: np.ndarray) -> float:
    """Mean over classes that have at least one positive of their average precision."""
    targets = np.asarray(targets, dtype=bool)
    values = [average_precision(scores[:, c], targets[:, c]) for c in range(targets.shape[1])]
    values = [v for v in values if v is not None]
    return float(np.mean(values)) if values else float("nan")


def one_hot(labels: np.ndarray, classes: int) -> np.ndarray:
    targets = np.zeros((len(labels), classes), dtype=bool)
    for row, label in enumerate(labels):
        if label >= 0:
            targets[row, label] = True
    return targets


# -- running a model over a file ----------------------------------------------------------


def clip_scores(manifest, outputs: list[dict[str, np.ndarray]]) -> np.ndarray:
    """The main output of each clip as rows (clips, classes)."""
    name = manifest.main_output.name
    return np.stack([np.asarray(o[name], dtype=np.float64).reshape(-1) for o in outputs])


def aggregate(manifest, rows: np.ndarray) -> np.ndarray:
    """One score vector per file from clip rows, as upstream aggregates clips.

    mean: average of clip scores (AclNet, YAMNet, DCASE's mean of log-softmax); max: the
    strongest clip; none: entries that report per clip (BirdNET) get the max over clips,
    i.e. "detected somewhere in the file".
    """
    mode = manifest.audio.aggregate
    if mode == "mean":
        return rows.mean(axis=0)
    return rows.max(axis=0)


def speech_segments(
    probabilities: np.ndarray, chunk_seconds: float, threshold: float
) -> list[tuple[int, int]]:
    """Speech segments (first chunk, end chunk) by upstream silero-vad's hysteresis rules.

    A segment starts at a chunk with p >= threshold, ends after VAD_MIN_SILENCE_S of chunks with
    p < threshold - 0.15, and is kept when it lasts at least VAD_MIN_SPEECH_S.
    """
    low = max(threshold - VAD_NEG_OFFSET, 0.01)
    min_speech = VAD_MIN_SPEECH_S / chunk_seconds
    min_silence = VAD_MIN_SILENCE_S / chunk_seconds
    segments = []
    start = silence = None
    for index, p in enumerate(np.asarray(probabilities, dtype=np.float64).reshape(-1)):
        if p >= threshold:
            silence = None
            if start is None:
                start = index
        elif start is not None and p < low:
            if silence is None:
                silence = index
            if index + 1 - silence >= min_silence:
                if silence - start >= min_speech:
                    segments.append((start, silence))
                start = silence = None
    if start is not None:
        end = silence if silence is not None else len(probabilities)
        if end - start >= min_speech:
            segments.append((start, end))
    return segments


def decision_threshold(manifest) -> float:
    return manifest.verify.decision_threshold or 0.5


def chunk_seconds(manifest) -> float:
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
        if manifest.audio.streaming:
            result.detected = bool(speech_segments(rows[:, 0], chunk_seconds(manifest), threshold))
        else:
            result.detected = bool(result.scores[0] >= threshold)
    return result


def score_results(manifest, dataset: LabelledSet, results: list[FileResult]) -> dict:
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


def agreement(manifest, reference: list[FileResult], other: list[FileResult]) -> float:
    """Share of files where two models make the same call (top-1 class, or detection)."""
    if is_detector(manifest):
        same = [a.detected == b.detected for a, b in zip(reference, other, strict=True)]
    else:
        same = [
            int(np.argmax(a.scores)) == int(np.argmax(b.scores))
            for a, b in zip(reference, other, strict=True)
        ]
    return float(np.mean(same)) if same else float("nan")


# -- the command ---------------------------------------------------------------------------


def parse_artifacts(values: list[str] | None, option: str = "--precisions") -> list[str] | None:
    """Comma-separated artifact names (source, onnx, FP32, FP16, INT8), case-blind; None = all."""
    if not values:
        return None
    known = {a.casefold(): a for a in ARTIFACT_ORDER}
    chosen = []
    for value in values:
        for part in (p.strip() for p in value.split(",")):
            if not part:
                continue
            if part.casefold() not in known:
                raise UsageError(
                    f"{option}: unknown artifact {part!r}; expected some of {', '.join(ARTIFACT_ORDER)}."
                )
            if known[part.casefold()] not in chosen:
                chosen.append(known[part.casefold()])
    return chosen


def load_models(
    manifest: Manifest,
    out: Path,
    wanted: list[str] | None,
    *,
    hint: str | None = "f32",
    threads: int | None = None,
) -> tuple[dict[str, Runner], dict[str, str]]:
    """({artifact: Runner}, {artifact: why skipped}) for the artifacts present in the layout."""
    from zoo.layout import ModelLayout
    from zoo.runtimes import NoSources, open_artifact, open_source

    layout = ModelLayout(Path(out), manifest.name)
    models: dict[str, Runner] = {}
    skipped: dict[str, str] = {}
    for artifact in wanted or ARTIFACT_ORDER:
        explicit = wanted is not None
        if artifact == "source":
            try:
                models[artifact] = open_source(manifest, out, threads=threads)
            except NoSources as exc:
                if explicit:
                    raise UsageError(f"{manifest.name}: {exc.message}") from None
                skipped[artifact] = exc.message
            continue
        path = layout.artifact(artifact)
        if not path.is_file():
            why = f"{path} does not exist (run `zoo {'quantize' if artifact == 'INT8' else 'convert'}`)"
            if explicit:
                raise UsageError(f"{manifest.name}: {artifact}: {why}.")
            skipped[artifact] = why
            continue
        models[artifact] = open_artifact(path, artifact, hint=hint, threads=threads)
    if not models:
        raise UsageError(
            f"{manifest.name}: nothing to evaluate under {layout.root}: "
            + "; ".join(f"{k}: {v}" for k, v in skipped.items())
            + ". Run `zoo download` and `zoo convert` first."
        )
    return models, skipped


def read_classes(manifest, out: Path) -> list[str]:
    from zoo.layout import ModelLayout

    return manifest.read_labels(ModelLayout(Path(out), manifest.name).source_dir)


def evaluate(
    manifest,
    out: str | Path,
    dataset_dir: str | Path,
    *,
    artifacts: list[str] | None = None,
    show_progress: bool = True,
) -> dict:
    """Score every wanted artifact (and the source model) on a labelled folder, file by file."""
    from zoo.bars import bar
    from zoo.frontends import prepare_inputs

    out = Path(out)
    classes = read_classes(manifest, out)
    dataset = read_dataset(dataset_dir, classes, detector=is_detector(manifest))
    models, skipped = load_models(manifest, out, artifacts)
    results: dict[str, list[FileResult]] = {name: [] for name in models}
    with bar(f"{manifest.name}: evaluating", len(dataset.files), show_progress) as progress:
        for item in dataset.files:
            audio, rate = read_audio(item.path)
            feeds = prepare_inputs(manifest, audio, rate)
            for name, model in models.items():
                results[name].append(predict(model, manifest, feeds))
            progress.advance()
    report = {
        "model": manifest.name,
        "dataset": str(dataset.directory),
        "files": len(dataset.files),
        "classes": dataset.counts(),
        "metric": "accuracy" if is_detector(manifest) else "top1",
        "reference_weights": _reference_weights(manifest, out),
        "results": {},
        "skipped": skipped,
    }
    reference = "source" if "source" in results else ("FP32" if "FP32" in results else None)
    for name in ARTIFACT_ORDER:
        if name not in results:
            continue
        entry = score_results(manifest, dataset, results[name])
        if reference is not None and name != reference:
            entry[f"agreement_{reference}"] = agreement(manifest, results[reference], results[name])
        report["results"][name] = entry
    return report


def _reference_weights(manifest, out: Path) -> bool | None:
    try:
        from zoo.fetch import read_source_set

        sources = read_source_set(manifest, out)
    except ZooError:
        return None
    return None if sources is None else bool(sources.reference_weights)
