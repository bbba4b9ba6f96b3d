"""Framework `keras`: Keras 2 HDF5 weights loaded into a network rebuilt with tf_keras (YAMNet).

TensorFlow 2.21's `tf.keras` is Keras 3, which cannot read these files; `tf_keras` is Keras 2.
The network (converters/networks/<network.name>.py) carries upstream's layer names, so the
weights load by name; a file whose names differ but whose layers line up one to one loads in
order, as upstream's own `load_weights` does, and anything else is refused with the missing
names. Every weighted layer must receive weights: a silently half-loaded model is an error.

Exports keep the front end in the graph: ONNX through tf2onnx (which lowers the STFT to a
DFT-matrix MatMul), IR through OpenVINO's TensorFlow front end (which maps it to RDFT; framing,
window and RDFT then become one strided convolution, converters.spectral).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from converters import name_openvino_ports, quiet_tensorflow, tf2onnx_opset
from converters.spectral import band_limited_magnitudes, rdft_as_convolution
from zoo.errors import ManifestError, ZooError
from zoo.plugins import (
    Converter,
    KerasNetwork,
    declared_network,
    reference_weights_name,
    register_converter,
    weights_path,
)

if TYPE_CHECKING:
    from zoo.manifest import Manifest


def keras_network(manifest: Manifest) -> KerasNetwork:
    """The rebuilt Keras architecture named by the manifest's `network.name` (a declared keras network)."""
    network_class: KerasNetwork = declared_network(manifest, "keras", "keras")
    return network_class


def input_samples(manifest: Manifest) -> int:
    """Waveform samples per call: the product of the first input's (static) dimensions."""
    spec = manifest.inputs[0]
    if not spec.static:
        raise ManifestError(
            f"{manifest.path}: field inputs[0].shape: the keras converter needs a static waveform length, "
            f"got {spec.shape}."
        )
    return int(np.prod([int(dim) for dim in spec.shape]))  # static: every dim is an int


def build_model(manifest: Manifest) -> Any:
    """The Keras model for this manifest, with its output shapes checked against the manifest's."""
    quiet_tensorflow()
    network = keras_network(manifest)
    samples = input_samples(manifest)
    assert manifest.network is not None  # keras_network refused a manifest without one
    num_classes = int(manifest.network.args.get("num_classes", manifest.labels.count))
    model = network.build_frames_model(samples=samples, num_classes=num_classes)
    produced = {name: [int(d) for d in tensor.shape] for name, tensor in model.output.items()}
    for index, spec in enumerate(manifest.outputs):
        if spec.name not in produced:
            raise ManifestError(
                f"{manifest.path}: field outputs[{index}].name: {spec.name!r} is not an output of the rebuilt "
                f"{manifest.network.name} (it has {', '.join(produced)})."
            )
        if list(spec.shape) != produced[spec.name]:
            raise ManifestError(
                f"{manifest.path}: field outputs[{index}].shape: for {samples} input samples the network "
                f"gives {produced[spec.name]}, the manifest says {list(spec.shape)}."
            )
    return model


# -- weights ------------------------------------------------------------------------------


def _weighted_layers_in_file(group: Any) -> dict[str, list[tuple[int, ...]]]:
    """{layer name: [weight shapes]} of the layers in a Keras HDF5 weights group that hold weights."""
    found: dict[str, list[tuple[int, ...]]] = {}
    for raw in group.attrs.get("layer_names", []):
        name = raw.decode("utf-8") if isinstance(raw, bytes) else str(raw)
        layer = group[name]
        weight_names = [
            w.decode("utf-8") if isinstance(w, bytes) else str(w) for w in layer.attrs.get("weight_names", [])
        ]
        if weight_names:
            found[name] = [tuple(layer[w].shape) for w in weight_names]
    return found


