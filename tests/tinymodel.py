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
        [shape] + [numpy_helper.from_array(a, n) for a, n in ((w1, "w1"), (b1, "b1"), (w2, "w2"), (b2, "b2"))],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="zoo-tests", ir_version=8)
    onnx.checker.check_model(model)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path


def sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def write_tiny_entry(catalog: Path, model: Path, name: str = "tiny", extra: str = "") -> Path:
    """A catalog entry (manifest + labels) for the tiny model at `model`, fetched by file:// URL."""
    catalog.mkdir(parents=True, exist_ok=True)
    (catalog / "labels").mkdir(exist_ok=True)
    (catalog / "labels" / "tiny.txt").write_text("\n".join(LABELS) + "\n")
    text = f"""name: {name}
version: 1.0.0
description: A tiny test classifier.
task: audio-classification
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
quantize: {{enabled: false}}
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
