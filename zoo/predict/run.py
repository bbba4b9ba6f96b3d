"""Run a model over files: each file's windows block by block, several files at once, with progress.

A streaming model (silero-vad) carries its recurrent state from chunk to chunk across blocks, from
zeros at the start of each file, as `zoo.streams` does for verify. Files run in worker threads
(`-j`), each thread with its own runner (the runtimes release the GIL while they compute); results
come back in the order the files were given. Progress counts audio seconds, and its description
shows the realtime factor (audio seconds per wall second).
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

import numpy as np

from zoo.predict.audio import AudioInfo, Geometry, blocks, geometry, probe
from zoo.predict.tasks import Collector, FileResult, Options
from zoo.streams import initial_state, state_pairs

if TYPE_CHECKING:
    from pathlib import Path

    from zoo.manifest import Manifest
    from zoo.predict.model import Chosen
    from zoo.runtimes import Runner


def window_outputs(
    runner: Runner, manifest: Manifest, info: AudioInfo, grid: Geometry
) -> Iterator[tuple[int, np.ndarray, float]]:
    """(window index, raw main output, audio seconds the block covered) for every window of a file."""
    name = manifest.main_output.name
    pairs = state_pairs(manifest) if manifest.audio.streaming else []
    state = initial_state(manifest) if pairs else {}
    done = 0.0
    for block in blocks(manifest, info, grid):
        for offset, feed in enumerate(block.feeds):
            result = runner.run({**feed, **state} if pairs else feed)
            if pairs:
                state = {
                    p.input: np.asarray(result[p.output]).reshape(p.shape).astype(p.dtype, copy=False)
                    for p in pairs
                }
            index = block.first + offset
            covered = 0.0
            if offset == len(block.feeds) - 1:
                reached = min(info.seconds, (index * grid.hop + grid.length) / grid.rate)
                covered, done = reached - done, reached
            yield index, np.asarray(result[name]), covered


def predict_file(
    runner: Runner,
    chosen: Chosen,
    info: AudioInfo,
    grid: Geometry,
    options: Options,
    advance: Callable[[float], None],
) -> FileResult:
    started = time.perf_counter()
    collector = Collector(chosen.manifest, chosen.labels, grid, options, FileResult(info.path, info.seconds))
    for index, raw, covered in window_outputs(runner, chosen.manifest, info, grid):
        collector.add(index, raw)
        if covered:
            advance(covered)
    result = collector.finish()
    result.wall_seconds = time.perf_counter() - started
    return result


def predict_files(
    chosen: Chosen,
    paths: Sequence[Path],
    options: Options,
    *,
    jobs: int = 1,
    threads: int | None = None,
    progress: bool = True,
) -> tuple[list[FileResult], float]:
    """Every file's result, in order, and the wall seconds they took; unreadable files fail first (exit 2)."""
    from zoo.bars import bar

    grid = geometry(chosen.manifest)
    infos = [probe(p, grid.rate) for p in paths]
    total = sum(i.seconds for i in infos)
    # runners are handed from job to job (at most *jobs* are made); the first is opened before the
    # clock starts, so the realtime factor is the model's speed on the audio, not its loading time
    idle: queue.SimpleQueue[Runner] = queue.SimpleQueue()
    idle.put(chosen.open(threads))
    lock = threading.Lock()
    started = time.perf_counter()

    with bar(f"{chosen.manifest.name} {chosen.artifact}: predicting", total, progress) as shown:
        heard = [0.0]

        def advance(seconds: float) -> None:
            with lock:
                heard[0] += seconds
                shown.advance(seconds)
                wall = time.perf_counter() - started
                if wall > 0:
                    shown.describe(
                        f"{chosen.manifest.name} {chosen.artifact}: {heard[0] / wall:.1f}x realtime"
                    )

        def one(info: AudioInfo) -> FileResult:
            try:
                runner = idle.get_nowait()
            except queue.Empty:
                runner = chosen.open(threads)
            try:
                return predict_file(runner, chosen, info, grid, options, advance)
            finally:
                idle.put(runner)

        if jobs <= 1 or len(infos) <= 1:
            results = [one(info) for info in infos]
        else:
            with ThreadPoolExecutor(max_workers=jobs) as pool:
                results = list(pool.map(one, infos))
    return results, time.perf_counter() - started
