"""Framework `tflite`: a TFLite flatbuffer (BirdNET), run by the TFLite interpreter as the reference.

BirdNET computes its mel spectrograms inside the model with RFFT2D, whose complex output is
cast to float (which keeps the real part). Neither converter handles that op as is:

- ONNX (tf2onnx's TFLite path): RFFT2D becomes ONNX DFT (onesided) + the real part. The DFT
  runs in float64, as TFLite's own RFFT2D kernel does (it calls Ooura's fft2d in double):
  a float32 FFT leaves a noise floor of ~1e-7 of the frame's energy in every bin, and BirdNET's
  power step (|mel|^0.46) turns that floor into logit changes of 0.1-0.3 on pure tones and silence.
- OpenVINO (TFLite front end): a conversion extension maps RFFT2D to RDFT + the real part.
  RDFT takes float32 only (and the CPU plugin lowers float64 math to float32), so the IR keeps
  a float32 FFT; to take at least the Hann window's own spectrum out of the rounding, each
  frame's projection onto the window is removed before the FFT and its exact spectrum added
  back after it. That makes silence and constant frames exact; pure tones keep the float32
  floor. The front end (everything before the first convolution) is renamed `front_end/...`
  so the manifest can keep it in float32 in the FP16 IR, and its output tensor is named
  `front_end`, the boundary INT8 keeps everything before in float.

TensorFlow, tf2onnx and OpenVINO are imported inside the functions.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from converters import quiet_tensorflow
from zoo.errors import ManifestError, UsageError, ZooError
from zoo.plugins import Converter, register_converter, weights_path

if TYPE_CHECKING:
    from zoo.manifest import Manifest

#: tf2onnx 1.17 emits opsets up to this one; ONNX DFT needs 17
MIN_OPSET, MAX_OPSET = 17, 18
FRONT_END_PREFIX = "front_end/"
#: the tensor name the IR gives the front end's output (the first convolution's input): the boundary
#: the manifest's quantize.front_end names, so INT8 keeps every op before it in float
FRONT_END_TENSOR = "front_end"


# -- the source model ---------------------------------------------------------------------


class TfliteSourceModel:
    """tf.lite.Interpreter on the published flatbuffer (default kernels, XNNPACK): the reference.

    `openvino` caches OpenVINO's conversion of the flatbuffer (made once, cloned per use).
    """

    def __init__(self, path: Path, manifest: Manifest):
        quiet_tensorflow()
        import tensorflow as tf

        self.openvino: Any = None
        self.path = Path(path)
        self.manifest = manifest
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # tf.lite.Interpreter's deprecation notice
                self.interpreter = tf.lite.Interpreter(model_path=str(self.path))
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


def _window_of(frames: Any) -> np.ndarray | None:
    """The constant window multiplied into *frames* just before the FFT, or None."""
    node = frames.get_node()
    while node.get_type_name() in ("Unsqueeze", "Reshape"):
        node = node.input_value(0).get_node()
    if node.get_type_name() != "Multiply":
        return None
    for value in node.input_values():
        source = value.get_node()
        if source.get_type_name() == "Constant":
            window = np.asarray(source.get_data(), dtype=np.float64).ravel()
            if window.size == int(frames.get_partial_shape()[-1].get_length()):
                return window
    return None


def _rfft2d_real_part(node: Any) -> list[Any]:
    """Conversion extension: RFFT2D -> real part of RDFT, with the window's own spectrum added exactly."""
    import openvino.opset13 as ops

    frames, lengths = node.get_input(0), node.get_input(1)
    axes = ops.constant(np.array([-2, -1], dtype=np.int64))
    real = ops.constant(np.array(0, dtype=np.int64))
    last = ops.constant(np.array(-1, dtype=np.int64))
    window = _window_of(frames)
    if window is None:
        return [ops.gather(ops.rdft(frames, axes, lengths), real, last).output(0)]
    # frames = a * window + rest, a per frame (least squares); RDFT(window) is exact in float64
    shape = ops.constant(window.astype(np.float32))
    amount = ops.divide(
        ops.reduce_sum(ops.multiply(frames, shape), last, True),
        ops.constant(np.array(float(window @ window), dtype=np.float32)),
    )
    rest = ops.subtract(frames, ops.multiply(amount, shape))
    window_spectrum = ops.constant(np.fft.rfft(window).real.astype(np.float32))
    spectrum = ops.gather(ops.rdft(rest, axes, lengths), real, last)
    return [ops.add(spectrum, ops.multiply(amount, window_spectrum)).output(0)]


def first_convolution(model: Any) -> Any:
    """The model's first convolution in graph order (None without one)."""
    return next(
        (op for op in model.get_ordered_ops() if op.get_type_name() in ("Convolution", "GroupConvolution")),
        None,
    )


def front_end_nodes(model: Any) -> list[Any]:
    """Every op the first convolution's input depends on: the in-graph spectrogram front end."""
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


def name_ports(model: Any, manifest: Manifest) -> None:
    """Each port keeps exactly its manifest name (the front end adds graph-internal aliases)."""
    for direction, ports, specs in (
        ("input", model.inputs, manifest.inputs),
        ("output", model.outputs, manifest.outputs),
    ):
        for spec in specs:
            matching = [p for p in ports if spec.name in p.get_names()]
            if len(matching) != 1:
                raise ZooError(
                    f"{manifest.name}: the OpenVINO model has no {direction} named {spec.name!r} "
                    f"(it has {[sorted(p.get_names()) for p in ports]})."
                )
            matching[0].get_tensor().set_names({spec.name})


@register_converter
class TfliteConverter(Converter[TfliteSourceModel]):
    """The TFLite interpreter as reference; ONNX by tf2onnx's TFLite path, IR by OpenVINO's TFLite front end."""

    frameworks = ("tflite",)
    direct_ir = True

    def load(self, files: dict[str, Path], manifest: Manifest) -> TfliteSourceModel:
        return TfliteSourceModel(weights_path(files, manifest, ".tflite file"), manifest)

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

        opset = manifest.convert.onnx.opset
        if not MIN_OPSET <= opset <= MAX_OPSET:
            raise ManifestError(
                f"{manifest.path}: field convert.onnx.opset: the TFLite export needs ONNX DFT (opset {MIN_OPSET}) "
                f"and tf2onnx emits up to {MAX_OPSET}; got {opset}."
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
            for op in front_end_nodes(converted):
                op.set_friendly_name(FRONT_END_PREFIX + op.get_friendly_name())
            first = first_convolution(converted)
            if first is not None:
                first.input_value(0).get_tensor().add_names({FRONT_END_TENSOR})
            name_ports(converted, manifest)
            source.openvino = converted
        # each caller gets its own copy: saving one precision must not change the next
        return source.openvino.clone()