def load_weights(model: Any, path: Path, origin: str) -> str:
    """Fill every weighted layer of *model* from a Keras 2 HDF5 file; return 'by name' or 'in order'."""
    import h5py
    from tf_keras.src.saving.legacy import hdf5_format

    try:
        handle = h5py.File(path, "r")
    except OSError as exc:
        raise ZooError(f"{path}: not a readable HDF5 file ({origin}): {exc}") from exc
    with handle:
        group = handle["model_weights"] if "model_weights" in handle else handle
        in_file = _weighted_layers_in_file(group)
        wanted = {
            layer.name: [tuple(w.shape) for w in layer.weights] for layer in model.layers if layer.weights
        }
        missing = [name for name in wanted if name not in in_file]
        if not in_file:
            raise ZooError(
                f"{path}: holds no Keras layer weights ({origin}); expected a Keras 2 .h5 weights file."
            )
        if not missing:
            for name, shapes in wanted.items():
                if sorted(in_file[name]) != sorted(shapes):
                    raise ZooError(
                        f"{path}: layer {name!r} has weights of shapes {in_file[name]}, the network needs "
                        f"{shapes} ({origin})."
                    )
            hdf5_format.load_weights_from_hdf5_group_by_name(group, model)
            return "by name"
        if len(in_file) == len(wanted):
            try:
                hdf5_format.load_weights_from_hdf5_group(group, model)
            except ValueError as exc:
                raise ZooError(
                    f"{path}: layer names differ from the network's (missing {', '.join(missing[:4])}) and "
                    f"loading in order failed ({origin}): {exc}"
                ) from exc
            return "in order"
        raise ZooError(
            f"{path}: {len(missing)} of the network's {len(wanted)} weighted layers are not in the file "
            f"({', '.join(missing[:6])}{', ...' if len(missing) > 6 else ''}; the file has {len(in_file)} "
            f"weighted layers) ({origin}). Is this the right weights file for {model.name}?"
        )


