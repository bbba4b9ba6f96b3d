"""`zoo bench`: latency and throughput of the source model and of every artifact, side by side.

Each subject (the source framework, ONNX Runtime on the export, OpenVINO on each IR
precision) is loaded, warmed up, then called back to back for a fixed time on one
realistic input (seeded noise through the manifest's preprocessing). Latency
percentiles come from the individual calls; throughput counts items (calls x batch)
over the measured wall time. The speed-up is the source's median latency over the
subject's; GFLOP/s uses the manifest's `flops` per item, next to a measured peak
(one large f32 MatMul on OpenVINO with the same thread count).
"""

from __future__ import annotations

import functools
import os
import platform
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from zoo.errors import UsageError, ZooError
from zoo.evaluate import ARTIFACT_ORDER
from zoo.streams import initial_state

RUNTIMES = ("source", "onnxruntime", "openvino")
PRECISIONS = ("FP32", "FP16", "INT8")


# -- the timing core --------------------------------------------------------------------------


@dataclass
class Timing:
    """Latencies of individual calls (seconds) and the wall time they took together."""

    latencies: np.ndarray
    wall: float
    batch: int = 1

    @property
    def calls(self) -> int:
        return int(self.latencies.shape[0])

    def percentile(self, q: float) -> float:
        return float(np.percentile(self.latencies, q))

    @property
    def p50(self) -> float:
        return self.percentile(50)

    @property
    def p90(self) -> float:
        return self.percentile(90)

    @property
    def mean(self) -> float:
        return float(self.latencies.mean())

    @property
    def throughput(self) -> float:
        """Items per second over the measured wall time."""
        return self.calls * self.batch / self.wall if self.wall > 0 else float("nan")


def time_calls(
    call,
    *,
    seconds: float = 3.0,
    warmup_seconds: float | None = None,
    min_calls: int = 5,
    max_calls: int | None = None,
    batch: int = 1,
    tick=None,
) -> Timing:
    """Warm *call* up, then call it back to back for *seconds* (at least *min_calls* times).

    Warm-up runs at least three calls and at least *warmup_seconds* (default: a fifth of the
    measured time, at most 2 s), so one-time costs (allocation, JIT, caches) stay out of the figures.
    *tick(fraction)* reports progress from 0 to 1.
    """
    if seconds <= 0:
        raise UsageError(f"--seconds must be positive, got {seconds}.")
    warmup_seconds = min(2.0, seconds / 5) if warmup_seconds is None else warmup_seconds
    started = time.perf_counter()
    done = 0
    while done < 3 or time.perf_counter() - started < warmup_seconds:
        call()
        done += 1
    latencies = []
    clock = time.perf_counter
    begin = clock()
    last_tick = begin
    while True:
        t0 = clock()
        call()
        t1 = clock()
        latencies.append(t1 - t0)
        if tick is not None and t1 - last_tick > 0.1:
            tick(min(1.0, (t1 - begin) / seconds))
            last_tick = t1
        if max_calls is not None and len(latencies) >= max_calls:
            break
        if t1 - begin >= seconds and len(latencies) >= min_calls:
            break
    wall = clock() - begin
    if tick is not None:
        tick(1.0)
    return Timing(np.asarray(latencies, dtype=np.float64), wall, batch)


# -- what to measure ---------------------------------------------------------------------------


@dataclass
class Row:
    """One subject's figures; times in milliseconds, sizes in bytes."""

    model: str
    artifact: str
    runtime: str
    precision: str
    size: int | None = None
    batch: int = 1
    threads: int | None = None
    calls: int | None = None
    p50_ms: float | None = None
    p90_ms: float | None = None
    mean_ms: float | None = None
    throughput: float | None = None
    speedup: float | None = None
    gflops: float | None = None
    agreement: float | None = None
    agreement_metric: str | None = None
    inference_precision: str | None = None
    error: str | None = None


def parse_list(values: list[str] | None, known: tuple[str, ...], option: str) -> list[str] | None:
    if not values:
        return None
    lookup = {k.casefold(): k for k in known}
    chosen = []
    for value in values:
        for part in (p.strip() for p in value.split(",")):
            if not part:
                continue
            if part.casefold() not in lookup:
                raise UsageError(f"{option}: unknown value {part!r}; expected some of {', '.join(known)}.")
            if lookup[part.casefold()] not in chosen:
                chosen.append(lookup[part.casefold()])
    return chosen


def file_size(*paths: Path) -> int | None:
    try:
        return sum(Path(p).stat().st_size for p in paths)
    except OSError:
        return None


def source_runtime(manifest) -> str:
    """What runs the source model, for the table: the original framework."""
    return {
        "onnx": "onnxruntime (source file, no graph optimizations)",
        "pytorch": "torch",
        "torchscript": "torch (TorchScript)",
        "keras": "tf_keras",
        "tflite": "tflite",
        "lasagne": "torch (rebuilt)",
    }.get(manifest.framework, manifest.framework)


