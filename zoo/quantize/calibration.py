"""The audio INT8 is calibrated and validated on, as the network calls it makes.

Calibration audio is the user's --calibration folder, else the probe set's "calibration"
kind (plus speech streams for streaming entries), through the manifest's host
preprocessing. Streams are run through the FP32 model so every calibration item carries
the recurrent state it would really see. Digests of what was used go into the stage key.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import numpy as np

from zoo.audio_files import in_folder
from zoo.errors import UsageError
from zoo.evaluate import AUDIO_SUFFIXES, is_detector, read_audio, read_classes, read_dataset
from zoo.streams import run_stream

if TYPE_CHECKING:
    from zoo.manifest import Manifest
    from zoo.quantize.options import QuantizeOptions
    from zoo.runtimes import Runner

CALIBRATION_PROBES = 100
STREAM_PROBES = 20
STREAM_PROBE_SECONDS = 2.0
STREAM_SPEECH_SECONDS = 10.0

Feeds = dict[str, np.ndarray]
T = TypeVar("T")


@dataclass
class Sample:
    """One unit of calibration or validation: a file or probe as the network calls it makes."""

    name: str
    feeds: list[Feeds]
    label: int | None = None


def audio_files(directory: Path) -> list[Path]:
    """The audio files under a --calibration folder; a usage error when it is not one or holds none."""
    if not directory.is_dir():
        raise UsageError(f"--calibration {directory}: not a folder of audio files (no such folder).")
    found = in_folder(directory)
    if not found:
        raise UsageError(f"--calibration {directory}: holds no audio files ({', '.join(AUDIO_SUFFIXES)}).")
    return found


def files_digest(paths: list[Path], root: Path) -> str:
    """sha256 over the relative names and contents of files: what a calibration or dataset folder holds."""
    from zoo.integrity import sha256_file

    digest = hashlib.sha256()
    for path in paths:
        digest.update(path.relative_to(root).as_posix().encode() + b"\0" + sha256_file(path).encode() + b"\n")
    return digest.hexdigest()


def calibration_seconds(manifest: Manifest) -> float:
    """How long each calibration probe of a clip model is: one clip, else one call of a static input."""
    if manifest.audio.clip is not None:
        return float(manifest.audio.clip.seconds)
    spec = manifest.inputs[0]
    if spec.static:
        return float(np.prod([d for d in spec.shape if isinstance(d, int)])) / manifest.audio.sample_rate
    return 1.0


def calibration_mix(manifest: Manifest, options: QuantizeOptions) -> list[str | Path]:
    """What to calibrate on: --calibration folders, else the manifest's quantize.calibration mix, else probes.

    A folder of the manifest's mix is relative to the manifests folder; one that is not there is a
    usage error naming the field.
    """
    if options.calibration:
        return [Path(p) for p in options.calibration]
    mix: list[str | Path] = []
    for index, item in enumerate(manifest.quantize.calibration):
        if item.startswith("probes:"):
            mix.append(item)
            continue
        folder = Path(item).expanduser()
        if not folder.is_absolute() and manifest.path is not None:
            folder = (manifest.path.parent / folder).resolve()
        if not folder.is_dir():
            raise UsageError(
                f"{manifest.path}: field quantize.calibration[{index}]: {item!r} ({folder}) is not a folder of "
                "recordings; give a folder, probes:calibration or probes:speech (or --calibration PATH)."
            )
        mix.append(folder)
    return mix


def _probe_samples(
    manifest: Manifest, kind: str, seed: int, subset_size: int
) -> tuple[list[Sample], str, str]:
    """The probe set of *kind* as calibration samples: clips of one call, or streams for streaming entries."""
    from zoo.frontends import prepare_inputs
    from zoo.probes import probe_set

    rate = manifest.audio.sample_rate
    if manifest.audio.streaming:
        if kind == "speech":
            probes = probe_set(rate, STREAM_SPEECH_SECONDS, "speech", seed=seed)
        else:
            probes = probe_set(rate, STREAM_PROBE_SECONDS, kind, seed=seed, count=STREAM_PROBES)
        how = f"{len(probes)} {kind} probe streams"
    else:
        seconds = calibration_seconds(manifest)
        count = max(CALIBRATION_PROBES, subset_size) if kind == "calibration" else None
        probes = probe_set(rate, seconds, kind, seed=seed, **({"count": count} if count else {}))
        how = f"{len(probes)} {kind} probes of {seconds:g} s"
    samples = [Sample(f"{kind}:{p.name}", prepare_inputs(manifest, p.audio, rate)) for p in probes]
    digest = hashlib.sha256(b"".join(np.ascontiguousarray(p.audio).tobytes() for p in probes)).hexdigest()
    return samples, how, digest


def _folder_samples(manifest: Manifest, root: Path) -> tuple[list[Sample], str, str]:
    """Every recording under *root* through the host preprocessing (as `zoo verify --audio` reads them)."""
    from zoo.bars import bar
    from zoo.frontends import prepare_inputs

    paths = audio_files(root)
    samples = []
    with bar(f"{manifest.name}: reading calibration audio", len(paths)) as progress:
        for path in paths:
            audio, file_rate = read_audio(path)
            samples.append(
                Sample(path.relative_to(root).as_posix(), prepare_inputs(manifest, audio, file_rate))
            )
            progress.advance()
    return samples, f"{len(paths)} files from {root}", files_digest(paths, root)


def calibration_samples(
    manifest: Manifest, options: QuantizeOptions, subset_size: int
) -> tuple[list[Sample], str, str, list[dict[str, str]]]:
    """(samples, a description for people, a digest for the stamp, what each part was) of the calibration audio.

    The parts are the --calibration folders, else the manifest's calibration mix, else the probe
    set's "calibration" kind (plus speech streams for streaming entries); each part is recorded
    with the sha256 of its files (relative names and contents) or of its probe audio.
    """
    from zoo.frontends import frontend_for, synthetic_feature_inputs

    mix = calibration_mix(manifest, options)
    if not mix and not frontend_for(manifest).takes_audio:
        count = max(CALIBRATION_PROBES, subset_size)
        feeds = synthetic_feature_inputs(manifest, count, options.seed + 1)
        how = f"{count} synthetic feature inputs"
        digest = f"synthetic:{count}:{options.seed}"
        return (
            [Sample(f"synthetic-{i + 1}", [f]) for i, f in enumerate(feeds)],
            how,
            digest,
            [{"part": how, "sha256": digest}],
        )
    if not mix:
        mix = ["probes:calibration", *(["probes:speech"] if manifest.audio.streaming else [])]
    samples: list[Sample] = []
    parts: list[dict[str, str]] = []
    for item in mix:
        if isinstance(item, Path):
            found, how, digest = _folder_samples(manifest, item)
            parts.append({"part": how, "folder": str(item), "sha256": digest})
        else:
            found, how, digest = _probe_samples(
                manifest, item.split(":", 1)[1], options.seed + 1, subset_size
            )
            parts.append({"part": how, "probes": item, "sha256": digest})
        samples += found
    combined = hashlib.sha256("\n".join(f"{p['part']}:{p['sha256']}" for p in parts).encode()).hexdigest()
    return samples, " + ".join(p["part"] for p in parts), f"mix:{combined}", parts


def labelled_samples(manifest: Manifest, out: Path, dataset_dir: Path) -> tuple[list[Sample], str]:
    """The --dataset folder as labelled samples, and a digest of its files."""
    from zoo.frontends import prepare_inputs

    dataset = read_dataset(dataset_dir, read_classes(manifest, out), detector=is_detector(manifest))
    samples = []
    for item in dataset.files:
        audio, rate = read_audio(item.path)
        samples.append(
            Sample(
                item.path.relative_to(dataset.directory).as_posix(),
                prepare_inputs(manifest, audio, rate),
                item.label,
            )
        )
    return samples, files_digest([f.path for f in dataset.files], dataset.directory)


def spread(items: list[T], count: int) -> list[T]:
    """*count* items evenly spread over the list (all of them when there are fewer)."""
    if len(items) <= count:
        return list(items)
    index = np.linspace(0, len(items) - 1, count).round().astype(int)
    return [items[i] for i in index]


def calibration_items(
    reference: Runner, manifest: Manifest, samples: list[Sample], subset_size: int
) -> list[Feeds]:
    """Complete feeds for NNCF: streams are run through FP32 so each chunk carries its real state."""
    from zoo.bars import bar

    items: list[Feeds] = []
    if not manifest.audio.streaming:
        for sample in samples:
            items += sample.feeds
        return spread(items, subset_size)
    with bar(f"{manifest.name}: recurrent state of the calibration streams", len(samples)) as progress:
        for sample in samples:
            items += run_stream(reference, manifest, sample.feeds)[0]
            progress.advance()
    return spread(items, subset_size)
