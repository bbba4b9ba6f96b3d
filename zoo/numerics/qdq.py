"""Quantize/dequantize steps written out as float arithmetic, so a QDQ graph can run in float64.

A published INT8 ONNX (AclNet's) is a float graph with QuantizeLinear/DequantizeLinear pairs
around each layer. Its float64 evaluation must keep the quantizers (they are the model) but do
everything between them exactly: ONNX Runtime and the reference evaluator have no float64
QuantizeLinear at opset 17, so each step becomes the arithmetic its specification defines:

- ``QuantizeLinear(x, s, z)`` = ``clip(round_half_even(x / s) + z, qmin, qmax)``, an integer
  held in a float tensor;
- ``DequantizeLinear(q, s, z)`` = ``(q - z) * s``.

Per-axis scales and zero points are reshaped to broadcast along their axis. The rewritten graph
is float32 (integers as floats, exact below 2^24); ``onnx_to_float64`` then widens it.

With ``noise``, every quantized activation is first multiplied by ``1 + noise * U(-1, 1)``
(``RandomUniformLike``, a fixed seed per step): what a float32 evaluation's rounding does to the
values a quantizer rounds. An exact evaluation and a float32 one then round a few elements that
sit on a half-step boundary to neighbouring steps, which is how honest QDQ runtimes differ.
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np

from zoo.errors import ZooError

#: ops that compute on quantized integers directly: no float rewrite here
INTEGER_OPS = {"QLinearConv", "QLinearMatMul", "ConvInteger", "MatMulInteger", "DynamicQuantizeLinear"}
_RANGE = {"int8": (-128.0, 127.0), "uint8": (0.0, 255.0), "int16": (-32768.0, 32767.0)}


def has_quantizers(model: Any) -> bool:
    """Whether the graph holds QuantizeLinear/DequantizeLinear steps."""
    return any(n.op_type in ("QuantizeLinear", "DequantizeLinear") for n in model.graph.node)


def expand_qdq(model: Any, noise: float | None = None, draw: int = 0) -> Any:
    """A copy of *model* with every QuantizeLinear/DequantizeLinear as float arithmetic (see above);
    *noise*: the relative perturbation of quantized activations, or None; *draw* picks its seeds."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper, shape_inference

    integer = sorted({n.op_type for n in model.graph.node} & INTEGER_OPS)
    if integer:
        raise ZooError(
            f"the graph computes {', '.join(integer)} on integers; its float64 evaluation covers "
            "QuantizeLinear/DequantizeLinear (QDQ) graphs only."
        )
    model = copy.deepcopy(model)
    try:
        ranks = {
            v.name: len(v.type.tensor_type.shape.dim)
            for v in shape_inference.infer_shapes(model).graph.value_info
            if v.type.tensor_type.HasField("shape")
        }
    except Exception:  # shape inference helps with per-axis steps only; initializers carry their dims
        ranks = {}
    g = model.graph
    inits = {t.name: t for t in g.initializer}
    ranks.update({t.name: len(t.dims) for t in g.initializer})
    ranks.update({i.name: len(i.type.tensor_type.shape.dim) for i in g.input})
    counter = 0

    def fresh(stem: str) -> str:
        nonlocal counter
        counter += 1
        return f"qdq64/{stem}_{counter}"

    def const(values: np.ndarray, stem: str) -> str:
        name = fresh(stem)
        g.initializer.append(numpy_helper.from_array(values, name))
        return name

    def as_float(name: str, stem: str, added: list[Any]) -> str:
        """*name* (an integer or float tensor) as a float32 tensor."""
        out = fresh(stem)
        added.append(helper.make_node("Cast", [name], [out], to=TensorProto.FLOAT))
        return out

    def along(name: str, node: Any, data: str, added: list[Any]) -> str:
        """A per-axis scale or zero point reshaped to broadcast on *data*'s axis."""
        if name in inits and len(inits[name].dims) == 0:
            return name
        size = int(np.prod(inits[name].dims)) if name in inits else -1
        if size == 1:
            return name
        axis = next((a.i for a in node.attribute if a.name == "axis"), 1)
        rank = ranks.get(data)
        if rank is None:
            raise ZooError(
                f"{node.op_type} {node.name!r}: a per-axis step on {data!r}, whose rank is unknown; "
                "its float64 evaluation needs shapes in the graph."
            )
        axis = axis % rank
        shape = const(np.array([-1] + [1] * (rank - axis - 1), dtype=np.int64), "shape")
        out = fresh("along")
        added.append(helper.make_node("Reshape", [name, shape], [out]))
        return out

    nodes: list[Any] = []
    for node in g.node:
        if node.op_type not in ("QuantizeLinear", "DequantizeLinear"):
            nodes.append(node)
            continue
        added: list[Any] = []
        data, scale = node.input[0], node.input[1]
        zero = node.input[2] if len(node.input) > 2 and node.input[2] else None
        scale_b = along(scale, node, data, added)
        zero_b = along(as_float(zero, "zero", added), node, data, added) if zero else None
        if node.op_type == "QuantizeLinear":
            kind = "uint8"
            if zero and zero in inits:
                kind = onnx.helper.tensor_dtype_to_np_dtype(inits[zero].data_type).name
            low, high = _RANGE.get(kind, _RANGE["uint8"])
            if noise and data not in inits:
                jitter, factor, noisy = fresh("jitter"), fresh("factor"), fresh("noisy")
                added += [
                    helper.make_node(
                        "RandomUniformLike",
                        [data],
                        [jitter],
                        low=-noise,
                        high=noise,
                        seed=float(counter + 100_000 * draw),
                    ),
                    helper.make_node("Add", [jitter, const(np.array(1.0, np.float32), "one")], [factor]),
                    helper.make_node("Mul", [data, factor], [noisy]),
                ]
                data = noisy
            ratio, rounded = fresh("ratio"), fresh("rounded")
            added += [
                helper.make_node("Div", [data, scale_b], [ratio]),
                helper.make_node("Round", [ratio], [rounded]),
            ]
            shifted = rounded
            if zero_b is not None:
                shifted = fresh("shifted")
                added.append(helper.make_node("Add", [rounded, zero_b], [shifted]))
            added.append(
                helper.make_node(
                    "Clip",
                    [
                        shifted,
                        const(np.array(low, np.float32), "low"),
                        const(np.array(high, np.float32), "high"),
                    ],
                    [node.output[0]],
                )
            )
        else:
            values = as_float(data, "q", added)
            if zero_b is not None:
                centred = fresh("centred")
                added.append(helper.make_node("Sub", [values, zero_b], [centred]))
                values = centred
            added.append(helper.make_node("Mul", [values, scale_b], [node.output[0]]))
        nodes.extend(added)
    del g.node[:]
    g.node.extend(nodes)
    # quantized tensors are floats now: drop their integer type annotations
    for v in list(g.value_info):
        if v.type.tensor_type.elem_type in (TensorProto.INT8, TensorProto.UINT8, TensorProto.INT16):
            g.value_info.remove(v)
    return model
