"""OpenVINO's CPU plugin, from an IR path, an ov.Model, or a model already compiled (as NNCF hands it
to a validation function).

The CPU plugin computes in bf16 by default on CPUs that have it, so parity checks ask for
`hint="f32"`; `hint=None` leaves the plugin's default, and `precision` says what it chose.
`exact=True` is f32 plus dynamic quantization off: ``DYNAMIC_QUANTIZATION_GROUP_SIZE`` (the
``ov::hint::dynamic_quantization_group_size`` property) set to 0, so the plugin does not quantize
activations to int8 on the fly for layers with compressed int8/int4 weights. What was asked is
kept in `config`, what the plugin chose in `precision`.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import numpy as np

from zoo.errors import ZooError
from zoo.runtimes.base import Runner
from zoo.vocab import Runtime

#: the plugin property that turns on-the-fly int8 activation quantization off when 0
DYNAMIC_QUANTIZATION = "DYNAMIC_QUANTIZATION_GROUP_SIZE"

_OV_TYPES: dict[str, type] = {
    "f32": np.float32,
    "f16": np.float16,
    "f64": np.float64,
    "i64": np.int64,
    "i32": np.int32,
    "u8": np.uint8,
    "i8": np.int8,
}


@functools.lru_cache(maxsize=1)
def openvino_core() -> Any:
    """One OpenVINO Core per process (creating one loads the plugins)."""
    import openvino as ov

    return ov.Core()


def cpu_default_precision() -> str:
    """The inference precision OpenVINO's CPU plugin picks when not told (bf16 on CPUs that have it)."""
    return type_name(openvino_core().get_property("CPU", "INFERENCE_PRECISION_HINT"))


def type_name(value: Any) -> str:
    """'f32', 'bf16', 'f16' from an ov.Type (or whatever the property returned)."""
    to_string = getattr(value, "to_string", None)
    return to_string() if callable(to_string) else str(value)


def port_name(port: Any) -> str:
    """A port's tensor name; ports converted from ONNX carry exactly the ONNX name."""
    names = sorted(str(n) for n in port.get_names())
    if not names:
        return str(port.get_node().get_friendly_name())
    any_name = str(port.get_any_name())
    return any_name if any_name in names else names[0]


def read_ir(path: str | Path) -> Any:
    """The ov.Model of an IR; its .bin must lie beside the .xml."""
    path = Path(path)
    bin_path = path.with_suffix(".bin")
    if not bin_path.is_file():
        raise ZooError(f"{path}: the IR's weights file {bin_path.name} is missing beside it.")
    try:
        return openvino_core().read_model(str(path))
    except Exception as exc:  # OpenVINO raises RuntimeError with its own text
        raise ZooError(f"{path}: OpenVINO cannot load this IR: {exc}") from exc


def compile_config(
    hint: str | None = "f32",
    threads: int | None = None,
    exact: bool = False,
    performance: str | None = None,
) -> dict[str, object]:
    """The CPU plugin configuration for these options (exact: f32 and no dynamic quantization)."""
    config: dict[str, object] = {}
    if performance:
        config["PERFORMANCE_HINT"] = performance
    if exact:
        hint = "f32"
        config[DYNAMIC_QUANTIZATION] = 0
    if hint:
        config["INFERENCE_PRECISION_HINT"] = hint
    if threads:
        config["INFERENCE_NUM_THREADS"] = int(threads)
    return config


