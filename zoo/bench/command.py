"""The `zoo bench` command: every subject of each model loaded, then timed in interleaved rounds."""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from zoo.bench.machine import load_average, measure_peak_gflops, measured_on
from zoo.bench.subjects import (
    Row,
    agreement_from_report,
    bench_input,
    failure,
    file_size,
    open_subject,
    plan,
    source_runtime,
    source_weights,
)
from zoo.bench.timing import Timing, round_medians, time_calls
from zoo.errors import UsageError
from zoo.vocab import ALL_IR_PRECISIONS, SUBJECTS

if TYPE_CHECKING:
    from zoo.bars import Bar
    from zoo.manifest import Manifest
    from zoo.runtimes import Runner


def bench_model(
    manifest: Manifest,
    out: str | Path,
    *,
    runtimes: list[str] | None = None,
    precisions: list[str] | None = None,
    batch: int = 1,
    threads: int | None = None,
    seconds: float = 3.0,
    hint: str | None = "f32",
    rounds: int = 3,
    show_progress: bool = True,
    profile: int = 0,
) -> list[Row]:
    """Measure every subject of one model; a subject that fails to load or run gets a row with its error.

    All subjects are loaded first, then measured in *rounds* interleaved rounds of seconds/rounds
    each (A B C, A B C ...), so a change of load on a shared machine touches every subject alike
    instead of skewing the speed-ups; each subject's statistics pool its calls from every round.
    """
    from zoo.bars import bar
    from zoo.layout import ModelLayout
    from zoo.runtimes import SourceRunner, open_source

    out = Path(out)
    layout = ModelLayout(out, manifest.name)
    if batch < 1:
        raise UsageError(f"--batch must be at least 1, got {batch}.")
    if rounds < 1:
        raise UsageError(f"--rounds must be at least 1, got {rounds}.")
    subjects = plan(manifest, out, runtimes, precisions)
    if not subjects:
        raise UsageError(
            f"{manifest.name}: nothing to benchmark under {layout.root} for the chosen runtimes and precisions; "
            "run `zoo download` and `zoo convert` (and `zoo quantize` for INT8) first."
        )
    feed = bench_input(manifest, batch)
    rows: list[Row] = []
    models: dict[int, Callable[[], object]] = {}  # subject -> the call that is timed
    runners: dict[int, Runner] = {}  # subject -> its runner (for --profile)
    with bar(f"{manifest.name}: loading", len(subjects), show_progress) as progress:
        for index, (artifact, runtime, path) in enumerate(subjects):
            row = Row(
                manifest.name,
                artifact,
                runtime,
                artifact if artifact in ALL_IR_PRECISIONS else ("INT8" if artifact == "INT8-QDQ" else "FP32"),
                batch=batch,
                threads=threads,
            )
            try:
                model: Runner
                if path is None:  # the source model (every artifact has its file)
                    source_model = open_source(manifest, out, threads=threads)
                    model, row.threads = source_model, source_model.threads
                    row.runtime = source_runtime(manifest)
                    row.size = file_size(*source_weights(manifest, out))
                else:
                    model, row.inference_precision = open_subject(artifact, path, batch, hint, threads)
                    row.size = (
                        file_size(path, path.with_suffix(".bin"))
                        if path.suffix == ".xml"
                        else file_size(path)
                    )
                model.run(feed)  # a subject that cannot run is reported now, not timed
                runners[index] = model
                if isinstance(model, SourceRunner):
                    # feeds checked and cast once, as the lean runners bind theirs once
                    models[index] = functools.partial(model.infer, model.prepare(feed))
                else:
                    models[index] = functools.partial(model.run, feed)
            except Exception as exc:  # a runtime failing on one subject must not hide the others
                row.error = failure(exc)
            if artifact in ALL_IR_PRECISIONS or artifact == "onnx":
                row.agreement, row.agreement_metric = agreement_from_report(layout, artifact)
            rows.append(row)
            progress.advance()
    latencies: dict[int, list[np.ndarray]] = {index: [] for index in models}
    inside: dict[int, list[np.ndarray]] = {index: [] for index in models}
    walls: dict[int, float] = dict.fromkeys(models, 0.0)
    # OpenVINO times each request itself (as benchmark_app reports): the runtime's latency, without Python
    timers = {index: _request_timer(runners[index]) for index in models}
    steps = rounds * len(models)
    with bar(f"{manifest.name}: bench", steps, show_progress) as progress:
        for round_number in range(rounds):
            for step, (index, call) in enumerate(models.items()):
                done = round_number * len(models) + step
                progress.describe(
                    f"{manifest.name}: {rows[index].artifact} ({rows[index].runtime}), "
                    f"round {round_number + 1}/{rounds}"
                )
                try:
                    timing = time_calls(
                        call,
                        seconds=seconds / rounds,
                        batch=batch,
                        warmup_seconds=None if round_number == 0 else 0.0,
                        tick=functools.partial(_tick, progress, done),
                        inner=timers[index],
                    )
                except Exception as exc:  # keep measuring the others
                    rows[index].error = failure(exc)
                    continue
                latencies[index].append(timing.latencies)
                if timing.runtime is not None:
                    inside[index].append(timing.runtime)
                walls[index] += timing.wall
    for index, parts in latencies.items():
        row = rows[index]
        if row.error is not None or not parts:
            continue
        timing = Timing(np.concatenate(parts), walls[index], batch)
        row.calls = timing.calls
        row.python_p50_ms = timing.p50 * 1e3  # per call as Python sees it
        if inside[index]:  # the runtime's own figures, Python's beside them
            timing = Timing(np.concatenate(inside[index]), walls[index], batch)
        row.p50_ms, row.p90_ms, row.mean_ms = timing.p50 * 1e3, timing.p90 * 1e3, timing.mean * 1e3
        medians, row.round_spread, row.steady = round_medians(inside[index] or parts)
        row.round_p50_ms = [m * 1e3 for m in medians]
        row.throughput = timing.throughput
        if manifest.flops:
            row.gflops = manifest.flops * batch / timing.p50 / 1e9
    if profile > 0:
        _profile(rows, runners, feed, profile)
    source = next((r for r in rows if r.artifact == "source" and r.p50_ms), None)
    for row in rows:
        if source is not None and source.p50_ms and row.p50_ms:
            row.speedup = source.p50_ms / row.p50_ms
    return rows


