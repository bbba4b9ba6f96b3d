"""Error budgets grounded in float32 arithmetic: how far a converted artifact may be from its source.

A fixed ``atol`` measured on one CPU is not a specification: kernels, thread counts and
instruction sets change the order of float32 sums. The yardstick here is the source
framework's OWN float32 error, measured against a float64 evaluation of the same model:

- PyTorch (also Lasagne, which runs on its PyTorch rebuild, and silero-vad, whose
  TorchScript is mirrored by ``SileroVad16k``): the module deep-copied and ``.double()``;
- Keras: the rebuild built again under a float64 dtype policy with the weights cast
  (its TensorFlow front end then computes STFT and mel matrix in float64 too);
- TFLite and ONNX sources (no float64 path of their own): the ONNX graph (the exported
  or the published file) with every float tensor type, initializer, constant and cast
  made float64, run by ONNX Runtime, or by ``onnx.reference.ReferenceEvaluator`` when
  ONNX Runtime has no float64 kernel for an op (``engine="reference"`` forces it).

The budget rule, per probe and per output, for an error measured against the source::

    |artifact - source|  <=  k * |source_f32 - reference_f64|  +  floor

- ``k = 4`` for FP32: if the artifact's kernels are as accurate as the source's, the two
  float32 errors are independent draws of the same size and their difference is at most
  about 2x one of them; OpenVINO and ONNX Runtime may legitimately be up to 2x less
  accurate than the source (Winograd and blocked convolutions, polynomial exp/tanh/sigmoid,
  other reduction blocking), so 1 (source) + 3 (artifact) = 4. A 1e-3 relative change of a
  weight tensor moves the outputs by ~1e-4..1e-3 relative, 100-1000x the ~1e-6 relative
  float32 error, so k = 4 keeps such defects far outside the budget.
- ``floor`` covers probes where the source is exact by luck (silence, constants): the
  rounding error of a dot product of length n has standard deviation about
  ``u * sqrt(n / 3) * |value|`` (u the unit roundoff, each rounding uniform in [-u, u]);
  over D such layers in sequence the independent errors add to ``u * sqrt(n * D / 3)``.
  The floor is 4 standard deviations of that: ``4 * u * sqrt(n * D / 3) * scale`` with n
  the longest reduction and D the number of reducing layers of the exported graph
  (``reduction_profile``). ``scale`` is ``max |reference|`` of the output on that probe;
  for log-domain outputs (logits, log-probabilities, log-mel spectrograms) it is at least 1,
  since a log carries the RELATIVE error of its argument as an absolute error.
- FP16 (weights rounded to float16, arithmetic still float32): the same propagation with
  ``u16 = 2^-11`` instead of ``u32 = 2^-24`` per rounding, so the yardstick and the floor
  are scaled by ``u16 / u32 = 8192`` and ``k = 4`` stays: budget = 4 * 8192 * yardstick +
  8192 * floor32. Float16 weight rounding is one rounding per weight rather than one per
  operation, so this is an upper estimate, not a tight one.
- INT8 is not judged here: 8-bit quantization error is a design choice, judged by the
  manifest's agreement metrics (top-k, decision, cosine).

Output kinds: probabilities, embeddings and state use ``max |reference|`` as scale;
logits, log-probabilities and spectrogram use ``max(1, max |reference|)`` (see above).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from zoo.errors import ZooError
from zoo.manifest import Manifest

U32 = 2.0**-24  #: unit roundoff of float32 (half its machine epsilon)
U16 = 2.0**-11  #: unit roundoff of float16
K = {"FP32": 4.0, "onnx": 4.0, "FP16": 4.0}
FLOOR_SIGMAS = 4.0
LOG_DOMAIN = {"logits", "log-probabilities", "spectrogram"}
RATIO = {"FP32": 1.0, "onnx": 1.0, "FP16": U16 / U32}

Feeds = dict[str, np.ndarray]


# -- float64 evaluation --------------------------------------------------------------------


class Float64Model:
    """A model evaluated in float64: ``run(feeds) -> outputs`` (float64 arrays), ``path`` says how."""

    path: str
    output_names: list[str]

    def run(self, feeds: Feeds) -> Feeds:
        raise NotImplementedError


class TorchFloat64(Float64Model):
    def __init__(self, module: Any, input_names: list[str], output_names: list[str], path: str):
        self.module = copy.deepcopy(module).double().eval()
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
    """The Keras rebuild under a float64 policy, weights cast; TF's mel matrix asked for in float64."""

    def __init__(self, source: Any, manifest: Manifest):
        from unittest import mock

        import tensorflow as tf
        import tf_keras

        from converters import get_converter

        keras_adapter = get_converter("keras")
        mel = tf.signal.linear_to_mel_weight_matrix

        def mel64(*args: Any, **kwargs: Any) -> Any:
            return mel(*args, **{**kwargs, "dtype": tf.float64})

        self.input_name = source.input_names[0]
        self.input_shape = list(source.input_shape)
        self.output_names = list(source.output_names)
        self.path = "keras rebuild, float64 policy"
        policy = tf_keras.mixed_precision.global_policy()
        tf_keras.mixed_precision.set_global_policy("float64")
        try:
            # the rebuild's front end asks TF for a float32 mel matrix: while the model is built and
            # traced (once, here) TF computes it in float64 instead
            with mock.patch.object(tf.signal, "linear_to_mel_weight_matrix", mel64):
                model = keras_adapter.build_model(manifest)
                model.set_weights([np.asarray(w, dtype=np.float64) for w in source.model.get_weights()])
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


