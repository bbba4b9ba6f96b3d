"""A tiny ONNX audio classifier and a catalog entry for it, made on the spot for fast pipeline tests.

The model is real ONNX (MatMul, ReLU, Softmax on 0.1 s of 8 kHz audio) with seeded weights; the
entry points at it with a file:// source and its real sha256, so `zoo convert` and `zoo verify` run
the whole pipeline on it in seconds.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

RATE = 8000
SAMPLES = 800
CLASSES = 5
LABELS = ["hum", "hiss", "tone", "click", "silence"]


def make_tiny_onnx(path: Path, seed: int = 0, input_name: str = "input", output_name: str = "output") -> Path:
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.RandomState(seed)
    w1 = (rng.standard_normal((SAMPLES, 16)) / np.sqrt(SAMPLES)).astype(np.float32)
    b1 = (0.1 * rng.standard_normal(16)).astype(np.float32)
    w2 = (rng.standard_normal((16, CLASSES)) / 4).astype(np.float32)
    b2 = (0.1 * rng.standard_normal(CLASSES)).astype(np.float32)
    shape = numpy_helper.from_array(np.array([1, SAMPLES], dtype=np.int64), "flat_shape")
    nodes = [
        helper.make_node("Reshape", [input_name, "flat_shape"], ["flat"], name="flatten"),
        helper.make_node("MatMul", ["flat", "w1"], ["h0"], name="dense1"),
        helper.make_node("Add", ["h0", "b1"], ["h1"], name="dense1_bias"),
        helper.make_node("Relu", ["h1"], ["h2"], name="relu"),
        helper.make_node("MatMul", ["h2", "w2"], ["z0"], name="dense2"),
        helper.make_node("Add", ["z0", "b2"], ["z1"], name="dense2_bias"),
        helper.make_node("Softmax", ["z1"], [output_name], name="softmax", axis=-1),
    ]
    graph = helper.make_graph(
        nodes,
        "tiny",
        [helper.make_tensor_value_info(input_name, TensorProto.FLOAT, [1, 1, 1, SAMPLES])],
        [helper.make_tensor_value_info(output_name, TensorProto.FLOAT, [1, CLASSES])],
        [shape]
        + [numpy_helper.from_array(a, n) for a, n in ((w1, "w1"), (b1, "b1"), (w2, "w2"), (b2, "b2"))],
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="zoo-tests", ir_version=8
    )
    onnx.checker.check_model(model)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path


def sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def write_tiny_entry(
    catalog: Path, model: Path, name: str = "tiny", extra: str = "", quantize: str = "{enabled: false}"
) -> Path:
    """A catalog entry for the tiny classifier; `extra` lines follow the FP16 tolerance."""
    """A catalog entry (manifest + labels) for the tiny model at `model`, fetched by file:// URL."""
    catalog.mkdir(parents=True, exist_ok=True)
    (catalog / "labels").mkdir(exist_ok=True)
    (catalog / "labels" / "tiny.txt").write_text("\n".join(LABELS) + "\n")
    text = f"""name: {name}
version: 1.0.0
description: A tiny test classifier.
task: audio-classification
tags: [test]
license: {{name: Apache-2.0}}
framework: onnx
files:
  - name: tiny.onnx
    size: {model.stat().st_size}
    sha256: {sha256(model)}
    sources:
      - url: {model.resolve().as_uri()}
inputs:
  - {{name: input, shape: [1, 1, 1, {SAMPLES}], dtype: float32, layout: NCWL, kind: waveform}}
outputs:
  - {{name: output, shape: [1, {CLASSES}], dtype: float32, kind: probabilities}}
audio:
  sample_rate: {RATE}
  normalize: zscore
  clip: {{seconds: 0.1, hop: 0.1, pad: zero}}
labels: {{file: labels/tiny.txt, count: {CLASSES}}}
convert:
  onnx: {{opset: 17, exporter: copy}}
  openvino: {{precisions: [FP32, FP16]}}
quantize: {quantize}
verify:
  probes: standard
  tolerance:
    onnx: {{atol: 1.0e-6}}
    FP32: {{atol: 1.0e-5}}
    FP16: {{atol: 5.0e-3, top1: 1.0}}
{extra}"""
    path = catalog / f"{name}.yaml"
    path.write_text(text)
    return path


