"""`zoo predict` itself: find the model, run it over the files, render the task's output, plot."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from zoo.audio_files import audio_files
from zoo.errors import UsageError
from zoo.predict.formats import FORMATS, render
from zoo.predict.run import predict_files
from zoo.predict.tasks import EMBEDDING, FileResult, Options, task_of

if TYPE_CHECKING:
    from zoo.manifest import Manifest
    from zoo.predict.model import Chosen


@dataclass
class Request:
    """Everything `zoo predict` was asked, apart from where the model is."""

    paths: list[Path]
    artifact: str | None = None
    fmt: str = "table"
    options: Options = field(default_factory=Options)
    overlap: float | None = None
    plot: Path | None = None
    jobs: int = 1
    threads: int | None = None
    progress: bool = True
    save_dir: Path | None = None  # --format npy: where the .npy files go (default: the current folder)


def with_overlap(manifest: Manifest, overlap: float | None) -> Manifest:
    """The manifest with windows every clip - *overlap* seconds (BirdNET's and Kahl's --overlap)."""
    if overlap is None:
        return manifest
    clip = manifest.audio.clip
    if manifest.audio.streaming or clip is None:
        raise UsageError(f"--overlap: {manifest.name} has no clip windows to overlap (audio.clip).")
    if not 0 <= overlap < clip.seconds:
        raise UsageError(
            f"--overlap {overlap}: expected at least 0 and less than {manifest.name}'s window of {clip.seconds} s."
        )
    audio = manifest.audio.model_copy(
        update={"clip": clip.model_copy(update={"hop": clip.seconds - overlap})}
    )
    return manifest.model_copy(update={"audio": audio})


def plot_targets(target: Path, paths: list[Path]) -> list[Path]:
    """One picture per file: *target* itself for one file, else <target stem>-<file stem>.png beside it."""
    if len(paths) == 1:
        return [target]
    return [target.with_name(f"{target.stem}-{p.stem}{target.suffix or '.png'}") for p in paths]


def predict(chosen: Chosen, request: Request) -> tuple[str, int]:
    """(the text to print, the exit code): 0 whenever every file was read, detections or not."""
    if request.fmt not in FORMATS:
        raise UsageError(f"--format: unknown format {request.fmt!r}; expected one of {', '.join(FORMATS)}.")
    if request.plot is not None and request.plot.suffix.lower() not in (".png", ""):
        raise UsageError(f"--plot {request.plot}: expected a .png file name.")
    chosen.manifest = with_overlap(chosen.manifest, request.overlap)
    files = audio_files(request.paths)
    options = request.options
    if request.plot is not None:
        options.keep_rows = True
        from zoo.predict.plot import require_matplotlib

        require_matplotlib()
    manifest = chosen.manifest
    task = task_of(manifest, request.options.average)
    if request.fmt == "npy" and task != EMBEDDING:
        raise UsageError(
            f"--format npy saves embeddings; {manifest.name} is not an embedding model (use table, csv or json)."
        )
    sys.stderr.write(f"zoo: {manifest.name}: {chosen.artifact} ({chosen.reason})\n")
    results, wall = predict_files(
        chosen, files, options, jobs=request.jobs, threads=request.threads, progress=request.progress
    )
    heard = sum(r.seconds for r in results)
    factor = heard / wall if wall > 0 else float("inf")
    sys.stderr.write(
        f"zoo: {manifest.name} {chosen.artifact}: {len(results)} file(s), {heard:.1f} s of audio in "
        f"{wall:.1f} s ({factor:.1f}x realtime)\n"
    )
    if request.plot is not None:
        from zoo.predict.plot import plot

        for result, target in zip(results, plot_targets(request.plot, files), strict=True):
            plot(
                result,
                task,
                chosen.labels,
                target,
                f"{result.path.name}: {manifest.name} ({chosen.artifact})",
            )
    meta: dict[str, Any] = {
        "model": manifest.name,
        "artifact": chosen.artifact,
        "chosen_because": chosen.reason,
        "sample_rate": manifest.audio.sample_rate,
        "realtime_factor": round(factor, 3),
    }
    if request.fmt == "npy":
        return save_npy(results, request.save_dir or Path.cwd(), manifest.name), 0
    return render(request.fmt, task, results, options.windows, meta), 0


def save_npy(results: list[FileResult], folder: Path, model: str) -> str:
    """One `<file stem>.<model>.npy` per file, (windows, dims) float32, written atomically; a table of them."""
    import io

    import numpy as np

    from zoo.atomic import write_bytes
    from zoo.predict.formats import table

    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise UsageError(f"--save-dir {folder}: not a folder.")
    folder.mkdir(parents=True, exist_ok=True)
    found = []
    for result in results:
        values = result.rows if result.rows is not None else np.zeros((0, 0), np.float32)
        buffer = io.BytesIO()
        np.save(buffer, values.astype(np.float32), allow_pickle=False)
        target = folder / f"{result.path.stem}.{model}.npy"
        write_bytes(target, buffer.getvalue())
        found.append(
            [
                str(result.path),
                str(values.shape[0]),
                str(values.shape[1] if values.ndim == 2 else 0),
                str(target),
            ]
        )
    return table(["file", "windows", "dims", "saved"], found)