def bench_input(manifest, batch: int, seed: int = 0) -> dict[str, np.ndarray]:
    """One realistic feed: seeded noise through the manifest's preprocessing, batched by repetition."""
    from zoo.frontends import synthetic_feature_inputs

    feed = dict(synthetic_feature_inputs(manifest, 1, seed)[0])
    if manifest.audio.streaming:
        if batch != 1:
            raise UsageError(
                f"{manifest.name}: a streaming entry (recurrent state) runs with --batch 1 only."
            )
        feed.update(initial_state(manifest))
        return feed
    if batch == 1:
        return feed
    return {name: np.concatenate([value] * batch, axis=0) for name, value in feed.items()}


def _open(artifact: str, path: Path, batch: int, hint: str | None, threads: int | None):
    """(lean runner, inference precision) for one artifact file (zoo.runtimes' bench mode)."""
    from zoo.runtimes import LeanOnnxRuntime, LeanOpenVino

    if not path.is_file():
        raise ZooError(f"{path} does not exist.")
    try:
        if path.suffix == ".xml":
            runner = LeanOpenVino(path, batch, hint, threads)
            return runner, runner.precision
        return LeanOnnxRuntime(path, batch, threads), None
    except Exception as exc:  # the runtimes reject files and shapes with their own exception types
        cause = exc.__cause__ if isinstance(exc, ZooError) else exc
        if cause is None:  # our own check (a missing weights file): its message says it all
            raise
        what = f"batch {batch} does not fit this model's graph" if batch != 1 else "cannot load it"
        raise ZooError(f"{path.name}: {what}: {str(cause).splitlines()[0]}") from exc


def agreement_from_report(layout, artifact: str) -> tuple[float | None, str | None]:
    """INT8 / FP16 agreement with the source, as `zoo verify` measured it (report.json)."""
    import json

    try:
        report = json.loads(layout.report.read_text(encoding="utf-8"))
        metrics = report["artifacts"][artifact]["metrics"]
    except (OSError, ValueError, KeyError, TypeError):
        return None, None
    for key in ("decision", "top1"):
        if isinstance(metrics.get(key), int | float):
            return float(metrics[key]), key
    return None, None


def plan(
    manifest, out: Path, runtimes: list[str] | None, precisions: list[str] | None
) -> list[tuple[str, str, Path | None]]:
    """(artifact, runtime, path) subjects present in the layout, in display order."""
    from zoo.layout import ModelLayout

    layout = ModelLayout(out, manifest.name)
    runtimes = runtimes or list(RUNTIMES)
    precisions = precisions or list(PRECISIONS)
    subjects = []
    if "source" in runtimes and (layout.source_dir / "SOURCES.json").is_file():
        subjects.append(("source", "source", None))
    if "onnxruntime" in runtimes and layout.onnx.is_file():
        subjects.append(("onnx", "onnxruntime", layout.onnx))
    qdq = layout.ir_dir("INT8") / f"{manifest.name}.onnx"
    if "onnxruntime" in runtimes and "INT8" in precisions and qdq.is_file():
        subjects.append(("INT8-QDQ", "onnxruntime", qdq))
    if "openvino" in runtimes:
        for precision in PRECISIONS:
            if precision in precisions and layout.ir_xml(precision).is_file():
                subjects.append((precision, "openvino", layout.ir_xml(precision)))
    return subjects


def _failure(exc: Exception) -> str:
    if isinstance(exc, ZooError):
        return exc.message
    text = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {text}"


