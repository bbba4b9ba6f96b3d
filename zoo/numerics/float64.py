"""float64 evaluation of a source model, per framework (see zoo.numerics for why and which).

- PyTorch, TorchScript (silero-vad's rebuild ``SileroVad16k``) and Lasagne (its PyTorch rebuild):
  the module deep-copied and ``.double()``, inputs in float64;
- Keras: the rebuild built again under tf_keras' float64 policy, weights cast, traced once;
- TFLite and ONNX sources: the ONNX graph made float64 (``onnx_to_float64``) on ONNX Runtime,
  or on ``onnx.reference.ReferenceEvaluator`` where ONNX Runtime lacks a float64 kernel (Conv).

``weights="float16"`` rounds the weights to float16 first: the FP16 yardstick.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from zoo.errors import ZooError
from zoo.manifest import Manifest

Feeds = dict[str, np.ndarray]


class Float64Model:
    """A model evaluated in float64: ``run(feeds) -> outputs`` (float64 arrays), ``path`` says how."""

    path: str
    output_names: list[str]

    def run(self, feeds: Feeds) -> Feeds:
        raise NotImplementedError


class TorchFloat64(Float64Model):
    def __init__(
        self,
        module: Any,
        input_names: list[str],
        output_names: list[str],
        path: str,
        weights: str = "float32",
    ):
        self.module = copy.deepcopy(module)
        if weights == "float16":
            self.module.half()  # every float parameter and buffer rounded to float16, then widened
        self.module = self.module.double().eval()
        self.input_names, self.output_names, self.path = input_names, output_names, path

    def run(self, feeds: Feeds) -> Feeds:
        import torch

        args = [torch.from_numpy(np.asarray(feeds[n], dtype=np.float64).copy()) for n in self.input_names]
        with torch.no_grad():
            out = self.module(*args)
        if not isinstance(out, tuple | list):
            out = (out,)
        return {n: v.detach().numpy() for n, v in zip(self.output_names, out, strict=True)}


class KerasFloat64(Float64Model):
    """The Keras rebuild under a float64 policy, weights cast (its front end follows the policy)."""

    def __init__(self, source: Any, manifest: Manifest, build: Any, weights: str = "float32"):
        import tensorflow as tf
        import tf_keras

        self.input_name = source.input_names[0]
        self.input_shape = list(source.input_shape)
        self.output_names = list(source.output_names)
        self.path = "keras rebuild, float64 policy"
        policy = tf_keras.mixed_precision.global_policy()
        tf_keras.mixed_precision.set_global_policy("float64")
        try:
            # under the float64 policy the rebuild's front end computes its mel matrix in float64 too
            model = build(manifest)
            rounded = [np.asarray(w).astype(weights) for w in source.model.get_weights()]
            model.set_weights([w.astype(np.float64) for w in rounded])
            spec = tf.TensorSpec(self.input_shape, tf.float64)
            self.function = tf.function(
                lambda x: model(x, training=False), input_signature=[spec], autograph=False
            ).get_concrete_function()
        finally:
            tf_keras.mixed_precision.set_global_policy(policy)
        self.model = model
        narrow = [layer.name for layer in model.layers[1:] if layer.compute_dtype != "float64"]
        if narrow:
            raise ZooError(f"{manifest.name}: the float64 Keras rebuild still computes {narrow} in float32.")

    def run(self, feeds: Feeds) -> Feeds:
        import tensorflow as tf

        x = tf.constant(np.asarray(feeds[self.input_name], dtype=np.float64).reshape(self.input_shape))
        out = self.function(x)
        return {n: np.asarray(out[n].numpy(), dtype=np.float64) for n in self.output_names}


def onnx_to_float64(model: Any, weights: str = "float32") -> Any:
    """A copy of an ONNX ModelProto computing in float64: every float type, initializer, constant, cast.

    ``weights="float16"`` rounds every float32 initializer and constant to float16 first.
    """
    import onnx
    from onnx import TensorProto, numpy_helper

    model = copy.deepcopy(model)
    f32, f64 = TensorProto.FLOAT, TensorProto.DOUBLE

    def tensor(t: Any) -> None:
        if t.data_type == f32:
            values = numpy_helper.to_array(t).astype(weights).astype(np.float64)
            t.CopyFrom(numpy_helper.from_array(values, t.name))

    def value_info(v: Any) -> None:
        if v.type.HasField("tensor_type") and v.type.tensor_type.elem_type == f32:
            v.type.tensor_type.elem_type = f64

    def graph(g: Any) -> None:
        for t in g.initializer:
            tensor(t)
        for v in list(g.input) + list(g.output) + list(g.value_info):
            value_info(v)
        for node in g.node:
            for a in node.attribute:
                if a.type == onnx.AttributeProto.TENSOR:
                    tensor(a.t)
                elif a.type == onnx.AttributeProto.GRAPH:
                    graph(a.g)
                elif a.type == onnx.AttributeProto.GRAPHS:
                    for sub in a.graphs:
                        graph(sub)
                elif a.name in ("to", "dtype", "output_dtype") and a.type == onnx.AttributeProto.INT:
                    if a.i == f32:
                        a.i = f64

    graph(model.graph)
    return model


class OnnxFloat64(Float64Model):
    """The ONNX graph in float64 on ONNX Runtime ("ort") or ONNX's reference evaluator ("reference")."""

    def __init__(self, path: str | Path, engine: str = "ort", weights: str = "float32"):
        import onnx

        self.source_path = Path(path)
        proto = onnx_to_float64(onnx.load(str(path)), weights)
        self.output_names = [o.name for o in proto.graph.output]
        self.engine = engine
        if engine == "ort":
            import onnxruntime as ort

            options = ort.SessionOptions()
            options.log_severity_level = 3
            options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
            try:
                self.session = ort.InferenceSession(
                    proto.SerializeToString(), options, providers=["CPUExecutionProvider"]
                )
            except Exception:  # no float64 kernel for an op: the reference evaluator has them all
                self.engine = engine = "reference"
        if engine == "reference":
            from onnx.reference import ReferenceEvaluator

            self.evaluator = ReferenceEvaluator(proto)
        self.types = {i.name: i.type.tensor_type.elem_type for i in proto.graph.input}
        self.path = f"ONNX graph in float64 ({'ONNX Runtime' if self.engine == 'ort' else 'onnx.reference'})"

    def run(self, feeds: Feeds) -> Feeds:
        from onnx import helper

        given = {
            n: np.asarray(feeds[n], dtype=helper.tensor_dtype_to_np_dtype(t)) for n, t in self.types.items()
        }
        if self.engine == "ort":
            values = self.session.run(self.output_names, given)
        else:
            values = self.evaluator.run(self.output_names, given)
        return dict(zip(self.output_names, values, strict=True))


