"""Framework `tflite`: a TFLite flatbuffer (BirdNET), run by the TFLite interpreter as the reference.

BirdNET computes its mel spectrograms inside the model with RFFT2D, whose complex output is
cast to float (which keeps the real part). Neither converter handles that op as is:

- ONNX (tf2onnx's TFLite path): RFFT2D becomes ONNX DFT (onesided) + the real part. The DFT
  runs in float64, as TFLite's own RFFT2D kernel does (it calls Ooura's fft2d in double):
  a float32 FFT leaves a noise floor of ~1e-7 of the frame's energy in every bin, and BirdNET's
  power step (|mel|^0.46) turns that floor into logit changes of 0.1-0.3 on pure tones and silence.
- OpenVINO (TFLite front end): a conversion extension maps RFFT2D to its real part as a MatMul
  with the cosine basis, and ``fold_linear_front_end`` folds the Hann window before it and the
  mel MatMul after it into one (frame x mels) matrix formed in float64: the IR multiplies raw
  frames by a 2048 x 96 matrix where OpenVINO's RDFT (float32 only, and 80 % of the IR's time)
  used to run. Its float32 sums keep a noise floor like a float32 FFT's (pure tones move logits
  by up to ~0.3; zoo.numerics' yardstick for runtimes without float64 covers exactly that).
  The front end (everything before the network's first convolution) is renamed `front_end/...`
  so the manifest can keep it in float32 in the FP16 IR, and its output tensor is named
  `front_end`, the boundary INT8 keeps everything before in float.

TensorFlow, tf2onnx and OpenVINO are imported inside the functions.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from converters import name_openvino_ports, quiet_tensorflow, tf2onnx_opset
from converters.spectral import (
    FOLDED_TAG,
    cancel_front_end_transposes,
    fold_band_reversals,
    linear_frames,
    unwindowed,
)
from zoo.errors import ManifestError, UsageError, ZooError
from zoo.plugins import Converter, ThreadsAtLoad, register_converter, weights_path

if TYPE_CHECKING:
    from zoo.manifest import Manifest

#: tf2onnx 1.17 emits opsets up to this one; ONNX DFT needs 17
#: ONNX DFT, which the TFLite export of RFFT2D needs, exists from this opset on
MIN_OPSET = 17
FRONT_END_PREFIX = "front_end/"
#: the tensor name the IR gives the front end's output (the first convolution's input): the boundary
#: the manifest's quantize.front_end names, so INT8 keeps every op before it in float
FRONT_END_TENSOR = "front_end"


# -- the source model ---------------------------------------------------------------------


class TfliteSourceModel:
    """tf.lite.Interpreter on the published flatbuffer (default kernels, XNNPACK): the reference.

    `openvino` caches OpenVINO's conversion of the flatbuffer (made once, cloned per use).
    """

    def __init__(self, path: Path, manifest: Manifest, threads: int | None = None):
        quiet_tensorflow()
        import tensorflow as tf

        self.openvino: Any = None
        self.path = Path(path)
        self.manifest = manifest
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # tf.lite.Interpreter's deprecation notice
                # num_threads also sizes XNNPACK's thread pool; None keeps the interpreter's default
                self.interpreter = tf.lite.Interpreter(model_path=str(self.path), num_threads=threads)
        except (ValueError, RuntimeError) as exc:
            raise ZooError(f"{self.path}: not a TFLite model the interpreter can read: {exc}") from exc
        details_in = self.interpreter.get_input_details()
        details_out = self.interpreter.get_output_details()
        self._inputs = {d["name"]: d for d in details_in}
        self._outputs = {d["name"]: d for d in details_out}
        for direction, specs, have in (
            ("input", manifest.inputs, self._inputs),
            ("output", manifest.outputs, self._outputs),
        ):
            for index, spec in enumerate(specs):
                if spec.name not in have:
                    raise ZooError(
                        f"{self.path}: the manifest's {direction} {spec.name!r} ({direction}s[{index}].name) is "
                        f"not in the model, whose {direction}s are {sorted(have)}."
                    )
                shape = [int(d) for d in have[spec.name]["shape_signature"]]
                if len(shape) != len(spec.shape) or any(
                    isinstance(w, int) and h not in (-1, w) for h, w in zip(shape, spec.shape, strict=True)
                ):
                    raise ZooError(
                        f"{self.path}: {direction} {spec.name!r} has shape {shape}, the manifest says {spec.shape}."
                    )
        for spec in manifest.inputs:
            self.interpreter.resize_tensor_input(
                self._inputs[spec.name]["index"], [int(d) for d in spec.shape]
            )
        self.interpreter.allocate_tensors()
        self.input_names = [spec.name for spec in manifest.inputs]
        self.output_names = [spec.name for spec in manifest.outputs]

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        for spec in self.manifest.inputs:
            if spec.name not in feeds:
                raise ZooError(
                    f"{self.manifest.name}: the TFLite model needs input {spec.name!r}, got {sorted(feeds)}."
                )
            array = np.asarray(feeds[spec.name], dtype=np.float32)
            shape = [int(d) for d in spec.shape]
            if array.size != int(np.prod(shape)):
                raise ZooError(
                    f"{self.manifest.name}: input {spec.name!r} needs shape {shape}, got {list(array.shape)}."
                )
            self.interpreter.set_tensor(self._inputs[spec.name]["index"], array.reshape(shape))
        self.interpreter.invoke()
        return {
            name: np.array(self.interpreter.get_tensor(self._outputs[name]["index"]), copy=True)
            for name in self.output_names
        }


# -- ONNX ---------------------------------------------------------------------------------


def _rfft2d_as_real_dft(ctx: Any, node: Any, name: str, args: Any) -> None:
    """tf2onnx handler: RFFT2D (one row) + cast-to-real becomes Cast(f64) -> DFT -> real part -> Cast(f32)."""
    from onnx import TensorProto
    from tf2onnx import utils

    data = node.input[0]
    shape = ctx.get_shape(data)
    lengths = node.inputs[1].get_tensor_value(as_list=True)
    if shape is None or len(shape) < 2 or lengths[0] != 1 or shape[-2] != 1:
        raise ZooError(
            f"RFFT2D {name}: only a one-row transform (fft_length [1, n] on [..., 1, n]) is supported, "
            f"got fft_length {lengths} on {shape}."
        )
    rank = len(shape)
    out_shape = ctx.get_shape(node.output[0])
    outputs = list(node.output)
    wide = ctx.make_node("Cast", [data], attr={"to": TensorProto.DOUBLE})
    axes = ctx.make_const(utils.make_name(f"{name}_axes"), np.array([rank], dtype=np.int64))
    signal = ctx.make_node("Unsqueeze", [wide.output[0], axes.output[0]])
    length = ctx.make_const(utils.make_name(f"{name}_length"), np.array(lengths[1], dtype=np.int64))
    spectrum = ctx.make_node(
        "DFT", [signal.output[0], length.output[0]], attr={"axis": rank - 1, "onesided": 1}
    )
    real_index = ctx.make_const(utils.make_name(f"{name}_real"), np.array(0, dtype=np.int64))
    real = ctx.make_node("Gather", [spectrum.output[0], real_index.output[0]], attr={"axis": rank})
    ctx.remove_node(node.name)
    ctx.make_node(
        "Cast",
        [real.output[0]],
        attr={"to": TensorProto.FLOAT},
        outputs=outputs,
        name=name,
        shapes=[out_shape],
        dtypes=[TensorProto.FLOAT],
    )
    # what followed the complex output (squeeze, then the cast to float) now carries real values
    pending = list(outputs)
    while pending:
        tensor = pending.pop()
        for consumer in ctx.find_output_consumers(tensor):
            for out in consumer.output:
                if ctx.get_dtype(out) in (TensorProto.COMPLEX64, TensorProto.COMPLEX128):
                    ctx.set_dtype(out, TensorProto.FLOAT)
                    pending.append(out)


# -- OpenVINO ------------------------------------------------------------------------------


#: friendly-name tag of the DFT-as-MatMul the RFFT2D extension emits (fold_linear_front_end finds it)
DFT_BASIS_TAG = "rfft_real_basis"


def _fft_length(node: Any, frames: Any) -> int:
    """The transform length of an RFFT2D node: its constant fft_length, else the frames' last dim."""
    lengths = node.get_input(1).get_node()
    if lengths.get_type_name() == "Constant":
        return int(np.asarray(lengths.get_data()).ravel()[-1])
    return int(frames.get_partial_shape()[-1].get_length())


