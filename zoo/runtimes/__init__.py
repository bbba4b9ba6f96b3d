"""Run models the same way, whatever the runtime: one Runner family.

`open_artifact` gives a Runner for an ONNX file (ONNX Runtime, CPU) or an OpenVINO IR (.xml, CPU
plugin); `open_source` the source model of an output folder in its original framework. Feeds and
results are dicts keyed by tensor names (the manifest's names, which the exports keep). The
frameworks are imported when a runner is made, never when this package is.

- base.py: the Runner contract (names, feed checks and casts, `run`);
- onnxruntime.py / openvino.py: the two target runtimes, each with a bench ("lean") mode;
- source.py: the source framework through its converter.
"""

from __future__ import annotations

from pathlib import Path

from zoo.errors import UsageError
from zoo.runtimes.base import Runner
from zoo.runtimes.onnxruntime import LeanOnnxRuntime, OnnxRuntimeRunner
from zoo.runtimes.openvino import LeanOpenVino, OpenVinoRunner, cpu_default_precision, openvino_core
from zoo.runtimes.source import NoSources, SourceRunner, open_source
from zoo.vocab import Runtime

#: the target runtimes an artifact runs on
RUNTIMES = (Runtime.ONNXRUNTIME.value, Runtime.OPENVINO.value)


def open_artifact(
    path: str | Path,
    kind: str | None = None,
    hint: str | None = "f32",
    threads: int | None = None,
    *,
    exact: bool = False,
) -> Runner:
    """A Runner for `path`: `.onnx` on ONNX Runtime, `.xml` on OpenVINO's CPU plugin.

    *kind* is the artifact kind ('onnx', 'FP32', 'FP16', 'INT8'), used in messages only; *hint* is
    OpenVINO's INFERENCE_PRECISION_HINT ('f32' for parity, None for the plugin's default); *exact*
    turns the runtimes' int8 shortcuts off (see OnnxRuntimeRunner and OpenVinoRunner).
    """
    path = Path(path)
    label = f"{kind} artifact " if kind else ""
    if not path.is_file():
        raise UsageError(f"{label}{path} does not exist; run `zoo convert` first.")
    if path.suffix == ".onnx":
        return OnnxRuntimeRunner(path, threads=threads, exact=exact)
    if path.suffix == ".xml":
        return OpenVinoRunner(path, hint=hint, threads=threads, exact=exact)
    raise UsageError(
        f"{label}{path}: expected an .onnx file or an OpenVINO .xml IR, got {path.suffix or 'no suffix'}."
    )


__all__ = [
    "RUNTIMES",
    "LeanOnnxRuntime",
    "LeanOpenVino",
    "NoSources",
    "OnnxRuntimeRunner",
    "OpenVinoRunner",
    "Runner",
    "SourceRunner",
    "cpu_default_precision",
    "open_artifact",
    "open_source",
    "openvino_core",
]