def bench_model(
    manifest,
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
    with bar(f"{manifest.name}: loading", len(subjects), show_progress) as progress:
        for index, (artifact, runtime, path) in enumerate(subjects):
            row = Row(
                manifest.name,
                artifact,
                runtime,
                artifact if artifact in PRECISIONS else ("INT8" if artifact == "INT8-QDQ" else "FP32"),
                batch=batch,
                threads=threads,
            )
            try:
                if artifact == "source":
                    model = open_source(manifest, out, threads=threads)
                    row.threads = model.threads
                    row.runtime = source_runtime(manifest)
                    row.size = file_size(*_source_weights(manifest, out))
                else:
                    model, row.inference_precision = _open(artifact, path, batch, hint, threads)
                    row.size = (
                        file_size(path, path.with_suffix(".bin"))
                        if path.suffix == ".xml"
                        else file_size(path)
                    )
                model.run(feed)  # a subject that cannot run is reported now, not timed
                if isinstance(model, SourceRunner):
                    # feeds checked and cast once, as the lean runners bind theirs once
                    models[index] = functools.partial(model.infer, model.prepare(feed))
                else:
                    models[index] = functools.partial(model.run, feed)
            except Exception as exc:  # a runtime failing on one subject must not hide the others
                row.error = _failure(exc)
            if artifact in PRECISIONS or artifact == "onnx":
                row.agreement, row.agreement_metric = agreement_from_report(layout, artifact)
            rows.append(row)
            progress.advance()
    latencies: dict[int, list[np.ndarray]] = {index: [] for index in models}
    walls: dict[int, float] = dict.fromkeys(models, 0.0)
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
                        tick=lambda fraction, d=done: progress.set(d + fraction),
                    )
                except Exception as exc:  # keep measuring the others
                    rows[index].error = _failure(exc)
                    continue
                latencies[index].append(timing.latencies)
                walls[index] += timing.wall
    for index, parts in latencies.items():
        row = rows[index]
        if row.error is not None or not parts:
            continue
        timing = Timing(np.concatenate(parts), walls[index], batch)
        row.calls = timing.calls
        row.p50_ms, row.p90_ms, row.mean_ms = timing.p50 * 1e3, timing.p90 * 1e3, timing.mean * 1e3
        row.throughput = timing.throughput
        if manifest.flops:
            row.gflops = manifest.flops * batch / timing.p50 / 1e9
    source = next((r for r in rows if r.artifact == "source" and r.p50_ms), None)
    for row in rows:
        if source is not None and row.p50_ms:
            row.speedup = source.p50_ms / row.p50_ms
    return rows


def _source_weights(manifest, out: Path) -> list[Path]:
    from zoo.fetch import read_source_set

    sources = read_source_set(manifest, out)
    if sources is None:
        return []
    weights = {f.name for f in manifest.files if f.role == "weights"} | {"weights"}
    return [p for name, p in sources.files.items() if name in weights]


# -- the machine -----------------------------------------------------------------------------


def measure_peak_gflops(threads: int | None = None, size: int = 1024, seconds: float = 1.0) -> float:
    """Achieved f32 GFLOP/s of one large MatMul on OpenVINO's CPU plugin: the practical peak here."""
    import openvino as ov
    import openvino.opset13 as ops

    from zoo.runtimes import openvino_core

    left = ops.parameter([size, size], ov.Type.f32, name="left")
    right = ops.constant(np.random.RandomState(0).standard_normal((size, size)).astype(np.float32))
    model = ov.Model([ops.matmul(left, right, False, False)], [left], "peak")
    config: dict[str, object] = {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_PRECISION_HINT": "f32"}
    if threads:
        config["INFERENCE_NUM_THREADS"] = int(threads)
    compiled = openvino_core().compile_model(model, "CPU", config)
    request = compiled.create_infer_request()
    data = np.random.RandomState(1).standard_normal((size, size)).astype(np.float32)
    timing = time_calls(lambda: request.infer([data]), seconds=seconds, warmup_seconds=0.2)
    return 2.0 * size**3 / timing.p50 / 1e9


def _load() -> float | None:
    try:
        return round(os.getloadavg()[0], 2)
    except OSError:
        return None


def machine() -> dict:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "platform": f"{platform.system()}-{platform.machine()}"}


def bench(
    manifests,
    out: str | Path,
    *,
    runtimes=None,
    precisions=None,
    batch: int = 1,
    threads: int | None = None,
    seconds: float = 3.0,
    hint: str | None = "f32",
    rounds: int = 3,
    peak: bool = True,
    show_progress: bool = True,
) -> dict:
    """Benchmark each selected model; the result is what `--json` prints."""
    from zoo.versions import versions

    load_before = _load()
    rows = []
    for manifest in manifests:
        rows += bench_model(
            manifest,
            out,
            runtimes=runtimes,
            precisions=precisions,
            batch=batch,
            threads=threads,
            seconds=seconds,
            hint=hint,
            rounds=rounds,
            show_progress=show_progress,
        )
    host = machine()
    if peak and any(r.gflops for r in rows):
        host["peak_gflops_f32"] = measure_peak_gflops(threads)
    # other work on the cores shows in every figure (OpenVINO's worker threads suffer most)
    host["load_average"] = {"before": load_before, "after": _load()}
    versions_used = {
        k: v
        for k, v in versions().items()
        if k in ("zoo", "torch", "onnxruntime", "openvino", "tensorflow", "nncf")
    }
    return {
        "machine": host,
        "versions": versions_used,
        "options": {
            "batch": batch,
            "threads": threads,
            "seconds": seconds,
            "rounds": rounds,
            "openvino_precision_hint": hint or "default",
        },
        "rows": [asdict(r) for r in rows],
    }


def order_key(row: dict) -> tuple:
    artifact = row["artifact"]
    base = artifact.split("-")[0]
    return (row["model"], ARTIFACT_ORDER.index(base) if base in ARTIFACT_ORDER else 99, artifact)
