"""Real YAMNet weights from Google's `yamnet.tflite`, written as an upstream-format `yamnet.h5`.

Upstream's `yamnet.h5` is not always reachable; the TF Hub TFLite classifier carries the same
trained network. Its weights are read without running the model (the interpreter only allocates
its tensors), dequantized (int8 with per-channel or per-tensor scales and zero points) and put
onto the Keras rebuild (converters/networks/yamnet.py) by layer order and shape: the body's
CONV_2D / DEPTHWISE_CONV_2D ops in execution order are layer1/conv, then each separable layer's
depthwise and pointwise convolution, and the last FULLY_CONNECTED is `logits`.

TFLite folds batch norm into the convolutions (kernel / sqrt(var + eps), bias beta - mean * that
scale), so each Keras BN (center=True, scale=False: weights beta, moving mean, moving variance)
becomes the identity carrying the folded bias: beta = folded bias, mean 0, variance 1 - eps.
float32(1 - 1e-4) + float32(1e-4) is exactly 1.0, so the BN divides by exactly 1. Upstream's BN
has no gamma (scale=False); the folded scale lives in the kernels.

The weights are the int8 values dequantized, not upstream's float32 ones: each differs from the
original by at most half a quantization step of its channel (or tensor). The front end needs no
weights (the rebuild computes its own float STFT and mel matrix), so the TFLite file's int8 DFT
and mel matrices are not used.

    python -m converters.networks.yamnet_tflite yamnet.tflite yamnet.h5

TensorFlow is imported inside the functions; this module is not a network declaration.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from converters.networks.yamnet import BN_EPSILON, LAYER_DEFS, MIN_SAMPLES
from zoo.errors import EXIT_FAILED, UsageError, ZooError

#: Keras' BN divides by sqrt(variance + epsilon); this variance makes that exactly 1 in float32
IDENTITY_VARIANCE = np.float32(1.0) - np.float32(BN_EPSILON)

#: the flatbuffer file identifier, at bytes 4-8 of every TFLite model
TFLITE_IDENTIFIER = b"TFL3"

WEIGHT_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")


@dataclass(frozen=True)
class WeightOp:
    """One weighted TFLite op of the network body: its kind, float kernel (TFLite layout) and bias."""

    kind: str
    kernel: np.ndarray
    bias: np.ndarray
    kernel_name: str


def dequantize(values: np.ndarray, quantization: dict[str, Any]) -> np.ndarray:
    """float32 values of a tensor: (q - zero_point) * scale, per channel along quantized_dimension."""
    if values.dtype == np.float32:
        return values
    scales = np.asarray(quantization.get("scales", []), dtype=np.float64)
    zero_points = np.asarray(quantization.get("zero_points", []), dtype=np.float64)
    if scales.size == 0:
        raise ValueError(f"a {values.dtype} tensor without quantization scales")
    if zero_points.size == 0:
        zero_points = np.zeros_like(scales)
    shape = [1] * values.ndim
    if scales.size > 1:
        axis = int(quantization.get("quantized_dimension", 0))
        if values.shape[axis] != scales.size:
            raise ValueError(f"{scales.size} scales for axis {axis} of a tensor of shape {values.shape}")
        shape[axis] = scales.size
    scale = scales.reshape(shape) if scales.size > 1 else scales[0]
    zero = zero_points.reshape(shape) if zero_points.size > 1 else zero_points[0]
    return ((values.astype(np.float64) - zero) * scale).astype(np.float32)


def open_interpreter(path: Path) -> Any:
    """tf.lite.Interpreter on *path* with its tensors allocated (builtin kernels, nothing run)."""
    if not path.is_file():
        raise UsageError(f"{path}: no such file (expected Google's yamnet.tflite).")
    with open(path, "rb") as handle:
        head = handle.read(8)
    if head[4:8] != TFLITE_IDENTIFIER:
        raise UsageError(
            f"{path}: not a TFLite flatbuffer (bytes 4-8 are {head[4:8]!r}, a TFLite file has {TFLITE_IDENTIFIER!r}); "
            "expected Google's yamnet.tflite."
        )
    from converters import quiet_tensorflow

    quiet_tensorflow()
    import tensorflow as tf

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # tf.lite.Interpreter's deprecation notice
            interpreter = tf.lite.Interpreter(
                model_path=str(path),
                experimental_op_resolver_type=tf.lite.experimental.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES,
            )
            interpreter.allocate_tensors()
    except (ValueError, RuntimeError) as exc:
        detail = " ".join(str(exc).split())
        raise UsageError(f"{path}: not a TFLite model the interpreter can read: {detail}") from exc
    return interpreter


def weight_ops(interpreter: Any, origin: str) -> list[WeightOp]:
    """The body's weighted ops in execution order (from the first CONV_2D on), weights dequantized."""
    details = {d["index"]: d for d in interpreter.get_tensor_details()}
    # a DEQUANTIZE op turns a constant int8 kernel into the float one a float kernel reads
    dequantized_from: dict[int, int] = {}
    ops = interpreter._get_ops_details()  # the op list is only exposed under this name
    for op in ops:
        if op["op_name"] == "DEQUANTIZE":
            dequantized_from[int(op["outputs"][0])] = int(op["inputs"][0])

    def constant(index: int) -> tuple[np.ndarray, str]:
        index = dequantized_from.get(index, index)
        detail = details[index]
        try:
            values = interpreter.get_tensor(index)
            return dequantize(values, detail["quantization_parameters"]), detail["name"]
        except ValueError as exc:
            raise UsageError(
                f"{origin}: tensor {detail['name']!r} is not a readable constant: {exc}"
            ) from exc

    found: list[WeightOp] = []
    for op in ops:
        name = op["op_name"]
        if name == "CONV_2D" or (found and name in WEIGHT_OPS):
            inputs = [int(i) for i in op["inputs"]]
            kernel, kernel_name = constant(inputs[1])
            # no bias: keras_weights refuses it (YAMNet's BN is folded into one)
            bias = constant(inputs[2])[0] if len(inputs) > 2 and inputs[2] >= 0 else np.zeros(0, np.float32)
            found.append(WeightOp(name, kernel, bias, kernel_name))
    return found