class OpenVinoRunner(Runner):
    """An IR path, an ov.Model or an ov.CompiledModel on the CPU plugin; outputs are copies.

    A compiled model is used as it is (its configuration was chosen by whoever compiled it; `config`
    then holds what the plugin reports for the properties this runner would set).
    """

    runtime = Runtime.OPENVINO.value

    def __init__(
        self,
        model: str | Path | Any,
        *,
        hint: str | None = "f32",
        threads: int | None = None,
        exact: bool = False,
        performance: str | None = None,
        label: str | None = None,
    ):
        import openvino as ov

        self.path = None
        if isinstance(model, str | Path):
            self.path = Path(model)
            model = read_ir(self.path)
        self.label = label or (str(self.path) if self.path else "in-memory OpenVINO model")
        if isinstance(model, ov.CompiledModel):
            self.compiled = model
            self.config = self._reported_config()
        else:
            self.config = compile_config(hint, threads, exact, performance)
            try:
                self.compiled = openvino_core().compile_model(model, "CPU", self.config)
            except Exception as exc:  # OpenVINO raises RuntimeError with its own text
                what = "load this IR" if self.path else "compile this model"
                raise ZooError(f"{self.label}: OpenVINO cannot {what}: {exc}") from exc
        self.input_names = [port_name(p) for p in self.compiled.inputs]
        self.output_names = [port_name(p) for p in self.compiled.outputs]
        self.input_types = {
            name: _OV_TYPES.get(port.get_element_type().get_type_name())
            for name, port in zip(self.input_names, self.compiled.inputs, strict=True)
        }
        self.precision = type_name(self.compiled.get_property("INFERENCE_PRECISION_HINT"))
        self.request = self.compiled.create_infer_request()

    def _reported_config(self) -> dict[str, object]:
        found: dict[str, object] = {}
        for key in ("INFERENCE_PRECISION_HINT", DYNAMIC_QUANTIZATION, "INFERENCE_NUM_THREADS"):
            try:
                value = self.compiled.get_property(key)
            except Exception:  # a property this plugin version does not report
                continue
            found[key] = type_name(value) if key == "INFERENCE_PRECISION_HINT" else value
        return found

    def infer(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        self.request.infer(feeds)
        # copies: the request reuses its output buffers on the next call
        return {
            name: np.array(self.request.get_output_tensor(index).data, copy=True)
            for index, name in enumerate(self.output_names)
        }


class LeanOpenVino(OpenVinoRunner):
    """Bench mode: an IR called the way a latency-minded application calls it.

    The input arrays are wrapped as tensors once (shared memory) and outputs are not copied out, as
    an application that writes into its input buffers would run it; so the figures are the
    runtime's, not Python's (building tensor dicts per call costs as much as silero-vad's whole
    network). `run` returns the request's results, not copies. With batch > 1 the inputs' first
    dimension is reshaped (static-shape models included). Compiled with PERFORMANCE_HINT LATENCY.
    """

    def __init__(self, path: Path, batch: int = 1, hint: str | None = "f32", threads: int | None = None):
        model = read_batched_ir(path, batch)
        super().__init__(model, hint=hint, threads=threads, performance="LATENCY", label=str(path))
        self.path = Path(path)
        self.config["batch"] = batch
        self._bound: list[int] = []

    def run(self, feeds: dict[str, np.ndarray]) -> Any:
        import openvino as ov

        arrays = [feeds[name] for name in self.input_names]
        if self._bound != [id(a) for a in arrays]:
            # wrap the caller's arrays once; later calls on the same arrays only run the network
            for name, array in zip(self.input_names, arrays, strict=True):
                self.request.set_tensor(name, ov.Tensor(np.ascontiguousarray(array), shared_memory=True))
            self._bound = [id(a) for a in arrays]
        self.request.infer()
        return self.request.results


def profile_ops(
    runner: OpenVinoRunner, feeds: dict[str, np.ndarray], calls: int = 20
) -> list[dict[str, Any]]:
    """Per operation of a compiled IR: mean time per call (ms), its share, type and kernel.

    The model is compiled again with PERF_COUNT on (the counters cost a little; the timed runs keep
    them off) under the runner's own configuration, called *calls* times after a warm-up, and the
    executed operations are sorted by time, slowest first.
    """
    compiled = openvino_core().compile_model(
        _source_model(runner),
        "CPU",
        {**{k: v for k, v in runner.config.items() if k != "batch"}, "PERF_COUNT": True},
    )
    request = compiled.create_infer_request()
    given = {name: feeds[name] for name in runner.input_names}
    for _ in range(3):
        request.infer(given)
    totals: dict[str, list[Any]] = {}
    for _ in range(calls):
        request.infer(given)
        for info in request.profiling_info:
            if info.status != info.Status.EXECUTED:
                continue
            entry = totals.setdefault(info.node_name, [info.node_type, info.exec_type, 0.0])
            entry[2] += info.real_time.total_seconds() * 1e3 / calls
    whole = sum(entry[2] for entry in totals.values()) or 1.0
    rows = [
        {"op": name, "type": kind, "kernel": kernel, "ms": ms, "share": ms / whole}
        for name, (kind, kernel, ms) in totals.items()
    ]
    return sorted(rows, key=lambda row: -row["ms"])


def _source_model(runner: OpenVinoRunner) -> Any:
    if runner.path is None:
        raise ZooError(f"{runner.label}: a profile needs the IR file.")
    return read_batched_ir(runner.path, int(runner.config.get("batch", 1)))  # type: ignore[call-overload]


def read_batched_ir(path: str | Path, batch: int = 1) -> Any:
    """An IR read from *path*, its inputs' first dimension reshaped to *batch* (static shapes too)."""
    model = read_ir(path)
    if batch != 1:
        shapes = {}
        for port in model.inputs:
            shape = port.get_partial_shape()
            shape[0] = batch
            shapes[port.get_any_name()] = shape
        model.reshape(shapes)
    return model
