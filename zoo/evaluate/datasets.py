"""Dataset folders: one subfolder per class (named as in the labels), audio files soundfile reads.

Folder names are compared without regard to case and punctuation. Single-output detectors
(voice activity) take the positive class's folder plus a negative one (`non-speech`,
`no-speech`, `background` ...).
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from zoo.audio_files import AUDIO_SUFFIXES, in_folder  # AUDIO_SUFFIXES re-exported
from zoo.errors import UsageError, ZooError

if TYPE_CHECKING:
    from zoo.manifest import Manifest


#: names a detector's negative folder may have ({label} is the positive class)
NEGATIVE_FOLDERS = ("non-{label}", "no-{label}", "not-{label}", "non{label}", "background", "negative")


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


def read_dataset(directory: str | Path, classes: list[str], *, detector: bool = False) -> LabelledSet:
    """Map each subfolder to a class index; refuse folders that name no class."""
    directory = Path(directory)
    if not directory.is_dir():
        raise UsageError(
            f"--dataset {directory}: not a folder (expected one subfolder per class with audio files)."
        )
    index: dict[str, int] = {}
    for position, name in enumerate(classes):
        index.setdefault(name, position)
    by_key: dict[str, int] = {}
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
        found.files += [LabelledFile(path, label) for path in in_folder(folder)]
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


def read_classes(manifest: Manifest, out: Path) -> list[str]:
    """The entry's class names, as its labels file in the source folder gives them."""
    from zoo.layout import ModelLayout

    return list(manifest.read_labels(ModelLayout(Path(out), manifest.name).source_dir))