def onnx_to_float64(model: Any) -> Any:
    """A copy of an ONNX ModelProto computing in float64: every float type, initializer, constant, cast."""
    import onnx
    from onnx import TensorProto, numpy_helper

    model = copy.deepcopy(model)
    f32, f64 = TensorProto.FLOAT, TensorProto.DOUBLE

    def tensor(t: Any) -> None:
        if t.data_type == f32:
            t.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(t).astype(np.float64), t.name))

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

    def __init__(self, path: str | Path, engine: str = "ort"):
        import onnx

        proto = onnx_to_float64(onnx.load(str(path)))
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
    manifest: Manifest, source: Any, onnx_path: str | Path | None = None, engine: str = "ort"
) -> Float64Model:
    """The float64 evaluation of *source* (a loaded SourceModel) for this manifest's framework.

    *onnx_path*: the exported ONNX (needed for tflite; for onnx the source file itself is used).
    """
    names_in = [i.name for i in manifest.inputs]
    names_out = [o.name for o in manifest.outputs]
    framework = manifest.framework
    if framework in ("pytorch", "torchscript", "lasagne"):
        module = getattr(source, "rebuild", None) or getattr(source, "module", None)
        if module is None:
            raise ZooError(f"{manifest.name}: the {framework} source model exposes no PyTorch module.")
        label = "silero-vad rebuild" if hasattr(source, "rebuild") else f"{framework} module"
        return TorchFloat64(module, names_in, names_out, f"PyTorch {label}, .double()")
    if framework == "keras":
        return KerasFloat64(source, manifest)
    if framework == "onnx" and getattr(source, "path", None) is not None:
        return OnnxFloat64(source.path, engine)
    if onnx_path is None:
        raise ZooError(f"{manifest.name}: {framework} has no float64 path; pass the exported ONNX file.")
    return OnnxFloat64(onnx_path, engine)


def run_probes(model: Any, feeds: Sequence[Sequence[Feeds]], manifest: Manifest) -> list[list[Feeds]]:
    """Per probe, the outputs of its calls; a stream starts from zero state and carries the model's own."""
    ins = [s for s in manifest.inputs if s.kind == "state"] if manifest.audio.streaming else []
    outs = [s for s in manifest.outputs if s.kind == "state"] if manifest.audio.streaming else []
    results = []
    for calls in feeds:
        state = {s.name: np.zeros([int(d) for d in s.shape], dtype=np.float32) for s in ins}
        got = []
        for feed in calls:
            result = model.run({**feed, **state})
            got.append(result)
            state = {i.name: np.asarray(result[o.name]) for i, o in zip(ins, outs, strict=True)}
        results.append(got)
    return results


def reference_f64(
    manifest: Manifest,
    source: Any,
    feeds: Sequence[Sequence[Feeds]],
    onnx_path: str | Path | None = None,
    engine: str = "ort",
) -> list[list[Feeds]]:
    """float64 outputs per probe and call (streams carry their own float64 state)."""
    return run_probes(float64_model(manifest, source, onnx_path, engine), feeds, manifest)


# -- yardstick and budget ----------------------------------------------------------------------


def reduction_profile(onnx_path: str | Path) -> tuple[int, int]:
    """(longest reduction n, number of reducing layers D) of an ONNX graph: Conv, MatMul, Gemm, RNNs."""
    import onnx
    from onnx import shape_inference

    model = onnx.load(str(onnx_path))
    try:
        model = shape_inference.infer_shapes(model)
    except Exception:  # shapes help, but a graph the inference rejects still has initializer shapes
        pass
    g = model.graph
    shapes: dict[str, list[int]] = {t.name: list(t.dims) for t in g.initializer}
    for v in list(g.value_info) + list(g.input) + list(g.output):
        dims = v.type.tensor_type.shape.dim
        shapes.setdefault(v.name, [d.dim_value if d.HasField("dim_value") else 0 for d in dims])
    for node in g.node:
        if (
            node.op_type == "Constant"
            and node.attribute
            and node.attribute[0].type == onnx.AttributeProto.TENSOR
        ):
            shapes[node.output[0]] = list(node.attribute[0].t.dims)
    longest, depth = 1, 0
    for node in g.node:
        n = 0
        if node.op_type in ("Conv", "ConvTranspose") and len(shapes.get(node.input[1], [])) >= 3:
            n = math.prod(shapes[node.input[1]][1:])
        elif node.op_type == "MatMul" and shapes.get(node.input[0]):
            n = shapes[node.input[0]][-1]
        elif node.op_type == "Gemm" and len(shapes.get(node.input[0], [])) == 2:
            trans = any(a.name == "transA" and a.i for a in node.attribute)
            n = shapes[node.input[0]][0 if trans else 1]
        elif node.op_type in ("LSTM", "GRU", "RNN") and len(shapes.get(node.input[1], [])) == 3:
            n = shapes[node.input[1]][2] + shapes[node.input[2]][2]
        if n > 0:
            longest, depth = max(longest, int(n)), depth + 1
    return longest, max(depth, 1)


