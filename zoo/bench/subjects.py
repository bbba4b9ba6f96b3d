"""What `zoo bench` measures: the subjects present in a model's layout, their input and their row.

A subject is the source framework, ONNX Runtime on the export (and on the QDQ INT8 model),
or OpenVINO on one IR precision. Each is opened in zoo.runtimes' lean bench mode and fed
one realistic input (seeded noise through the manifest's preprocessing).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from zoo.errors import UsageError, ZooError
from zoo.streams import initial_state
from zoo.vocab import ALL_IR_PRECISIONS, RUNTIMES

if TYPE_CHECKING:
    from zoo.layout import ModelLayout
    from zoo.manifest import Manifest
    from zoo.runtimes import Runner

#: (artifact, runtime, file; None for the source model)
Subject = tuple[str, str, Path | None]


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
    p50_ms: float | None = None  #: the runtime's own timer where it has one (OpenVINO), else per call
    python_p50_ms: float | None = None  #: per call as Python sees it (input binding, the call, the return)
    p90_ms: float | None = None
    mean_ms: float | None = None
    throughput: float | None = None
    speedup: float | None = None
    gflops: float | None = None
    agreement: float | None = None
    agreement_metric: str | None = None
    inference_precision: str | None = None
    error: str | None = None
    #: the median of each interleaved round, their largest relative difference, and whether the run
    #: was steady (False: the rounds differ by more than the figures' precision and than chance)
    round_p50_ms: list[float] | None = None
    round_spread: float | None = None
    steady: bool | None = None
    #: with --profile: the slowest operations of an IR (op, type, kernel, ms per call, share)
    profile: list[dict[str, Any]] | None = None


def file_size(*paths: Path) -> int | None:
    """Bytes of the files together; None when one is missing."""
    try:
        return sum(Path(p).stat().st_size for p in paths)
    except OSError:
        return None


def source_runtime(manifest: Manifest) -> str:
    """What runs the source model, for the table: the original framework."""
    return {
        "onnx": "onnxruntime (source file, no graph optimizations)",
        "pytorch": "torch",
        "torchscript": "torch (TorchScript)",
        "keras": "tf_keras",
        "tflite": "tflite",
        "tf1-checkpoint": "tensorflow (frozen TF1 graph)",
        "lasagne": "torch (rebuilt)",
    }.get(manifest.framework, manifest.framework)


def bench_input(manifest: Manifest, batch: int, seed: int = 0) -> dict[str, np.ndarray]:
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


def open_subject(
    artifact: str, path: Path, batch: int, hint: str | None, threads: int | None
) -> tuple[Runner, str | None]:
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


def agreement_from_report(layout: ModelLayout, artifact: str) -> tuple[float | None, str | None]:
    """INT8 / FP16 agreement with the source, as `zoo verify` measured it (report.json)."""
    from zoo.records import REPORT_SCHEMA, Report, read_record

    report = read_record(Report, layout.report, REPORT_SCHEMA)
    if report is None or artifact not in report.artifacts:
        return None, None
    metrics = report.artifacts[artifact].metrics
    for key in ("decision", "top1"):
        if isinstance(metrics.get(key), int | float):
            return float(metrics[key]), key
    return None, None


def plan(
    manifest: Manifest, out: Path, runtimes: list[str] | None, precisions: list[str] | None
) -> list[Subject]:
    """(artifact, runtime, path) subjects present in the layout, in display order."""
    from zoo.layout import ModelLayout

    layout = ModelLayout(out, manifest.name)
    runtimes = runtimes or list(RUNTIMES)
    precisions = precisions or list(ALL_IR_PRECISIONS)
    subjects: list[Subject] = []
    if "source" in runtimes and (layout.source_dir / "SOURCES.json").is_file():
        subjects.append(("source", "source", None))
    if "onnxruntime" in runtimes and layout.onnx.is_file():
        subjects.append(("onnx", "onnxruntime", layout.onnx))
    qdq = layout.ir_dir("INT8") / f"{manifest.name}.onnx"
    if "onnxruntime" in runtimes and "INT8" in precisions and qdq.is_file():
        subjects.append(("INT8-QDQ", "onnxruntime", qdq))
    if "openvino" in runtimes:
        for precision in ALL_IR_PRECISIONS:
            if precision in precisions and layout.ir_xml(precision).is_file():
                subjects.append((precision, "openvino", layout.ir_xml(precision)))
    return subjects


def failure(exc: Exception) -> str:
    """One line for a subject's error column: our own message, else the exception's type and first line."""
    if isinstance(exc, ZooError):
        return exc.message
    text = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {text}"


def source_weights(manifest: Manifest, out: Path) -> list[Path]:
    """The source model's weights files as fetched (its size column); none when not fetched."""
    from zoo.source_folder import read_source_set

    sources = read_source_set(manifest, out)
    if sources is None:
        return []
    weights = {f.name for f in manifest.files if f.role == "weights"} | {"weights"}
    return [p for name, p in sources.files.items() if name in weights]
