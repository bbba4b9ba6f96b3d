"""TF1 graphs, framework-level: read a checkpoint's graph, bind, restore, freeze, run, export.

Shared by every converter whose source is a TF1 graph with variables (a checkpoint's `.meta`,
or a graph rebuilt in code for a V1 checkpoint). Measured with TensorFlow 2.21, tf2onnx 1.17 and
OpenVINO 2025 on real checkpoints; what each step is for:

- ``import_meta_graph`` refuses graphs written by old TensorFlow versions until the stale
  ``_output_shapes`` attributes are stripped (``strip_output_shapes``);
- placeholders such as ``is_training`` are replaced by constants in the graph itself
  (``bind_placeholders``), so freezing leaves only the inference branch's inputs and tf2onnx can
  fold the training conds (Switch/Merge) away;
- the frozen GraphDef (variables made constants) is the source model (``FrozenGraph``), the input
  of tf2onnx (``export_onnx``, which refuses a graph with an ``If`` or ``Loop`` left), and, written
  to a ``.pb`` FILE, of OpenVINO's TensorFlow front end (``openvino_from_pb``). OpenVINO routes
  measured as broken are never taken: the frozen graph passed in memory ("No conversion rule found
  for operations: Switch"), the `.meta` as shipped (variables not initialised) and the `.meta`
  copied to a named prefix with is_training left an input (converts, but silently wrong on the
  first call after each change of the input's shape, such as batch 1 to 10, for VGG-style graphs).

TensorFlow, tf2onnx, onnx and OpenVINO are imported inside the functions.
"""

from __future__ import annotations

import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from converters import name_openvino_ports, quiet_tensorflow
from zoo.errors import ZooError

if TYPE_CHECKING:
    from zoo.manifest import Manifest

#: ONNX ops that mean a TF control-flow construct survived conversion (training conds not folded)
CONTROL_FLOW_OPS = ("If", "Loop")
#: bindable constant values: what a placeholder such as is_training can be fixed to
BoundValue = bool | int | float


def node_name(tensor: str) -> str:
    """'scope/op:0' -> 'scope/op' (a GraphDef names nodes, a session names tensors)."""
    return tensor.rsplit(":", 1)[0] if ":" in tensor else tensor


def read_meta_graph(path: Path) -> Any:
    """The MetaGraphDef in a checkpoint's `.meta` file, or a ZooError naming the file."""
    quiet_tensorflow()
    from google.protobuf.message import DecodeError
    from tensorflow.core.protobuf import meta_graph_pb2

    meta = meta_graph_pb2.MetaGraphDef()
    try:
        meta.ParseFromString(Path(path).read_bytes())
    except (DecodeError, OSError) as exc:
        raise ZooError(f"{path}: not a readable TF1 MetaGraphDef (.meta) file: {exc}") from exc
    if not meta.graph_def.node:
        raise ZooError(f"{path}: the MetaGraphDef holds no graph nodes; is this a checkpoint's .meta file?")
    return meta


def strip_output_shapes(meta: Any) -> int:
    """Delete every node's `_output_shapes` attribute (graph and function library); return how many.

    Old TensorFlow recorded shapes that current shape inference contradicts, and
    ``import_meta_graph`` fails on them; the shapes are recomputed on import.
    """
    stripped = 0
    nodes = list(meta.graph_def.node)
    for function in meta.graph_def.library.function:
        nodes.extend(function.node_def)
    for node in nodes:
        if "_output_shapes" in node.attr:
            del node.attr["_output_shapes"]
            stripped += 1
    return stripped