CHUNK = 64
STATE = 8


def make_stateful_onnx(path: Path, seed: int = 0) -> Path:
    """A tiny recurrent voice-activity model: (chunk, state) -> (probability, new_state)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.RandomState(seed)
    arrays = {
        "w": (rng.standard_normal((CHUNK, STATE)) * 2 / np.sqrt(CHUNK)).astype(np.float32),
        "u": (rng.standard_normal((STATE, STATE)) * 0.9 / np.sqrt(STATE)).astype(np.float32),
        "b": (0.1 * rng.standard_normal(STATE)).astype(np.float32),
        "v": rng.standard_normal((STATE, 1)).astype(np.float32),
        "c": np.array([0.0], dtype=np.float32),
    }
    nodes = [
        helper.make_node("MatMul", ["chunk", "w"], ["xw"]),
        helper.make_node("MatMul", ["state", "u"], ["su"]),
        helper.make_node("Add", ["xw", "su"], ["pre0"]),
        helper.make_node("Add", ["pre0", "b"], ["pre"]),
        helper.make_node("Tanh", ["pre"], ["new_state"]),
        helper.make_node("MatMul", ["new_state", "v"], ["logit0"]),
        helper.make_node("Add", ["logit0", "c"], ["logit"]),
        helper.make_node("Sigmoid", ["logit"], ["probability"]),
    ]
    graph = helper.make_graph(
        nodes,
        "tiny-stream",
        [
            helper.make_tensor_value_info("chunk", TensorProto.FLOAT, [1, CHUNK]),
            helper.make_tensor_value_info("state", TensorProto.FLOAT, [1, STATE]),
        ],
        [
            helper.make_tensor_value_info("probability", TensorProto.FLOAT, [1, 1]),
            helper.make_tensor_value_info("new_state", TensorProto.FLOAT, [1, STATE]),
        ],
        [numpy_helper.from_array(a, n) for n, a in arrays.items()],
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="zoo-tests", ir_version=8
    )
    onnx.checker.check_model(model)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path


def write_stream_entry(catalog: Path, model: Path, name: str = "tiny-stream") -> Path:
    """A streaming catalog entry for the tiny recurrent model (state carried between chunks)."""
    catalog.mkdir(parents=True, exist_ok=True)
    (catalog / "labels").mkdir(exist_ok=True)
    (catalog / "labels" / "speech.txt").write_text("speech\n")
    text = f"""name: {name}
version: 1.0.0
description: A tiny recurrent voice-activity test model.
task: voice-activity-detection
license: {{name: MIT}}
framework: onnx
files:
  - name: stream.onnx
    size: {model.stat().st_size}
    sha256: {sha256(model)}
    sources:
      - url: {model.resolve().as_uri()}
inputs:
  - {{name: chunk, shape: [1, {CHUNK}], dtype: float32, kind: waveform}}
  - {{name: state, shape: [1, {STATE}], dtype: float32, kind: state}}
outputs:
  - {{name: probability, shape: [1, 1], dtype: float32, kind: probabilities}}
  - {{name: new_state, shape: [1, {STATE}], dtype: float32, kind: state}}
primary_output: probability
audio:
  sample_rate: {RATE}
  clip: {{seconds: 0.008, hop: 0.008, pad: zero}}
  aggregate: stream
  streaming: true
labels: {{file: labels/speech.txt, count: 1}}
convert:
  onnx: {{opset: 17, exporter: copy}}
  openvino: {{precisions: [FP32, FP16]}}
quantize: {{enabled: false}}
verify:
  probes: speech
  seconds: 1.5
  decision_threshold: 0.5
  tolerance:
    onnx: {{atol: 1.0e-5, decision: 1.0}}
    FP32: {{atol: 1.0e-5, decision: 1.0}}
    FP16: {{atol: 1.0e-2, decision: 0.95}}
"""
    path = catalog / f"{name}.yaml"
    path.write_text(text)
    return path