def keras_weights(ops: list[WeightOp], num_classes: int, origin: str) -> dict[str, list[np.ndarray]]:
    """{Keras layer name: weights} of the rebuild, in Keras layouts, from the TFLite ops in order."""
    expected = ["CONV_2D"] + ["DEPTHWISE_CONV_2D", "CONV_2D"] * (len(LAYER_DEFS) - 1) + ["FULLY_CONNECTED"]
    kinds = [op.kind for op in ops]
    if kinds != expected:
        raise UsageError(
            f"{origin}: the weighted ops are {len(kinds)} ({', '.join(kinds[:4])}, ...), YAMNet's are "
            f"{len(expected)}: a 3x3 CONV_2D, 13 DEPTHWISE_CONV_2D + 1x1 CONV_2D pairs and one FULLY_CONNECTED."
        )
    weights: dict[str, list[np.ndarray]] = {}
    queue = iter(ops)

    def identity_bn(bias: np.ndarray) -> list[np.ndarray]:
        channels = bias.shape[0]
        return [
            bias.astype(np.float32),
            np.zeros(channels, np.float32),
            np.full(channels, IDENTITY_VARIANCE, np.float32),
        ]

    def take(keras_name: str, kernel_shape: tuple[int, ...]) -> WeightOp:
        op = next(queue)
        outputs = kernel_shape[-1] if op.kind == "DEPTHWISE_CONV_2D" else kernel_shape[0]
        if op.kernel.shape != kernel_shape or op.bias.shape != (outputs,):
            raise UsageError(
                f"{origin}: {op.kind} kernel {op.kernel_name!r} has shape {list(op.kernel.shape)} and bias "
                f"{list(op.bias.shape)}; {keras_name} needs a TFLite kernel of shape {list(kernel_shape)} "
                f"and a bias of [{outputs}] (batch norm folded into it)."
            )
        return op

    channels = 1
    for index, (kind, _stride, filters) in enumerate(LAYER_DEFS, start=1):
        name = f"layer{index}"
        if kind == "conv":
            op = take(f"{name}/conv", (filters, 3, 3, channels))  # OHWI
            weights[f"{name}/conv"] = [op.kernel.transpose(1, 2, 3, 0)]  # HWIO
            weights[f"{name}/conv/bn"] = identity_bn(op.bias)
        else:
            depthwise = take(f"{name}/depthwise_conv", (1, 3, 3, channels))  # 1HWC
            weights[f"{name}/depthwise_conv"] = [depthwise.kernel[0][..., None]]  # HWC1
            weights[f"{name}/depthwise_conv/bn"] = identity_bn(depthwise.bias)
            pointwise = take(f"{name}/pointwise_conv", (filters, 1, 1, channels))  # OHWI
            weights[f"{name}/pointwise_conv"] = [pointwise.kernel.transpose(1, 2, 3, 0)]  # HWIO
            weights[f"{name}/pointwise_conv/bn"] = identity_bn(pointwise.bias)
        channels = filters
    dense = take("logits", (num_classes, channels))  # [out, in]
    weights["logits"] = [dense.kernel.T.copy(), dense.bias.astype(np.float32)]
    return weights


def read_weights(path: Path, num_classes: int = 521) -> dict[str, list[np.ndarray]]:
    """The Keras rebuild's weights, by layer name, from a YAMNet TFLite file."""
    origin = str(path)
    interpreter = open_interpreter(path)
    return keras_weights(weight_ops(interpreter, origin), num_classes, origin)


def build_model(path: Path, samples: int = MIN_SAMPLES, num_classes: int = 521) -> Any:
    """The Keras frames model with every weighted layer filled from the TFLite file."""
    from converters.networks.yamnet import build_frames_model

    weights = read_weights(path, num_classes)
    model = build_frames_model(samples=samples, num_classes=num_classes)
    weighted = [layer for layer in model.layers if layer.weights]
    missing = sorted({layer.name for layer in weighted} - set(weights))
    if missing:
        raise UsageError(f"{path}: no weights for layers {', '.join(missing)}.")
    for layer in weighted:
        layer.set_weights(weights[layer.name])
    return model


def convert(source: Path, target: Path) -> int:
    """Write *target* (Keras 2 HDF5 weights, upstream layer names); return the number of layers filled."""
    from converters.keras import save_weights

    model = build_model(source)
    save_weights(model, target)
    return sum(1 for layer in model.layers if layer.weights)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m converters.networks.yamnet_tflite",
        description="Write upstream-format YAMNet weights (yamnet.h5, Keras 2 HDF5) from Google's yamnet.tflite.",
    )
    parser.add_argument("tflite", type=Path, help="the YAMNet TFLite classifier (TF Hub lite-model/yamnet)")
    parser.add_argument("h5", type=Path, help="the Keras 2 weights file to write (e.g. yamnet.h5)")
    args = parser.parse_args(argv)
    try:
        layers = convert(args.tflite, args.h5)
    except ZooError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return exc.exit_code
    except OSError as exc:
        print(f"error: {args.h5}: cannot write the weights file: {exc}", file=sys.stderr)
        return EXIT_FAILED
    print(f"{args.h5}: {layers} weighted layers from {args.tflite}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
