"""`zoo bench --throughput`: audio seconds processed per wall second, each subject at its best.

Archive processing cares how fast a whole collection goes, not how fast one window returns. Each
subject is run in the configurations an archive job would try on the same cores, and its best is
reported beside the source framework's best:
- one instance using every thread (`1 x N threads`);
- N instances of one thread each, called from N Python threads (the runtimes release the GIL while
  they compute);
- for IRs, OpenVINO's own throughput mode: PERFORMANCE_HINT THROUGHPUT (several streams) fed by an
  AsyncInferQueue with the plugin's optimal number of requests, as benchmark_app's throughput mode.
A window advances the audio by the manifest's clip hop (its length when clips do not overlap), so
windows per second times that hop is the audio processed per second.
"""

from __future__ import annotations

import functools
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from zoo.bench.subjects import bench_input, failure, open_subject, plan, source_runtime

if TYPE_CHECKING:
    from zoo.manifest import Manifest

#: one call of a subject, made ready (inputs bound) by its opener
Call = Callable[[], object]


@dataclass
class ThroughputRow:
    """One subject's best configuration and what it processed."""

    model: str
    artifact: str
    runtime: str
    configuration: str | None = None
    windows_per_s: float | None = None
    audio_s_per_s: float | None = None
    versus_source: float | None = None  #: this subject's best over the source framework's best
    tried: dict[str, float] = field(default_factory=dict)  #: windows per second of each configuration
    error: str | None = None


def audio_seconds_per_window(manifest: Manifest) -> float | None:
    """How far one window advances the audio: the clip hop, else the clip length (None: no clips)."""
    clip = manifest.audio.clip
    return None if clip is None else float(clip.hop or clip.seconds)


def _parallel(calls: list[Call], seconds: float) -> float:
    """Calls per second of `calls` run side by side from their own threads for `seconds`."""
    for call in calls:  # warm-up: first-call costs stay out of the figure
        call()
    counts = [0] * len(calls)
    start = threading.Barrier(len(calls) + 1)
    deadline: list[float] = []

    def loop(index: int) -> None:
        start.wait()
        while time.perf_counter() < deadline[0]:
            calls[index]()
            counts[index] += 1

    workers = [threading.Thread(target=loop, args=(i,), daemon=True) for i in range(len(calls))]
    for worker in workers:
        worker.start()
    begin = time.perf_counter()
    deadline.append(begin + seconds)
    start.wait()
    for worker in workers:
        worker.join()
    return sum(counts) / (time.perf_counter() - begin)


def _openvino_streams(
    path: Path, feed: dict[str, np.ndarray], cores: int, hint: str | None, seconds: float
) -> tuple[str, float]:
    """(configuration, calls per second) of OpenVINO's throughput mode on one IR."""
    import openvino as ov

    from zoo.runtimes.openvino import compile_config, openvino_core, read_batched_ir

    config = compile_config(hint, cores, exact=False, performance="THROUGHPUT")
    compiled = openvino_core().compile_model(read_batched_ir(path, 1), "CPU", config)
    requests = int(compiled.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS"))
    streams = int(compiled.get_property("NUM_STREAMS"))
    queue = ov.AsyncInferQueue(compiled, requests)
    for _ in range(requests):  # warm-up
        queue.start_async(feed)
    queue.wait_all()
    done = 0
    begin = time.perf_counter()
    while time.perf_counter() - begin < seconds:
        queue.start_async(feed)  # blocks while every request is busy
        done += 1
    queue.wait_all()
    return f"{streams} streams, {requests} requests", done / (time.perf_counter() - begin)


def _configurations(cores: int) -> list[tuple[int, int]]:
    """(instances, threads each): one instance on every core, and one single-thread instance per core."""
    return [(1, cores)] if cores == 1 else [(1, cores), (cores, 1)]


def subject_throughput(
    manifest: Manifest,
    out: Path,
    artifact: str,
    path: Path | None,
    cores: int,
    seconds: float,
    hint: str | None,
) -> ThroughputRow:
    """The best configuration of one subject (the source model when `path` is None)."""
    from zoo.runtimes import open_source

    feed = bench_input(manifest, 1)
    runtime = (
        source_runtime(manifest) if path is None else ("openvino" if path.suffix == ".xml" else "onnxruntime")
    )
    row = ThroughputRow(manifest.name, artifact, runtime)
    try:
        for instances, threads in _configurations(cores):
            calls: list[Call] = []
            for _ in range(instances):
                if path is None:
                    source = open_source(manifest, out, threads=threads)
                    calls.append(functools.partial(source.infer, source.prepare(feed)))
                else:  # each instance binds its own copy of the input
                    runner, _ = open_subject(artifact, path, 1, hint, threads)
                    own = {name: np.array(value, copy=True) for name, value in feed.items()}
                    calls.append(functools.partial(runner.run, own))
            name = f"{instances} x {threads} thread{'s' if threads > 1 else ''}"
            row.tried[name] = _parallel(calls, seconds)
        if path is not None and path.suffix == ".xml":
            name, rate = _openvino_streams(path, feed, cores, hint, seconds)
            row.tried[name] = rate
    except Exception as exc:  # one subject failing must not hide the others
        row.error = failure(exc)
        return row
    row.configuration, row.windows_per_s = max(row.tried.items(), key=lambda item: item[1])
    advance = audio_seconds_per_window(manifest)
    row.audio_s_per_s = None if advance is None else row.windows_per_s * advance
    return row


def throughput_model(
    manifest: Manifest,
    out: Path,
    *,
    runtimes: list[str] | None = None,
    precisions: list[str] | None = None,
    threads: int | None = None,
    seconds: float = 3.0,
    hint: str | None = "f32",
) -> list[ThroughputRow]:
    """Every subject of one model at its best configuration on `threads` cores (default: all)."""
    from zoo.errors import UsageError

    cores = threads or os.cpu_count() or 1
    subjects = plan(manifest, out, runtimes, precisions)
    if not subjects:
        raise UsageError(
            f"{manifest.name}: nothing to measure under {out} for the chosen runtimes and precisions; "
            "run `zoo convert` (and `zoo quantize` for INT8) first."
        )
    rows = [
        subject_throughput(manifest, out, artifact, path, cores, seconds, hint)
        for artifact, _, path in subjects
    ]
    source = next((r for r in rows if r.artifact == "source" and r.windows_per_s), None)
    for row in rows:
        if source is not None and source.windows_per_s and row.windows_per_s:
            row.versus_source = row.windows_per_s / source.windows_per_s
    return rows


def bench_throughput(
    manifests: list[Manifest],
    out: str | Path,
    *,
    runtimes: list[str] | None = None,
    precisions: list[str] | None = None,
    threads: int | None = None,
    seconds: float = 3.0,
    hint: str | None = "f32",
) -> dict[str, Any]:
    """Throughput of every selected model's subjects; the result is what `--json` prints."""
    from dataclasses import asdict

    from zoo.bench.machine import load_average, measured_on

    load_before = load_average()
    rows: list[ThroughputRow] = []
    for manifest in manifests:
        rows += throughput_model(
            manifest,
            Path(out),
            runtimes=runtimes,
            precisions=precisions,
            threads=threads,
            seconds=seconds,
            hint=hint,
        )
    host, versions_used = measured_on(load_before)
    return {
        "machine": host,
        "versions": versions_used,
        "options": {
            "mode": "throughput",
            "cores": threads or os.cpu_count() or 1,
            "seconds": seconds,
            "openvino_precision_hint": hint or "default",
        },
        "rows": [asdict(r) for r in rows],
    }
