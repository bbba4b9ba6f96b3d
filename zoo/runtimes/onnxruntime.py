"""ONNX Runtime on the CPU provider, from a file or from a model held in memory.

`exact=True` asks ONNX Runtime to compute what a quantized graph says instead of its int8 kernels:
the session config entry ``session.disable_quant_qdq = 1`` turns off the QDQ transformers that fuse
DequantizeLinear/QuantizeLinear groups into integer kernels (QLinearConv, QLinearMatMul, and
DequantizeLinear -> MatMul into MatMulNBits), so the model runs float math between explicit
quantize and dequantize steps. Float graphs are unaffected.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from zoo.errors import ZooError
from zoo.runtimes.base import Runner
from zoo.vocab import Runtime

#: the session config entry that keeps QDQ groups unfused (see the module docstring)
DISABLE_QDQ_FUSION = "session.disable_quant_qdq"

_ORT_TYPES: dict[str, type] = {
    "tensor(float)": np.float32,
    "tensor(float16)": np.float16,
    "tensor(double)": np.float64,
    "tensor(int64)": np.int64,
    "tensor(int32)": np.int32,
    "tensor(uint8)": np.uint8,
    "tensor(int8)": np.int8,
}


def _model_source(model: Any) -> tuple[str | bytes, Path | None, str]:
    """(what InferenceSession takes, the file if any, a label for messages) of a path, bytes or ModelProto."""
    if isinstance(model, str | Path):
        return str(model), Path(model), str(model)
    if isinstance(model, bytes | bytearray):
        return bytes(model), None, "in-memory ONNX model"
    serialize = getattr(model, "SerializeToString", None)
    if callable(serialize):
        return serialize(), None, f"in-memory ONNX model {getattr(model.graph, 'name', '')}".rstrip()
    raise TypeError(f"expected a path, bytes or an onnx.ModelProto, got {type(model).__name__}")


class OnnxRuntimeRunner(Runner):
    """ONNX Runtime (CPU provider) on a .onnx path, serialized bytes or an onnx.ModelProto.

    *optimize* False turns every graph optimization off (the graph as written); *exact* keeps int8
    QDQ groups unfused; *threads* sets the intra-op thread count (inter-op 1).
    """

    runtime = Runtime.ONNXRUNTIME.value

    def __init__(
        self,
        model: str | Path | bytes | Any,
        *,
        threads: int | None = None,
        optimize: bool = True,
        exact: bool = False,
        label: str | None = None,
    ):
        import onnxruntime as ort

        source, self.path, default_label = _model_source(model)
        self.label = label or default_label
        options = ort.SessionOptions()
        options.log_severity_level = 3
        self.config = {"threads": int(threads) if threads else None, "graph_optimizations": optimize}
        if threads:
            options.intra_op_num_threads = int(threads)
            options.inter_op_num_threads = 1
        if not optimize:
            options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        if exact:
            options.add_session_config_entry(DISABLE_QDQ_FUSION, "1")
            self.config[DISABLE_QDQ_FUSION] = "1"
        try:
            self.session = ort.InferenceSession(source, options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # ORT raises its own exception types for bad files
            raise ZooError(f"{self.label}: ONNX Runtime cannot load this model: {exc}") from exc
        self.input_names = [i.name for i in self.session.get_inputs()]
        self.output_names = [o.name for o in self.session.get_outputs()]
        self.input_types = {i.name: _ORT_TYPES.get(i.type) for i in self.session.get_inputs()}
        self.precision = None

    def infer(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        values = self.session.run(self.output_names, feeds)
        return dict(zip(self.output_names, values, strict=True))


class LeanOnnxRuntime(OnnxRuntimeRunner):
    """Bench mode: all graph optimizations (ONNX Runtime's default) and an I/O binding made once.

    The caller's arrays are bound once (as with LeanOpenVino) and outputs stay in ONNX Runtime's
    buffers, so the figures are the runtime's, not Python's; `run` returns the binding, not copies.
    With batch > 1 the first dimension of inputs and outputs is made symbolic, so any batch runs.
    """

    def __init__(self, path: Path, batch: int = 1, threads: int | None = None):
        source: Any = path
        if batch != 1:
            import onnx

            proto = onnx.load(str(path))
            for value in [*proto.graph.input, *proto.graph.output]:
                dims = value.type.tensor_type.shape.dim
                if dims:
                    dims[0].dim_param = "batch"
            source = proto.SerializeToString()
        super().__init__(source, threads=threads, label=str(path))
        self.path = Path(path)
        self.config["batch"] = batch
        self.binding = self.session.io_binding()
        self._bound: list[int] = []
        self._arrays: list[np.ndarray] = []

    def run(self, feeds: dict[str, np.ndarray]) -> Any:
        if self._bound != [id(feeds[name]) for name in self.input_names]:
            # bind the caller's arrays once; outputs stay in ONNX Runtime's buffers
            arrays = [np.ascontiguousarray(feeds[name]) for name in self.input_names]
            self.binding.clear_binding_inputs()
            self.binding.clear_binding_outputs()
            for name, array in zip(self.input_names, arrays, strict=True):
                self.binding.bind_cpu_input(name, array)
            for name in self.output_names:
                self.binding.bind_output(name, "cpu")
            self._arrays = arrays  # keep the bound memory alive
            self._bound = [id(feeds[name]) for name in self.input_names]
        self.session.run_with_iobinding(self.binding)
        return self.binding
