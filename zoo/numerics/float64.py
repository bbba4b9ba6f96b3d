"""float64 evaluation of a source model, per framework (see zoo.numerics for why and which).

- PyTorch, TorchScript (silero-vad's rebuild ``SileroVad16k``) and Lasagne (its PyTorch rebuild):
  the module deep-copied and ``.double()``, inputs in float64;
- Keras: the rebuild built again under tf_keras' float64 policy, weights cast, traced once;
- TFLite and ONNX sources: the ONNX graph made float64 (``onnx_to_float64``) on ONNX Runtime,
  or on ``onnx.reference.ReferenceEvaluator`` where ONNX Runtime lacks a float64 kernel (Conv),
  with whole-array pools (zoo.numerics.reference_pools) in place of its per-element ones.

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
from zoo.numerics.budget import NO_FLOAT64

Feeds = dict[str, np.ndarray]


class Float64Model:
    """A model evaluated in float64: ``run(feeds) -> outputs`` (float64 arrays), ``path`` says how.

    An alternative yardstick (zoo.numerics.budget.Alternative) also names its ``basis`` and the
    ``artifacts`` it applies to.
    """

    path: str
    output_names: list[str]
    basis: str = "float64"
    artifacts: frozenset[str] = frozenset()

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


def _retype(model: Any, wide: bool, weights: str = "float32") -> Any:
    """A copy of an ONNX ModelProto with every float tensor type, initializer, constant and cast
    widened from float32 to float64 (*wide*) or narrowed from float64 to float32."""
    import onnx
    from onnx import TensorProto, numpy_helper

    model = copy.deepcopy(model)
    f32, f64 = TensorProto.FLOAT, TensorProto.DOUBLE
    old, new = (f32, f64) if wide else (f64, f32)
    dtype = np.float64 if wide else np.float32

    def tensor(t: Any) -> None:
        if t.data_type == old:
            values = numpy_helper.to_array(t)
            if wide:
                values = values.astype(weights)
            t.CopyFrom(numpy_helper.from_array(values.astype(dtype), t.name))

    def value_info(v: Any) -> None:
        if v.type.HasField("tensor_type") and v.type.tensor_type.elem_type == old:
            v.type.tensor_type.elem_type = new

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
                    if a.i == old:
                        a.i = new

    graph(model.graph)
    return model


def onnx_to_float64(model: Any, weights: str = "float32", noise: float | None = None, draw: int = 0) -> Any:
    """A copy of an ONNX ModelProto computing in float64: every float type, initializer, constant, cast.

    ``weights="float16"`` rounds every float32 initializer and constant to float16 first. A QDQ
    graph's quantize/dequantize steps are written out as float arithmetic first (zoo.numerics.qdq):
    the quantizers stay, everything between them becomes exact (*noise*: see expand_qdq).
    """
    from zoo.numerics.qdq import expand_qdq, has_quantizers

    if has_quantizers(model):
        model = expand_qdq(model, noise, draw)
    return _retype(model, wide=True, weights=weights)


def onnx_to_float32(model: Any) -> Any:
    """A copy of an ONNX ModelProto computing wholly in float32: every float64 step narrowed."""
    return _retype(model, wide=False)


def float64_steps(model: Any) -> list[str]:
    """The nodes of an ONNX graph that compute in float64 (casts to double and what consumes them)."""
    import onnx
    from onnx import TensorProto

    wide: set[str] = {t.name for t in model.graph.initializer if t.data_type == TensorProto.DOUBLE}
    wide |= {
        v.name
        for v in list(model.graph.input) + list(model.graph.value_info)
        if v.type.tensor_type.elem_type == TensorProto.DOUBLE
    }
    steps = []
    for node in model.graph.node:  # nodes are in topological order
        casts_up = node.op_type == "Cast" and any(
            a.name == "to" and a.type == onnx.AttributeProto.INT and a.i == TensorProto.DOUBLE
            for a in node.attribute
        )
        narrows = node.op_type == "Cast" and not casts_up
        if casts_up or (not narrows and any(i in wide for i in node.input)):
            steps.append(node.name or node.op_type)
            wide.update(node.output)
    return steps


class OnnxGraph(Float64Model):
    """An ONNX ModelProto run by ONNX Runtime ("ort", no graph optimizations) or, where ONNX Runtime
    has no kernel for a type (float64 Conv), by ONNX's reference evaluator ("reference")."""

    def __init__(self, proto: Any, source_path: str | Path, engine: str = "ort"):
        self.source_path = Path(source_path)
        self.output_names = [o.name for o in proto.graph.output]
        self.types = {i.name: i.type.tensor_type.elem_type for i in proto.graph.input}
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
            except Exception:  # no kernel for an op at this type: the reference evaluator has them all
                self.engine = engine = "reference"
        if engine == "reference":
            from onnx.reference import ReferenceEvaluator

            from zoo.numerics.reference_pools import pool_ops

            try:
                self.evaluator = ReferenceEvaluator(proto, new_ops=pool_ops())
            except Exception as exc:  # an op neither engine evaluates
                raise _no_float64(self.source_path, exc) from exc

    @property
    def engine_name(self) -> str:
        return "ONNX Runtime" if self.engine == "ort" else "onnx.reference"

    def run(self, feeds: Feeds) -> Feeds:
        from onnx import helper

        given = {
            n: np.asarray(feeds[n], dtype=helper.tensor_dtype_to_np_dtype(t)) for n, t in self.types.items()
        }
        if self.engine == "ort":
            values = self.session.run(self.output_names, given)
        else:
            try:
                values = self.evaluator.run(self.output_names, given)
            except Exception as exc:  # the reference evaluator checks op versions when it runs
                raise _no_float64(self.source_path, exc) from exc
        return dict(zip(self.output_names, values, strict=True))