def _profile(rows: list[Row], runners: dict[int, Runner], feed: dict[str, np.ndarray], top: int) -> None:
    """The *top* slowest operations of every IR subject that ran, from OpenVINO's own counters."""
    from zoo.runtimes import OpenVinoRunner
    from zoo.runtimes.openvino import profile_ops

    for index, runner in runners.items():
        if rows[index].error is None and isinstance(runner, OpenVinoRunner):
            try:
                rows[index].profile = profile_ops(runner, feed)[:top]
            except Exception as exc:  # the timing stands without its profile
                rows[index].profile = [{"error": failure(exc)}]


def _request_timer(runner: Runner | None) -> Callable[[], float] | None:
    """The runtime's own latency of a runner's last call in seconds (OpenVINO requests), else None."""
    from zoo.runtimes import OpenVinoRunner

    if isinstance(runner, OpenVinoRunner):
        request = runner.request
        return lambda: float(request.latency) / 1e3  # OpenVINO reports milliseconds
    return None


def _tick(progress: Bar, start: int, fraction: float) -> None:
    """The bar at *start* steps plus the running subject's *fraction* of its round."""
    progress.set(start + fraction)


def bench(
    manifests: Sequence[Manifest],
    out: str | Path,
    *,
    runtimes: list[str] | None = None,
    precisions: list[str] | None = None,
    batch: int = 1,
    threads: int | Sequence[int] | None = None,
    seconds: float = 3.0,
    hint: str | None = "f32",
    rounds: int = 3,
    peak: bool = True,
    show_progress: bool = True,
    profile: int = 0,
) -> dict[str, Any]:
    """Benchmark each selected model; the result is what `--json` prints.

    Several thread counts (`--threads 1,2`) measure every subject at each count in one run, each
    speed-up against the source at the same count.
    """
    load_before = load_average()
    rows = []
    for manifest in manifests:
        for count in thread_counts(threads):
            rows += bench_model(
                manifest,
                out,
                runtimes=runtimes,
                precisions=precisions,
                batch=batch,
                threads=count,
                seconds=seconds,
                hint=hint,
                rounds=rounds,
                show_progress=show_progress,
                profile=profile,
            )
    return bench_summary(
        rows,
        load_before,
        batch=batch,
        threads=threads,
        seconds=seconds,
        hint=hint,
        rounds=rounds,
        peak=peak,
        profile=profile,
    )


def thread_counts(threads: int | Sequence[int] | None) -> list[int | None]:
    """The thread counts one bench run measures at (None: each runtime's own choice)."""
    return [threads] if threads is None or isinstance(threads, int) else list(threads)


def bench_summary(
    rows: Sequence[Row],
    load_before: Any,
    *,
    batch: int,
    threads: int | Sequence[int] | None,
    seconds: float,
    hint: str | None,
    rounds: int,
    peak: bool,
    profile: int,
) -> dict[str, Any]:
    """The machine, versions and options beside the measured rows: what `--json` prints."""
    counts = thread_counts(threads)
    host, versions_used = measured_on(load_before)
    if peak and any(r.gflops for r in rows):
        peaks = {str(c or "default"): measure_peak_gflops(c) for c in counts}
        host["peak_gflops_f32"] = peaks[str(counts[0] or "default")]
        if len(counts) > 1:
            host["peak_gflops_f32_by_threads"] = peaks
    return {
        "machine": host,
        "versions": versions_used,
        "options": {
            "batch": batch,
            "threads": counts[0] if len(counts) == 1 else counts,
            "seconds": seconds,
            "rounds": rounds,
            "openvino_precision_hint": hint or "default",
            "profile": profile,
        },
        "rows": [asdict(r) for r in rows],
    }


def order_key(row: dict[str, Any]) -> tuple[str, int, str]:
    artifact = row["artifact"]
    base = artifact.split("-")[0]
    return (row["model"], SUBJECTS.index(base) if base in SUBJECTS else 99, artifact)