def bind_placeholders(graph_def: Any, bindings: Mapping[str, BoundValue], origin: str) -> None:
    """Replace each named placeholder of *graph_def* by a scalar constant of its dtype, in place.

    *bindings* maps tensor names ('model/Placeholder_2:0') to values; a name that is not a
    placeholder of the graph, or a value its dtype cannot hold, is a ZooError naming *origin*.
    """
    quiet_tensorflow()
    import tensorflow as tf

    nodes = {node.name: node for node in graph_def.node}
    for tensor, value in bindings.items():
        node = nodes.get(node_name(tensor))
        if node is None or node.op not in ("Placeholder", "PlaceholderWithDefault"):
            placeholders = sorted(n.name + ":0" for n in graph_def.node if n.op == "Placeholder")
            raise ZooError(
                f"{origin}: {tensor!r} is not a placeholder of the graph (its placeholders: "
                f"{', '.join(placeholders) or 'none'})."
            )
        dtype = tf.dtypes.as_dtype(node.attr["dtype"].type)
        if dtype == tf.bool and not isinstance(value, bool):
            raise ZooError(
                f"{origin}: placeholder {tensor!r} is boolean; bind it to true or false, got {value!r}."
            )
        if dtype != tf.bool and isinstance(value, bool):
            raise ZooError(
                f"{origin}: placeholder {tensor!r} is {dtype.name}; bind it to a number, got {value!r}."
            )
        proto = tf.make_tensor_proto(np.array(value, dtype=dtype.as_numpy_dtype))
        node.ClearField("input")
        node.op = "Const"
        node.attr.clear()
        node.attr["dtype"].type = dtype.as_datatype_enum
        node.attr["value"].tensor.CopyFrom(proto)


def restore_session(meta: Any, prefix: Path, origin: str) -> tuple[Any, Any]:
    """(graph, tf.compat.v1.Session) with *meta*'s graph imported and the checkpoint at *prefix* restored."""
    quiet_tensorflow()
    import tensorflow as tf

    graph = tf.Graph()
    with graph.as_default():
        try:
            saver = tf.compat.v1.train.import_meta_graph(meta, clear_devices=True)
        except (ValueError, TypeError, tf.errors.OpError) as exc:
            raise ZooError(f"{origin}: TensorFlow cannot import the checkpoint's graph: {exc}") from exc
        if saver is None:
            raise ZooError(f"{origin}: the checkpoint's graph has no variables to restore.")
        session = tf.compat.v1.Session(graph=graph)
        try:
            saver.restore(session, str(prefix))
        except (ValueError, tf.errors.OpError) as exc:
            session.close()
            message = getattr(exc, "message", str(exc)).splitlines()[0]
            raise ZooError(f"{origin}: the checkpoint's variables do not restore: {message}") from exc
    return graph, session


def freeze(session: Any, outputs: Sequence[str], origin: str) -> Any:
    """The session's graph as a GraphDef with variables made constants, pruned to *outputs* (tensor names)."""
    quiet_tensorflow()
    import tensorflow as tf

    graph_def = session.graph.as_graph_def()
    known = {node.name for node in graph_def.node}
    missing = [name for name in outputs if node_name(name) not in known]
    if missing:
        raise ZooError(f"{origin}: the graph has no tensors {missing}; check the output tensor names.")
    frozen = tf.compat.v1.graph_util.convert_variables_to_constants(
        session, graph_def, [node_name(name) for name in outputs]
    )
    return tf.compat.v1.graph_util.extract_sub_graph(frozen, [node_name(name) for name in outputs])


def rename_ports(graph_def: Any, inputs: Mapping[str, str], outputs: Mapping[str, str]) -> Any:
    """A copy of the frozen *graph_def* whose ports carry the given names: {new name: tensor name}.

    An input placeholder node is renamed (its consumers follow); an output gets an Identity of the
    new name. ONNX and OpenVINO exports then carry those names without mapping tables.
    """
    quiet_tensorflow()
    import tensorflow as tf

    renamed = tf.compat.v1.GraphDef()
    renamed.CopyFrom(graph_def)
    old_to_new = {node_name(tensor): new for new, tensor in inputs.items()}
    for node in renamed.node:
        if node.name in old_to_new:
            node.name = old_to_new[node.name]
        for index, source in enumerate(node.input):
            control = source.startswith("^")
            bare = source.lstrip("^")
            name, _, port = bare.partition(":")
            if name in old_to_new:
                node.input[index] = ("^" if control else "") + old_to_new[name] + (f":{port}" if port else "")
    for new, tensor in outputs.items():
        identity = renamed.node.add()
        identity.name = new
        identity.op = "Identity"
        identity.input.append(old_to_new.get(node_name(tensor), node_name(tensor)) + _port(tensor))
        source = next(
            (n for n in renamed.node if n.name == old_to_new.get(node_name(tensor), node_name(tensor))), None
        )
        if source is not None and "T" in source.attr:
            identity.attr["T"].CopyFrom(source.attr["T"])
        else:
            identity.attr["T"].type = tf.float32.as_datatype_enum
    return renamed