class OnnxFloat64(OnnxGraph):
    """The ONNX graph in float64 on ONNX Runtime ("ort") or ONNX's reference evaluator ("reference")."""

    def __init__(
        self,
        path: str | Path,
        engine: str = "ort",
        weights: str = "float32",
        noise: float | None = None,
        draw: int = 0,
    ):
        import onnx

        super().__init__(onnx_to_float64(onnx.load(str(path)), weights, noise, draw), path, engine)
        self.path = f"ONNX graph in float64 ({self.engine_name})"


def _no_float64(path: Path, exc: Exception) -> ZooError:
    return ZooError(
        f"{path.name}: no float64 evaluation of this graph ({type(exc).__name__}: {str(exc)[:300]}); "
        "`budget: derived` needs one. Give the artifact's verify.tolerance an explicit override "
        "(atol with a comment that derives it) instead."
    )


class Float32Graph(OnnxGraph):
    """The exported ONNX graph with its float64 steps narrowed to float32, on ONNX Runtime.

    What float32 arithmetic costs where the source computes in float64 (BirdNET's DFT): the
    yardstick of artifacts whose runtime has no float64 (OpenVINO lowers it to float32).
    """

    basis = "the graph wholly in float32"
    artifacts = NO_FLOAT64

    def __init__(self, path: str | Path, steps: list[str]):
        import onnx

        super().__init__(onnx_to_float32(onnx.load(str(path))), path)
        self.steps = steps
        self.path = f"ONNX graph wholly in float32 ({self.engine_name}; {len(steps)} float64 steps narrowed)"


class QuantizerSteps(OnnxFloat64):
    """A QDQ graph in float64 with float32-sized noise on what its quantizers round (zoo.numerics.qdq).

    Which elements land on the neighbouring step depends on the last bits of the sums before each
    quantizer, so a float32 runtime and an exact evaluation differ by whole steps there, and one
    flip early in the network spreads to thousands of elements later. The source's own float32
    error is one draw of those flips and may show none by luck (measured: AclNet's INT8 ONNX on
    silence). This evaluation draws them: each quantized activation times 1 + U(-a, a) with
    a = 4 * u32 * sqrt(n / 3) (the floor's 4 standard deviations of the rounding of an n-long
    sum, n the graph's longest reduction), over ``DRAWS`` seeded draws whose largest error counts.
    """

    basis = "quantizer steps under float32 rounding"
    artifacts = frozenset({"onnx", "FP32", "FP16"})
    DRAWS = 3

    def __init__(self, path: str | Path, longest: int, draw: int = 0, engine: str = "ort"):
        import math

        from zoo.numerics.budget import FLOOR_SIGMAS, U32

        self.noise = FLOOR_SIGMAS * U32 * math.sqrt(longest / 3.0)
        super().__init__(path, engine, noise=self.noise, draw=draw)
        self.path = f"QDQ graph in float64, quantized activations x (1 + U(+-{self.noise:.2g})), draw {draw}"


def alternatives(onnx_path: str | Path, longest: int) -> list[Float64Model]:
    """The alternative yardsticks an exported graph needs: float64 steps, quantizers (or none)."""
    import onnx

    from zoo.numerics.qdq import has_quantizers

    proto = onnx.load(str(onnx_path), load_external_data=False)
    found: list[Float64Model] = []
    steps = float64_steps(proto)
    if steps:
        found.append(Float32Graph(onnx_path, steps))
    if has_quantizers(proto):
        found += [QuantizerSteps(onnx_path, longest, draw) for draw in range(QuantizerSteps.DRAWS)]
    return found


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
