"""Run converted artifacts the same way, whatever the runtime.

`open_artifact` gives a Runner for an ONNX file (ONNX Runtime, CPU) or an
OpenVINO IR (.xml, CPU plugin). Feeds and results are dicts keyed by tensor
names (the manifest's names, which the exports keep).

OpenVINO's CPU plugin computes in bf16 by default on CPUs that have it, so
parity checks ask for `hint="f32"`; `hint=None` leaves the plugin's default,
and `Runner.precision` says what it actually chose.
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np

from zoo.errors import UsageError, ZooError

RUNTIMES = ("onnxruntime", "openvino")


class Runner:
    """One loaded artifact: input and output names, and `run(feeds) -> outputs`."""

    runtime: str
    path: Path
    input_names: list[str]
    output_names: list[str]
    precision: str | None  # inference precision the runtime uses (OpenVINO), None for ONNX Runtime

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        raise NotImplementedError

    def _check_feeds(self, feeds: dict[str, np.ndarray]) -> None:
        missing = [n for n in self.input_names if n not in feeds]
        unknown = [n for n in feeds if n not in self.input_names]
        if missing or unknown:
            raise ZooError(
                f"{self.path}: feeds do not match the artifact's inputs {self.input_names}: "
                f"missing {missing or 'none'}, unknown {unknown or 'none'}."
            )

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.runtime} {self.path.name} precision={self.precision}>"


class OnnxRuntimeRunner(Runner):
    runtime = "onnxruntime"

    def __init__(self, path: Path, threads: int | None = None, optimize: bool = True):
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.log_severity_level = 3
        if threads:
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
        if not optimize:
            options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        try:
            self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # ORT raises its own exception types for bad files
            raise ZooError(f"{path}: ONNX Runtime cannot load this model: {exc}") from exc
        self.path = Path(path)
        self.input_names = [i.name for i in self.session.get_inputs()]
        self.output_names = [o.name for o in self.session.get_outputs()]
        self._types = {i.name: _ORT_TYPES.get(i.type) for i in self.session.get_inputs()}
        self.precision = None

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        self._check_feeds(feeds)
        prepared = {name: _as(feeds[name], self._types[name]) for name in self.input_names}
        values = self.session.run(self.output_names, prepared)
        return dict(zip(self.output_names, values, strict=True))


_ORT_TYPES = {
    "tensor(float)": np.float32,
    "tensor(float16)": np.float16,
    "tensor(double)": np.float64,
    "tensor(int64)": np.int64,
    "tensor(int32)": np.int32,
    "tensor(uint8)": np.uint8,
    "tensor(int8)": np.int8,
}


def _as(array: np.ndarray, dtype) -> np.ndarray:
    array = np.asarray(array)
    if dtype is None or array.dtype == dtype:
        return np.ascontiguousarray(array)
    return np.ascontiguousarray(array.astype(dtype))


@functools.lru_cache(maxsize=1)
def openvino_core():
    """One OpenVINO Core per process (creating one loads the plugins)."""
    import openvino as ov

    return ov.Core()


def cpu_default_precision() -> str:
    """The inference precision OpenVINO's CPU plugin picks when not told (bf16 on CPUs that have it)."""
    return _type_name(openvino_core().get_property("CPU", "INFERENCE_PRECISION_HINT"))


class OpenVinoRunner(Runner):
    runtime = "openvino"

    def __init__(self, path: Path, hint: str | None = "f32", threads: int | None = None):
        core = openvino_core()
        self.path = Path(path)
        bin_path = self.path.with_suffix(".bin")
        if not bin_path.is_file():
            raise ZooError(f"{path}: the IR's weights file {bin_path.name} is missing beside it.")
        config: dict[str, object] = {}
        if hint:
            config["INFERENCE_PRECISION_HINT"] = hint
        if threads:
            config["INFERENCE_NUM_THREADS"] = int(threads)
        try:
            model = core.read_model(str(self.path))
            self.compiled = core.compile_model(model, "CPU", config)
        except Exception as exc:  # OpenVINO raises RuntimeError with its own text
            raise ZooError(f"{path}: OpenVINO cannot load this IR: {exc}") from exc
        self.input_names = [_port_name(p) for p in self.compiled.inputs]
        self.output_names = [_port_name(p) for p in self.compiled.outputs]
        self._types = {
            name: _OV_TYPES.get(port.get_element_type().get_type_name())
            for name, port in zip(self.input_names, self.compiled.inputs, strict=True)
        }
        self.precision = _type_name(self.compiled.get_property("INFERENCE_PRECISION_HINT"))
        self.request = self.compiled.create_infer_request()

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        self._check_feeds(feeds)
        prepared = {name: _as(feeds[name], self._types[name]) for name in self.input_names}
        self.request.infer(prepared)
        # copies: the request reuses its output buffers on the next call
        return {
            name: np.array(self.request.get_output_tensor(index).data, copy=True)
            for index, name in enumerate(self.output_names)
        }


_OV_TYPES = {
    "f32": np.float32,
    "f16": np.float16,
    "f64": np.float64,
    "i64": np.int64,
    "i32": np.int32,
    "u8": np.uint8,
    "i8": np.int8,
}


def _type_name(value) -> str:
    """'f32', 'bf16', 'f16' from an ov.Type (or whatever the property returned)."""
    to_string = getattr(value, "to_string", None)
    return to_string() if callable(to_string) else str(value)


def _port_name(port) -> str:
    """A port's tensor name; ports converted from ONNX carry exactly the ONNX name."""
    names = sorted(port.get_names())
    if not names:
        return port.get_node().get_friendly_name()
    return port.get_any_name() if port.get_any_name() in names else names[0]


def open_artifact(
    path: str | Path, kind: str | None = None, hint: str | None = "f32", threads: int | None = None
) -> Runner:
    """A Runner for `path`: `.onnx` on ONNX Runtime, `.xml` on OpenVINO's CPU plugin.

    *kind* is the artifact kind ('onnx', 'FP32', 'FP16', 'INT8'), used in messages only; *hint* is
    OpenVINO's INFERENCE_PRECISION_HINT ('f32' for parity, None for the plugin's default).
    """
    path = Path(path)
    label = f"{kind} artifact " if kind else ""
    if not path.is_file():
        raise UsageError(f"{label}{path} does not exist; run `zoo convert` first.")
    if path.suffix == ".onnx":
        return OnnxRuntimeRunner(path, threads=threads)
    if path.suffix == ".xml":
        return OpenVinoRunner(path, hint=hint, threads=threads)
    raise UsageError(
        f"{label}{path}: expected an .onnx file or an OpenVINO .xml IR, got {path.suffix or 'no suffix'}."
    )