def float64_model(
    manifest: Manifest,
    source: Any,
    onnx_path: str | Path | None = None,
    engine: str = "ort",
    weights: str = "float32",
) -> Float64Model:
    """The float64 evaluation of *source* (a loaded source model), as its framework's converter makes it.

    *onnx_path*: the exported ONNX (the fallback path for frameworks without their own float64 path).
    *weights*: "float16" rounds the weights to float16 first (the FP16 yardstick).
    """
    from zoo.plugins import converter_for

    if weights not in ("float32", "float16"):
        raise ZooError(f"weights must be float32 or float16, not {weights!r}.")
    path = Path(onnx_path) if onnx_path is not None else None
    model = converter_for(manifest).float64_model(source, manifest, path, weights)
    if engine != "ort" and isinstance(model, OnnxFloat64):
        model = OnnxFloat64(model.source_path, engine, weights)
    return model


def run_probes(model: Any, feeds: Sequence[Sequence[Feeds]], manifest: Manifest) -> list[list[Feeds]]:
    """Per probe, the outputs of its calls; a stream starts from zero state and carries its own float64 state."""
    from zoo.streams import run_calls

    return [run_calls(model, manifest, list(calls), cast_state=False)[1] for calls in feeds]


def reference_f64(
    manifest: Manifest,
    source: Any,
    feeds: Sequence[Sequence[Feeds]],
    onnx_path: str | Path | None = None,
    engine: str = "ort",
    weights: str = "float32",
) -> list[list[Feeds]]:
    """float64 outputs per probe and call (streams carry their own float64 state)."""
    return run_probes(float64_model(manifest, source, onnx_path, engine, weights), feeds, manifest)
