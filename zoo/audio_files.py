"""The user's recordings: which files a path names, and whether soundfile can read them.

One place for `zoo verify --audio`, `zoo predict` and `zoo quantize --calibration`, so the three
accept the same files and refuse bad ones the same way (exit 2 naming the file) before any
model is loaded.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from zoo.errors import UsageError

#: what a folder is searched for (soundfile reads these)
AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".oga", ".mp3", ".aif", ".aiff", ".au", ".caf", ".w64", ".rf64")


def in_folder(directory: Path) -> list[Path]:
    """The audio files under *directory*, sorted (hidden files skipped)."""
    return sorted(
        p
        for p in Path(directory).rglob("*")
        if p.is_file() and p.suffix.lower() in AUDIO_SUFFIXES and not p.name.startswith(".")
    )


def audio_files(paths: Sequence[Path], option: str = "") -> list[Path]:
    """The files under *paths* (files as given, folders searched), in order; none is exit 2.

    *option* ("--audio") prefixes the error messages.
    """
    prefix = f"{option} " if option else ""
    found: list[Path] = []
    for path in map(Path, paths):
        if path.is_file():
            found.append(path)
        elif path.is_dir():
            found += in_folder(path)
        else:
            raise UsageError(f"{prefix}{path}: no such file or folder.")
    if not found:
        raise UsageError(
            f"{prefix}{', '.join(str(p) for p in paths)}: holds no audio files ({', '.join(AUDIO_SUFFIXES)})."
        )
    return found


def readable(path: Path) -> tuple[int, int]:
    """(sample rate, frames) of an audio file; one soundfile cannot read, or an empty one, is exit 2."""
    import soundfile

    try:
        info = soundfile.info(str(path))
    except Exception as exc:  # libsndfile reports bad files with its own error types
        raise UsageError(f"{path}: cannot read this audio file: {exc}") from exc
    if info.frames <= 0:
        raise UsageError(f"{path}: the audio file holds no samples.")
    return int(info.samplerate), int(info.frames)