def _rfft2d_real_part(node: Any) -> list[Any]:
    """Conversion extension: RFFT2D -> its real part as a MatMul with the cosine basis.

    Re X_k = sum_n x_n cos(2 pi k n / N): one constant matrix, computed in float64. Alone it is
    a slow DFT for large N; ``fold_linear_front_end`` then folds the window before it and the
    mel matrix after it into one small matrix.
    """
    import openvino.opset13 as ops

    frames = node.get_input(0)
    n = _fft_length(node, frames)
    k = np.arange(n // 2 + 1)
    basis = np.cos(2.0 * np.pi * np.outer(np.arange(n), k) / n)
    real = ops.matmul(frames, ops.constant(basis.astype(np.float32)), False, False)
    real.set_friendly_name(f"{DFT_BASIS_TAG}_{n}")
    return [real.output(0)]


def fold_linear_front_end(model: Any) -> int:
    """Fold window x DFT real part x mel matrix into one float64-computed matrix per spectrogram.

    BirdNET's front end is linear up to its mel energies: frames times a Hann window, the real
    part of their RFFT, then a MatMul with the mel filter bank. Three steps make one (N x mels)
    matrix W = diag(window) C M, so the IR multiplies each raw frame by W (2048 x 96 instead of a
    2048-point FFT and a 1025 x 96 MatMul), and the products are formed in float64 before one
    rounding to float32. Only reshapes, squeezes and converts may sit between the DFT and the
    mel MatMul. Returns the number folded.
    """
    import openvino.opset13 as ops

    folded = 0
    shape_only = ("Squeeze", "Unsqueeze", "Reshape", "Convert")
    for dft in [op for op in model.get_ordered_ops() if op.get_friendly_name().startswith(DFT_BASIS_TAG)]:
        basis = np.asarray(dft.input_value(1).get_node().get_data(), dtype=np.float64)
        if dft.get_attributes().get("transpose_b"):  # passes may have stored it transposed
            basis = basis.T
        # downstream: through shape-only steps to the MatMul with the constant mel matrix
        node, mel = dft, None
        shape_reads: list[Any] = []
        while True:
            # ShapeOf consumers read static shapes only: they become constants below
            targets: list[Any] = []
            for t in node.output(0).get_target_inputs():
                (shape_reads if t.get_node().get_type_name() == "ShapeOf" else targets).append(t.get_node())
            if len(targets) != 1:
                break
            node = targets[0]
            if node.get_type_name() == "MatMul":
                other = node.input_value(1).get_node()
                if other.get_type_name() == "Constant" and node.input_value(0).get_node() is not other:
                    mel = node
                break
            if node.get_type_name() not in shape_only:
                break
        if mel is None:
            continue
        matrix = np.asarray(mel.input_value(1).get_node().get_data(), dtype=np.float64)
        attributes = mel.get_attributes()
        if attributes.get("transpose_b"):
            matrix = matrix.T
        if attributes.get("transpose_a") or matrix.ndim != 2 or matrix.shape[0] != basis.shape[1]:
            continue
        # upstream: the raw frames, when a constant window is multiplied into them (reshapes and
        # unsqueezes between keep the row order, so flattening either gives the same rows)
        raw, window = unwindowed(dft.input_value(0))
        # numpy's own loops, not BLAS: a threaded BLAS inside a process already running the
        # converters' thread pools can spin for minutes on a busy machine
        weights = np.einsum("nk,km->nm", basis, matrix)
        if window is not None:
            weights = window[:, None] * weights
        given = mel.input_value(0).get_partial_shape()  # the rows the mel MatMul multiplies
        if not given.is_static:
            continue
        fused = linear_frames(raw, weights, [int(d) for d in given.to_shape()][:-1], mel.get_friendly_name())
        fused.set_friendly_name(mel.get_friendly_name())
        for target in list(mel.output(0).get_target_inputs()):
            target.replace_source_output(fused.output(0))
        for read in shape_reads:
            static = read.input_value(0).get_partial_shape()
            if static.is_static:
                dtype = np.int32 if read.get_output_element_type(0).get_type_name() == "i32" else np.int64
                value = ops.constant(np.array(list(static.to_shape()), dtype=dtype))
                for target in list(read.output(0).get_target_inputs()):
                    target.replace_source_output(value.output(0))
        folded += 1
    return folded


def first_convolution(model: Any) -> Any:
    """The network's first convolution in graph order (None without one); the folded front end's
    own strided convolution (converters.spectral) is not the network's."""
    return next(
        (
            op
            for op in model.get_ordered_ops()
            if op.get_type_name() in ("Convolution", "GroupConvolution")
            and not op.get_friendly_name().endswith(FOLDED_TAG)
        ),
        None,
    )


def front_end_nodes(model: Any) -> list[Any]:
    """Every op the network's first convolution's input depends on: the in-graph spectrogram front end."""
    first = first_convolution(model)
    if first is None:
        return []
    seen: dict[str, Any] = {}  # friendly names are unique in a converted model
    pending = [first.input_value(0).get_node()]
    while pending:
        op = pending.pop()
        if op.get_friendly_name() not in seen:
            seen[op.get_friendly_name()] = op
            pending.extend(value.get_node() for value in op.input_values())
    return [op for op in seen.values() if op.get_type_name() not in ("Parameter", "Constant")]


def power_without_square(model: Any) -> int:
    """Rewrite (x * x) ** p as |x| ** (2p): same value, no squared intermediate.

    BirdNET's spectrogram squares the mel energies before a fractional power; the square reaches
    2.2e5 on loud input, beyond half precision's 65504, while |x| stays below 500. The rewrite
    lets a device that computes the front end in f16 get through it. Returns the number rewritten.
    """
    import openvino.opset13 as ops

    rewritten = 0
    for power in [op for op in model.get_ordered_ops() if op.get_type_name() == "Power"]:
        square = power.input_value(0).get_node()
        exponent = power.input_value(1).get_node()
        if square.get_type_name() != "Multiply" or exponent.get_type_name() != "Constant":
            continue
        left, right = square.input_value(0), square.input_value(1)
        if (
            left.get_node() is not right.get_node()
            and left.get_node().get_friendly_name() != right.get_node().get_friendly_name()
        ):
            continue
        if left.get_index() != right.get_index():
            continue
        doubled = np.asarray(exponent.get_data(), dtype=np.float32) * np.float32(2.0)
        replacement = ops.power(ops.abs(left), ops.constant(doubled))
        replacement.set_friendly_name(power.get_friendly_name())
        for target in list(power.output(0).get_target_inputs()):
            target.replace_source_output(replacement.output(0))
        rewritten += 1
    return rewritten


def powers_by_exp_log(nodes: list[Any]) -> int:
    """Compute each |x| ** p among *nodes* (p one constant, not a whole number) as exp(p * ln|x|).
    Returns the number rewritten.

    Why: OpenVINO's CPU Power kernel for a fractional exponent is several times slower than its
    Log, Multiply and Exp together (`zoo bench --profile` shows BirdNET's two |mel|^p steps
    among its slowest front-end ops); the front end stays float32 in every precision, so the
    time is paid by FP32 and INT8 alike.

    Error: ln|x| is exact to about an ulp of |ln x|, the product adds half an ulp, and exp turns
    an absolute error d of its argument into a relative error d of the result, plus its own
    rounding (allowed 3 ulps: OpenVINO documents no bound for its kernels). So the result is off
    by at most (1.5 |p ln x| + 3) float32 ulps relative: ~13 ulps for the band values a front
    end makes (|p ln x| < 7), no more than the relative rounding of the 2048-long frame sums
    that produced x (zoo.numerics' floor: u * sqrt(n / 3) = 26 ulps per sigma). A base that is not
    an Abs is left alone: ln of a negative number is NaN, where a Power with a whole exponent is not.
    """
    import openvino.opset13 as ops

    rewritten = 0
    for power in [op for op in nodes if op.get_type_name() == "Power"]:
        base, exponent = (power.input_value(i) for i in (0, 1))
        if base.get_node().get_type_name() != "Abs" or exponent.get_node().get_type_name() != "Constant":
            continue
        p = np.asarray(exponent.get_node().get_data(), dtype=np.float32)
        if p.size != 1 or float(p.ravel()[0]) == round(float(p.ravel()[0])):
            continue
        result = ops.exp(ops.multiply(ops.log(base), ops.constant(p)))
        result.set_friendly_name(power.get_friendly_name())
        for target in list(power.output(0).get_target_inputs()):
            target.replace_source_output(result.output(0))
        rewritten += 1
    return rewritten


@register_converter
class TfliteConverter(ThreadsAtLoad, Converter[TfliteSourceModel]):
    """The TFLite interpreter as reference; ONNX by tf2onnx's TFLite path, IR by OpenVINO's TFLite front end."""

    frameworks = ("tflite",)
    direct_ir = True

    def load(self, files: dict[str, Path], manifest: Manifest) -> TfliteSourceModel:
        return TfliteSourceModel(weights_path(files, manifest, ".tflite file"), manifest, self.threads)

    def write_reference_weights(
        self, manifest: Manifest, directory: str | Path, seed: int
    ) -> dict[str, Path]:
        """TFLite entries use their real published model; there is no seeded stand-in."""
        raise UsageError(
            f"{manifest.name}: no reference weights for a TFLite model; its real weights come from "
            f"{manifest.weights_available} sources: run without --reference-weights."
        )

    def export_onnx(self, source: TfliteSourceModel, path: str | Path, manifest: Manifest) -> None:
        """tf2onnx's TFLite path with the RFFT2D handler; fixed input shapes; refuses unconverted ops."""
        quiet_tensorflow()
        import tf2onnx

        from zoo.atomic import write_bytes

        opset = tf2onnx_opset(manifest)
        if opset < MIN_OPSET:
            raise ManifestError(
                f"{manifest.path}: field convert.onnx.opset: the TFLite export needs ONNX DFT "
                f"(opset {MIN_OPSET} or later); got {opset}."
            )
        shapes = {spec.name: [int(d) for d in spec.shape] for spec in manifest.inputs}
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # tf.lite.Interpreter's deprecation notice, inside tf2onnx
                proto, _ = tf2onnx.convert.from_tflite(
                    str(source.path),
                    opset=opset,
                    shape_override=shapes,
                    custom_op_handlers={"RFFT2D": (_rfft2d_as_real_dft, [])},
                )
        except ZooError:
            raise
        except Exception as exc:  # tf2onnx raises many kinds with its own text
            raise ZooError(
                f"{manifest.name}: tf2onnx cannot convert {source.path.name}: {type(exc).__name__}: {exc}"
            ) from exc
        # from_tflite carries on past ops it cannot map: make sure none is left
        leftovers = sorted(
            {
                n.op_type
                for n in proto.graph.node
                if n.op_type.startswith("TFL_") or n.domain not in ("", "ai.onnx")
            }
        )
        if leftovers:
            raise ZooError(
                f"{manifest.name}: tf2onnx left TFLite ops it cannot convert: {', '.join(leftovers)}."
            )
        proto.doc_string = f"{manifest.name} {manifest.version}: converted by zoo from TFLite with tf2onnx"
        write_bytes(path, proto.SerializeToString())

    def to_openvino(self, source: TfliteSourceModel, files: dict[str, Path], manifest: Manifest) -> Any:
        """OpenVINO's TFLite front end with the RFFT2D extension; static shapes; named front end and ports."""
        import openvino as ov
        from openvino.frontend import ConversionExtension

        if source.openvino is None:
            try:
                converted = ov.convert_model(
                    str(source.path), extension=[ConversionExtension("RFFT2D", _rfft2d_real_part)]
                )
            except Exception as exc:  # the front end raises generic errors with its own text
                raise ZooError(f"{manifest.name}: OpenVINO cannot convert {source.path.name}: {exc}") from exc
            converted.reshape({spec.name: [int(d) for d in spec.shape] for spec in manifest.inputs})
            power_without_square(converted)
            converted.validate_nodes_and_infer_types()
            from openvino.passes import ConstantFolding, Manager

            folding = Manager()
            folding.register_pass(ConstantFolding())
            folding.run_passes(converted)  # the shape arithmetic of the dynamic-batch graph, now static
            if fold_linear_front_end(converted):
                converted.validate_nodes_and_infer_types()
                folding.run_passes(converted)  # the shape reads of the replaced DFT
            # the band flips into the folded matrices, and no transposes between bands and network
            fold_band_reversals(converted)
            first = first_convolution(converted)
            if first is not None and cancel_front_end_transposes(first.input(0)):
                converted.validate_nodes_and_infer_types()
            if powers_by_exp_log(converted.get_ordered_ops()):
                converted.validate_nodes_and_infer_types()
            for op in front_end_nodes(converted):
                op.set_friendly_name(FRONT_END_PREFIX + op.get_friendly_name())
            if first is not None:
                first.input_value(0).get_tensor().add_names({FRONT_END_TENSOR})
            name_openvino_ports(
                converted,
                [s.name for s in manifest.inputs],
                [s.name for s in manifest.outputs],
                manifest.name,
            )
            source.openvino = converted
        # each caller gets its own copy: saving one precision must not change the next
        return source.openvino.clone()
