"""What NNCF leaves in float: the in-graph front end and edge layers by structure, and the manifest's lists.

Name patterns miss the ops a converter or OpenVINO renames (YAMNet's magnitude becomes `Power_*`,
`ReduceSum_*`, `Sqrt_*` outside `log_mel_features/`), and quantizing a spectrogram ruins the
network after it. So the front end is found by walking the graph: every op the manifest's
boundary tensors (quantize.front_end.boundary, e.g. the log-mel output) depend on, back to the
model's inputs, whatever its name. NNCF gets that set as an explicit list of op names.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from zoo.errors import UsageError

if TYPE_CHECKING:
    from zoo.manifest import Manifest

#: OpenVINO op types (the manifest's vocabulary) -> ONNX op types, for the QDQ ONNX ignored scope
ONNX_TYPES = {
    "Power": "Pow",
    "Multiply": "Mul",
    "Divide": "Div",
    "Subtract": "Sub",
    "Convolution": "Conv",
    "GroupConvolution": "Conv",
    "ReduceMean": "ReduceMean",
    "Sigmoid": "Sigmoid",
    "Tanh": "Tanh",
    "Add": "Add",
    "Sqrt": "Sqrt",
    "Concat": "Concat",
    "Gather": "Gather",
    "Squeeze": "Squeeze",
    "MatMul": "MatMul",
    "Relu": "Relu",
    "Softmax": "Softmax",
    "Transpose": "Transpose",
}
#: ops that compute nothing NNCF could quantize: never listed
INERT = ("Parameter", "Constant", "Result")


def _missing(manifest: Manifest, name: str, where: str, known: set[str]) -> UsageError:
    import difflib

    near = difflib.get_close_matches(name, sorted(known), n=5, cutoff=0.6)
    return UsageError(
        f"{manifest.path}: field quantize.front_end.boundary: tensor {name!r} is not in {where}; the "
        "boundary names the tensor where the front end ends (e.g. the spectrogram), as the converted "
        f"model calls it{f' (similar names: {near})' if near else ''}."
    )


def front_end_ops(model: Any, manifest: Manifest, where: str = "the FP32 IR") -> list[str]:
    """Friendly names of every op of an ov.Model the boundary tensors depend on (in graph order).

    A boundary the model does not have is a usage error naming the manifest field.
    """
    front = manifest.quantize.front_end
    if front is None:
        return []
    producers: dict[str, Any] = {}
    for op in model.get_ordered_ops():
        for output in op.outputs():
            for name in output.get_names():
                producers.setdefault(name, op)
    pending = []
    for name in front.boundary:
        if name not in producers:
            raise _missing(manifest, name, where, set(producers))
        pending.append(producers[name])
    seen: dict[str, Any] = {}  # by friendly name: unique in a converted model, the name NNCF uses
    while pending:
        op = pending.pop()
        if op.get_friendly_name() in seen:
            continue
        seen[op.get_friendly_name()] = op
        pending.extend(value.get_node() for value in op.input_values())
    names = {name for name, op in seen.items() if op.get_type_name() not in INERT}
    return [op.get_friendly_name() for op in model.get_ordered_ops() if op.get_friendly_name() in names]


def onnx_front_end_nodes(model: Any, manifest: Manifest) -> list[str]:
    """The same set in an ONNX graph: names of the nodes the boundary tensors depend on."""
    front = manifest.quantize.front_end
    if front is None:
        return []
    producers = {output: node for node in model.graph.node for output in node.output}
    pending = []
    for name in front.boundary:
        if name not in producers:
            raise _missing(manifest, name, "the ONNX export", set(producers))
        pending.append(producers[name])
    seen: dict[str, Any] = {}
    while pending:
        node = pending.pop()
        if node.name in seen:
            continue
        seen[node.name] = node
        pending.extend(producers[i] for i in node.input if i in producers)
    return [n.name for n in model.graph.node if n.name in seen and n.op_type != "Constant"]


#: op types with weights NNCF quantizes, in OpenVINO and ONNX
WEIGHTED = ("Convolution", "GroupConvolution", "MatMul", "ConvolutionBackpropData")
ONNX_WEIGHTED = ("Conv", "MatMul", "Gemm", "ConvTranspose")
#: ops between a weight constant and its layer (decompression, layout)
PASS_THROUGH = ("Convert", "Reshape", "Transpose", "Unsqueeze", "Squeeze", "Multiply", "Subtract")


def _has_weights(op: Any) -> bool:
    """Whether one of the op's inputs is a constant (through decompression and layout ops)."""
    for value in op.input_values():
        node = value.get_node()
        while node.get_type_name() in PASS_THROUGH and node.get_input_size() > 0:
            node = node.input_value(0).get_node()
        if node.get_type_name() == "Constant":
            return True
    return False


def _ends(names: list[str], first: int, last: int) -> list[str]:
    chosen = names[:first] + (names[-last:] if last else [])
    return list(dict.fromkeys(chosen))


def edge_layers(model: Any, manifest: Manifest, front: list[str] | None = None) -> list[str]:
    """The weighted layers quantize.float_first_layers / float_last_layers keep in float, by position.

    Counted in graph order over the convolutions and matrix products with weights after the front
    end: the first layers see the spectrogram's range, the last ones make the scores thresholds
    are applied to; position survives the renaming a name pattern does not.
    """
    settings = manifest.quantize
    if not settings.float_first_layers and not settings.float_last_layers:
        return []
    skipped = set(front_end_ops(model, manifest) if front is None else front)
    names = [
        op.get_friendly_name()
        for op in model.get_ordered_ops()
        if op.get_type_name() in WEIGHTED and op.get_friendly_name() not in skipped and _has_weights(op)
    ]
    return _ends(names, settings.float_first_layers, settings.float_last_layers)


def onnx_edge_layers(model: Any, manifest: Manifest, front: list[str] | None = None) -> list[str]:
    """The same layers in an ONNX graph (nodes in topological order, weights as initializers)."""
    settings = manifest.quantize
    if not settings.float_first_layers and not settings.float_last_layers:
        return []
    skipped = set(onnx_front_end_nodes(model, manifest) if front is None else front)
    constants = {i.name for i in model.graph.initializer} | {
        out for n in model.graph.node if n.op_type == "Constant" for out in n.output
    }
    names = [
        n.name
        for n in model.graph.node
        if n.op_type in ONNX_WEIGHTED and n.name not in skipped and any(i in constants for i in n.input[1:])
    ]
    return _ends(names, settings.float_first_layers, settings.float_last_layers)


def ignored_scope(
    manifest: Manifest, model: Any = None, onnx: bool = False, front: list[str] | None = None
) -> Any:
    """quantize.ignored_scope plus the structural front end of *model*, as an nncf.IgnoredScope.

    *model* is the ov.Model (or, with onnx=True, the ONNX ModelProto) NNCF will quantize; *front*,
    when the caller has already walked it, is that model's front end (else it is found here).
    """
    import nncf

    scope = manifest.quantize.ignored_scope
    types = list(scope.types)
    names = list(scope.names)
    if onnx:
        types = sorted({ONNX_TYPES.get(t, t) for t in types})
        if model is not None:
            front = onnx_front_end_nodes(model, manifest) if front is None else front
            names += front + onnx_edge_layers(model, manifest, front)
    elif model is not None:
        front = front_end_ops(model, manifest) if front is None else front
        names += front + edge_layers(model, manifest, front)
    # validate=False: a type the graph does not have (after the converter's fusions) is not an error
    return nncf.IgnoredScope(
        names=sorted(set(names)), patterns=list(scope.patterns), types=types, validate=False
    )