def save_weights(model: Any, path: Path) -> None:
    """Keras 2 HDF5 weights (the layout `model.save_weights('x.h5')` writes), written atomically."""
    import h5py
    from tf_keras.src.saving.legacy import hdf5_format

    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    os.close(fd)
    try:
        with h5py.File(tmp, "w") as handle:
            hdf5_format.save_weights_to_hdf5_group(handle, model)
        with open(tmp, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


# -- the source model ---------------------------------------------------------------------


class KerasSourceModel:
    """The rebuilt Keras model with loaded weights, run by TensorFlow: the reference.

    `openvino` caches OpenVINO's conversion of the traced function (made once, cloned per use).
    """

    def __init__(
        self, model: Any, manifest: Manifest, weights_file: Path | None = None, loaded: str | None = None
    ):
        import tensorflow as tf

        self.openvino: Any = None
        self.model = model
        self.manifest = manifest
        self.weights_file = weights_file
        self.loaded = loaded
        self.input_names = [manifest.inputs[0].name]
        self.output_names = [spec.name for spec in manifest.outputs]
        self.input_shape = [int(d) for d in manifest.inputs[0].shape]
        self.signature = [tf.TensorSpec(self.input_shape, tf.float32, name=self.input_names[0])]
        names = self.output_names

        def forward(waveform: Any) -> dict[str, Any]:
            outputs = model(waveform, training=False)
            return {name: outputs[name] for name in names}

        self.function = tf.function(forward, input_signature=self.signature, autograph=False)

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        name = self.input_names[0]
        if name not in feeds:
            raise ZooError(
                f"{self.manifest.name}: the Keras model needs input {name!r}, got {sorted(feeds)}."
            )
        array = np.asarray(feeds[name], dtype=np.float32)
        if array.size != int(np.prod(self.input_shape)):
            raise ZooError(
                f"{self.manifest.name}: input {name!r} needs shape {self.input_shape}, got {list(array.shape)}."
            )
        outputs = self.function(array.reshape(self.input_shape))
        return {key: value.numpy() for key, value in outputs.items()}


# -- exports ------------------------------------------------------------------------------


def order_outputs(proto: Any, names: list[str], manifest: Manifest) -> None:
    """Put the graph outputs in the manifest's order (tf2onnx sorts a dict's keys)."""
    outputs = {o.name: o for o in proto.graph.output}
    missing = [n for n in names if n not in outputs]
    if missing:
        raise ZooError(
            f"{manifest.name}: the ONNX export lacks outputs {missing} (it has {sorted(outputs)})."
        )
    ordered = [outputs[n] for n in names]
    copies = [type(o)() for o in ordered]
    for copy, original in zip(copies, ordered, strict=True):
        copy.CopyFrom(original)
    del proto.graph.output[:]
    proto.graph.output.extend(copies)


@register_converter
class KerasConverter(Converter[KerasSourceModel]):
    """Keras 2 HDF5 weights on a rebuilt tf_keras network; ONNX by tf2onnx, IR by OpenVINO's TF front end."""

    frameworks = ("keras",)
    direct_ir = True

    def load(self, files: dict[str, Path], manifest: Manifest) -> KerasSourceModel:
        path = weights_path(files, manifest, "Keras weights file")
        model = build_model(manifest)
        assert manifest.network is not None  # build_model refused a manifest without one
        how = load_weights(model, path, origin=f"{manifest.name}, {manifest.network.name} weights")
        return KerasSourceModel(model, manifest, path, how)

    def float64_model(
        self, source: KerasSourceModel, manifest: Manifest, onnx_path: Path | None, weights: str = "float32"
    ) -> Any:
        """The rebuild again under tf_keras' float64 policy, with the source's weights cast."""
        from zoo.numerics.float64 import KerasFloat64

        return KerasFloat64(source, manifest, build_model, weights)

    def write_reference_weights(
        self, manifest: Manifest, directory: str | Path, seed: int
    ) -> dict[str, Path]:
        """Seeded weights in upstream's file format: Keras 2 HDF5 with upstream layer names and shapes."""
        network = keras_network(manifest)
        name = reference_weights_name(manifest)
        model = build_model(manifest)
        network.set_reference_weights(model, seed)
        target = Path(directory) / name
        save_weights(model, target)
        return {name: target}

    def export_onnx(self, source: KerasSourceModel, path: str | Path, manifest: Manifest) -> None:
        """tf2onnx on the traced model, front end included; inputs and outputs named as the manifest says."""
        quiet_tensorflow()
        import tf2onnx

        from zoo.atomic import write_bytes

        opset = tf2onnx_opset(manifest)
        try:
            proto, _ = tf2onnx.convert.from_function(
                source.function, input_signature=source.signature, opset=opset
            )
        except Exception as exc:  # tf2onnx raises many kinds with its own text
            raise ZooError(
                f"{manifest.name}: tf2onnx cannot convert the Keras model: {type(exc).__name__}: {exc}"
            ) from exc
        order_outputs(proto, source.output_names, manifest)
        proto.doc_string = (
            f"{manifest.name} {manifest.version}: converted by zoo from Keras 2 weights with tf2onnx"
        )
        write_bytes(path, proto.SerializeToString())

    def to_openvino(self, source: KerasSourceModel, files: dict[str, Path], manifest: Manifest) -> Any:
        """OpenVINO's TensorFlow front end on the traced model (STFT becomes RDFT), manifest names on ports."""
        quiet_tensorflow()
        import openvino as ov

        if source.openvino is None:
            try:
                converted = ov.convert_model(source.function)
            except Exception as exc:  # the front end raises generic errors with its own text
                raise ZooError(f"{manifest.name}: OpenVINO cannot convert the Keras model: {exc}") from exc
            name_openvino_ports(
                converted, [manifest.inputs[0].name], source.output_names, manifest.name, inputs_in_order=True
            )
            if rdft_as_convolution(converted):  # the STFT as one strided convolution (converters.spectral)
                converted.validate_nodes_and_infer_types()
                band_limited_magnitudes(converted)  # ... of the bins the mel matrix uses
            source.openvino = converted
        # each caller gets its own copy: saving one precision must not change the next
        return source.openvino.clone()