def scale_of(kind: str | None, reference: np.ndarray) -> float:
    """The magnitude the floor is relative to (see the module docstring)."""
    top = float(np.max(np.abs(reference))) if reference.size else 0.0
    return max(1.0, top) if kind in LOG_DOMAIN else top


def floor32(scale: float, profile: tuple[int, int]) -> float:
    """4 standard deviations of float32 rounding over D layers of n-long sums, times the output's scale."""
    n, depth = profile
    return FLOOR_SIGMAS * U32 * math.sqrt(n * depth / 3.0) * scale


def max_abs(a: Sequence[np.ndarray], b: Sequence[np.ndarray]) -> float:
    """Largest |a - b| over the calls of one probe (NaN counts as infinite)."""
    worst = 0.0
    for x, y in zip(a, b, strict=True):
        d = np.abs(np.asarray(x, np.float64).ravel() - np.asarray(y, np.float64).ravel())
        if d.size:
            worst = max(worst, float(np.nan_to_num(d, nan=np.inf).max()))
    return worst


@dataclass
class Yardstick:
    """Per probe, for one output: the source's float32 error against float64, and the output's scale."""

    output: str
    kind: str | None
    error: list[float]
    scale: list[float]


def yardstick(
    manifest: Manifest, source_f32: list[list[Feeds]], reference: list[list[Feeds]]
) -> dict[str, Yardstick]:
    """|source_f32 - reference_f64| (max over a probe's calls) and scale, per output and probe."""
    found = {}
    for spec in manifest.outputs:
        errors, scales = [], []
        for src, ref in zip(source_f32, reference, strict=True):
            errors.append(max_abs([c[spec.name] for c in src], [c[spec.name] for c in ref]))
            refs = np.concatenate([np.asarray(c[spec.name], np.float64).ravel() for c in ref])
            scales.append(scale_of(spec.kind, refs))
        found[spec.name] = Yardstick(spec.name, spec.kind, errors, scales)
    return found


def budget(
    artifact: str, yardstick_error: float, scale: float, profile: tuple[int, int], kind: str | None = None
) -> float:
    """The largest |artifact - source| allowed on one probe: k * ratio * yardstick + ratio * floor.

    *artifact*: "onnx", "FP32" or "FP16" (INT8 has no numeric budget: agreement metrics only).
    *kind* is accepted for symmetry with the manifest; the kind enters through *scale* (``scale_of``).
    """
    if artifact not in K:
        raise ZooError(
            f"no numeric budget for {artifact!r} artifacts (known: {', '.join(K)}); judge agreement."
        )
    ratio = RATIO[artifact]
    return K[artifact] * ratio * yardstick_error + ratio * floor32(scale, profile)


@dataclass
class Verdict:
    """One artifact's one output: worst probe's error, its budget and the yardstick behind it."""

    artifact: str
    output: str
    kind: str | None
    passed: bool
    error: float  #: largest |artifact - source| over probes
    budget: float  #: the budget on the probe that used most of it
    yardstick: float  #: that probe's |source_f32 - reference_f64|
    floor: float
    worst_probe: int
    used: float  #: largest error / budget over probes (> 1 fails)
    per_probe: list[tuple[float, float]] = field(default_factory=list)  #: (error, budget)

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "per_probe"}


def judge_artifact(
    artifact: str,
    stick: Yardstick,
    source_f32: list[list[Feeds]],
    candidate: list[list[Feeds]],
    profile: tuple[int, int],
) -> Verdict:
    """The Verdict of one artifact's output: every probe within its own budget."""
    rows = []
    for p, (src, got) in enumerate(zip(source_f32, candidate, strict=True)):
        err = max_abs([c[stick.output] for c in got], [c[stick.output] for c in src])
        rows.append((err, budget(artifact, stick.error[p], stick.scale[p], profile)))
    used = [e / b if b > 0 else (math.inf if e > 0 else 0.0) for e, b in rows]
    worst = int(np.argmax(used)) if used else 0
    return Verdict(
        artifact=artifact,
        output=stick.output,
        kind=stick.kind,
        passed=all(u <= 1.0 for u in used),
        error=max((e for e, _ in rows), default=0.0),
        budget=rows[worst][1] if rows else 0.0,
        yardstick=stick.error[worst] if rows else 0.0,
        floor=RATIO[artifact] * floor32(stick.scale[worst], profile) if rows else 0.0,
        worst_probe=worst,
        used=used[worst] if used else 0.0,
        per_probe=rows,
    )