def _port(tensor: str) -> str:
    _, _, port = tensor.partition(":")
    return f":{port}" if port and port != "0" else ""


class FrozenGraph:
    """A frozen GraphDef run by a TF1 session: the source model every artifact is checked against."""

    #: OpenVINO's conversion of the frozen .pb, made once (FrozenGraphExports.to_openvino)
    openvino: Any = None

    def __init__(self, graph_def: Any, input_names: Sequence[str], output_names: Sequence[str], origin: str):
        quiet_tensorflow()
        import tensorflow as tf

        self.graph_def = graph_def
        self.origin = origin
        self.input_names = list(input_names)
        self.output_names = list(output_names)
        self.graph = tf.Graph()
        with self.graph.as_default():
            try:
                tf.compat.v1.import_graph_def(graph_def, name="")
            except ValueError as exc:
                raise ZooError(f"{origin}: TensorFlow cannot import the frozen graph: {exc}") from exc
        self.session = tf.compat.v1.Session(graph=self.graph)

    def set_threads(self, threads: int) -> None:
        """A new session limited to *threads* intra- and inter-op threads."""
        import tensorflow as tf

        config = tf.compat.v1.ConfigProto(
            intra_op_parallelism_threads=threads, inter_op_parallelism_threads=threads
        )
        self.session.close()
        self.session = tf.compat.v1.Session(graph=self.graph, config=config)

    def run(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        missing = [name for name in self.input_names if name not in feeds]
        if missing:
            raise ZooError(f"{self.origin}: the TF1 graph needs inputs {missing}, got {sorted(feeds)}.")
        feed = {f"{name}:0": np.asarray(feeds[name], dtype=np.float32) for name in self.input_names}
        try:
            values = self.session.run([f"{name}:0" for name in self.output_names], feed_dict=feed)
        except Exception as exc:  # TensorFlow raises many kinds with its own text
            first = str(getattr(exc, "message", exc)).splitlines()[0]
            raise ZooError(
                f"{self.origin}: the TF1 graph failed to run: {type(exc).__name__}: {first}"
            ) from exc
        return {name: np.asarray(value) for name, value in zip(self.output_names, values, strict=True)}


def write_pb(graph_def: Any, path: Path) -> Path:
    """The frozen GraphDef as a binary `.pb` file (written atomically): OpenVINO's input."""
    from zoo.atomic import write_bytes

    write_bytes(path, graph_def.SerializeToString())
    return Path(path)


def control_flow_ops(proto: Any) -> list[str]:
    """Names of the If/Loop nodes anywhere in an ONNX model (subgraphs included)."""
    found: list[str] = []
    pending = [proto.graph]
    while pending:
        graph = pending.pop()
        for node in graph.node:
            if node.op_type in CONTROL_FLOW_OPS:
                found.append(f"{node.op_type} {node.name}")
            for attribute in node.attribute:
                if attribute.g is not None and attribute.g.node:
                    pending.append(attribute.g)
                pending.extend(attribute.graphs)
    return found


def export_onnx(
    graph_def: Any, inputs: Sequence[str], outputs: Sequence[str], opset: int, origin: str
) -> Any:
    """tf2onnx on the frozen GraphDef (ports named *inputs*/*outputs*, no ':0'); refuses If/Loop left over.

    Returns the ONNX ModelProto with its graph inputs and outputs named exactly *inputs* and *outputs*.
    """
    quiet_tensorflow()
    import tf2onnx

    try:
        proto, _ = tf2onnx.convert.from_graph_def(
            graph_def,
            input_names=[f"{name}:0" for name in inputs],
            output_names=[f"{name}:0" for name in outputs],
            opset=opset,
        )
    except Exception as exc:  # tf2onnx raises many kinds with its own text
        raise ZooError(
            f"{origin}: tf2onnx cannot convert the frozen graph: {type(exc).__name__}: {exc}"
        ) from exc
    left = control_flow_ops(proto)
    if left:
        raise ZooError(
            f"{origin}: the ONNX export still holds control flow ({', '.join(left[:4])}): a training "
            "cond was not folded. Bind the placeholder that selects it (is_training) to a constant."
        )
    _strip_port_suffix(proto, [*inputs, *outputs])
    return proto


def _strip_port_suffix(proto: Any, names: Sequence[str]) -> None:
    """Rename 'x:0' to 'x' for each port name everywhere in the ONNX graph (no subgraphs remain)."""
    renames = {f"{name}:0": name for name in names}
    graph = proto.graph
    for value in [*graph.input, *graph.output, *graph.value_info]:
        value.name = renames.get(value.name, value.name)
    for node in graph.node:
        for index, name in enumerate(node.input):
            node.input[index] = renames.get(name, name)
        for index, name in enumerate(node.output):
            node.output[index] = renames.get(name, name)


def openvino_from_pb(path: Path, inputs: Sequence[str], outputs: Sequence[str], origin: str) -> Any:
    """OpenVINO's TensorFlow front end on a frozen `.pb` FILE, ports named *inputs* and *outputs*.

    The file route is the one measured right: the same graph passed in memory fails on Switch,
    and converting the `.meta` is wrong at batch sizes above 1.
    """
    quiet_tensorflow()
    import openvino as ov

    try:
        model = ov.convert_model(str(path))
    except Exception as exc:  # the front end raises generic errors with its own text
        raise ZooError(
            f"{origin}: OpenVINO cannot convert the frozen graph {Path(path).name}: {exc}"
        ) from exc
    name_openvino_ports(model, inputs, outputs, origin)
    return model


def openvino_from_onnx(path: Path, inputs: Sequence[str], outputs: Sequence[str], origin: str) -> Any:
    """OpenVINO's ONNX front end on the exported `.onnx` file (the other measured-right route)."""
    import openvino as ov

    try:
        model = ov.convert_model(str(path))
    except Exception as exc:  # the front end raises generic errors with its own text
        raise ZooError(f"{origin}: OpenVINO cannot convert {Path(path).name}: {exc}") from exc
    name_openvino_ports(model, inputs, outputs, origin)
    return model


def frozen_pb_model(graph_def: Any, inputs: Sequence[str], outputs: Sequence[str], origin: str) -> Any:
    """openvino_from_pb through a temporary `.pb` file (the model keeps no reference to the file)."""
    with tempfile.TemporaryDirectory(prefix="zoo-tf1-") as folder:
        path = write_pb(graph_def, Path(folder) / "frozen.pb")
        model = openvino_from_pb(path, inputs, outputs, origin)
        return model.clone()


class FrozenGraphExports:
    """`export_onnx` and `to_openvino` of the converters whose source model is a FrozenGraph."""

    def export_onnx(self, source: FrozenGraph, path: str | Path, manifest: Manifest) -> None:
        """tf2onnx on the frozen graph; no If/Loop may be left; a symbolic first dimension named as the manifest's."""
        from converters import tf2onnx_opset
        from zoo.atomic import write_bytes

        proto = export_onnx(
            source.graph_def, source.input_names, source.output_names, tf2onnx_opset(manifest), manifest.name
        )
        specs = {s.name: s for s in (*manifest.inputs, *manifest.outputs)}
        for value in [*proto.graph.input, *proto.graph.output]:
            dims = value.type.tensor_type.shape.dim
            first = specs[value.name].shape[0] if value.name in specs else None
            if dims and isinstance(first, str) and not dims[0].HasField("dim_value"):
                dims[0].dim_param = first  # tf2onnx's 'unk__148' becomes the manifest's 'batch'
        proto.doc_string = (
            f"{manifest.name} {manifest.version}: converted by zoo from a TF1 checkpoint with tf2onnx"
        )
        write_bytes(path, proto.SerializeToString())

    def to_openvino(self, source: FrozenGraph, files: dict[str, Path], manifest: Manifest) -> Any:
        """OpenVINO's TensorFlow front end on the frozen graph written as a .pb file, converted once."""
        if source.openvino is None:
            source.openvino = frozen_pb_model(
                source.graph_def, source.input_names, source.output_names, manifest.name
            )
        # each caller gets its own copy: saving one precision must not change the next
        return source.openvino.clone()
