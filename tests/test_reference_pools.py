"""The float64 yardstick's whole-array pools give onnx.reference's own results, and defer to it
for what they do not cover."""

from __future__ import annotations

import numpy as np
import pytest

from zoo.numerics import reference_pools
from zoo.numerics.budget import U64
from zoo.numerics.reference_pools import pool_ops

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper  # noqa: E402
from onnx.reference import ReferenceEvaluator  # noqa: E402


def pool_model(op: str, shape: list[int], outputs: int = 1, **attributes: object) -> onnx.ModelProto:
    names = ["y", "indices"][:outputs]
    node = helper.make_node(op, ["x"], names, **attributes)
    graph = helper.make_graph(
        [node],
        "pool",
        [helper.make_tensor_value_info("x", TensorProto.DOUBLE, shape)],
        [
            helper.make_tensor_value_info(n, TensorProto.DOUBLE if n == "y" else TensorProto.INT64, None)
            for n in names
        ],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 19)])


def both(
    model: onnx.ModelProto, x: np.ndarray
) -> tuple[list[np.ndarray], list[np.ndarray], ReferenceEvaluator]:
    """(onnx.reference's outputs, the outputs with zoo's pools, the evaluator with zoo's pools)."""
    ours = ReferenceEvaluator(model, new_ops=pool_ops())
    return ReferenceEvaluator(model).run(None, {"x": x}), ours.run(None, {"x": x}), ours


COVERED = [
    ("BirdNET's stem: 1 x 2, stride 1 x 2", [1, 3, 6, 11], {"kernel_shape": [1, 2], "strides": [1, 2]}),
    ("AclNet's 2 x 2, stride 2, odd sizes", [1, 4, 9, 7], {"kernel_shape": [2, 2], "strides": [2, 2]}),
    ("3 x 3, stride 1, pads 1", [2, 2, 6, 5], {"kernel_shape": [3, 3], "pads": [1, 1, 1, 1]}),
    (
        "uneven pads and strides",
        [1, 2, 8, 9],
        {"kernel_shape": [3, 2], "strides": [2, 3], "pads": [0, 1, 2, 1]},
    ),
    ("dilations", [1, 2, 9, 10], {"kernel_shape": [2, 3], "dilations": [2, 3], "pads": [1, 0, 1, 2]}),
    ("VALID", [1, 2, 7, 7], {"kernel_shape": [3, 3], "strides": [2, 2], "auto_pad": "VALID"}),
    ("1-D", [1, 3, 17], {"kernel_shape": [5], "strides": [3], "pads": [2, 1]}),
    ("3-D", [1, 2, 4, 5, 6], {"kernel_shape": [2, 2, 3], "strides": [1, 2, 2], "pads": [1, 0, 1, 0, 1, 1]}),
]


@pytest.mark.parametrize(("case", "shape", "attributes"), COVERED, ids=[c[0] for c in COVERED])
@pytest.mark.parametrize("op", ["MaxPool", "AveragePool", "AveragePool-count-pads"])
def test_covered_pools_give_onnx_references_results(
    op: str, case: str, shape: list[int], attributes: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    x = np.random.default_rng(7).standard_normal(shape) - 0.5  # negative values: padding must never win a max
    extra = {"count_include_pad": 1} if op.endswith("count-pads") else {}
    model = pool_model(op.split("-")[0], shape, **attributes, **extra)
    calls = []
    genuine = reference_pools.pool_windows
    monkeypatch.setattr(reference_pools, "pool_windows", lambda *a: calls.append(a) or genuine(*a))
    (expected,), (got,), _ = both(model, x)
    assert calls, "the case went to onnx's own implementation: it would compare nothing"
    assert got.shape == expected.shape and got.dtype == expected.dtype
    if op == "MaxPool":
        np.testing.assert_array_equal(got, expected)  # a max picks an element: nothing to round
    else:
        # the same cells summed in another order: each evaluation's sum of k cells is off the exact
        # one by at most (k - 1) u64 times the sum of |cells|, and its division adds one u64
        # relative, so two evaluations differ by at most 2 k u64 times the mean of |cells|
        k = int(np.prod(attributes["kernel_shape"]))
        (magnitude,), _, _ = both(pool_model(op.split("-")[0], shape, **attributes, **extra), np.abs(x))
        assert np.all(np.abs(got - expected) <= 2 * k * U64 * magnitude)


FALLBACK = [
    ("ceil rounding", {"kernel_shape": [2, 2], "strides": [2, 2], "ceil_mode": 1}, 1),
    ("SAME_UPPER", {"kernel_shape": [3, 2], "strides": [2, 2], "auto_pad": "SAME_UPPER"}, 1),
    ("MaxPool's indices", {"kernel_shape": [2, 2], "strides": [2, 2]}, 2),
]


@pytest.mark.parametrize(("case", "attributes", "outputs"), FALLBACK, ids=[c[0] for c in FALLBACK])
def test_what_the_pools_do_not_cover_goes_to_onnx_reference(
    case: str, attributes: dict, outputs: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    x = np.random.default_rng(3).standard_normal([1, 2, 7, 9])
    ops = ["MaxPool"] if outputs == 2 else ["MaxPool", "AveragePool"]
    monkeypatch.setattr(reference_pools, "pool_windows", None)  # any use of the whole-array path fails
    for op in ops:
        expected, got, _ = both(pool_model(op, [1, 2, 7, 9], outputs, **attributes), x)
        assert len(got) == len(expected) == outputs
        for g, e in zip(got, expected, strict=True):
            np.testing.assert_array_equal(g, e)


def test_a_planted_pad_order_defect_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    """Leading and trailing pads swapped (an easy slip with ONNX's pads order) must not pass."""
    shape, attributes = [1, 1, 6, 7], {"kernel_shape": [3, 3], "strides": [2, 2], "pads": [0, 2, 2, 0]}
    x = np.random.default_rng(5).standard_normal(shape)
    genuine = reference_pools.pool_windows

    def swapped(x, kernel, strides, dilations, pads, fill):  # type: ignore[no-untyped-def]
        half = len(pads) // 2
        return genuine(x, kernel, strides, dilations, pads[half:] + pads[:half], fill)

    monkeypatch.setattr(reference_pools, "pool_windows", swapped)
    (expected,), (got,), _ = both(pool_model("MaxPool", shape, **attributes), x)
    assert got.shape == expected.shape
    assert not np.array_equal(got, expected)


def test_the_float64_yardstick_runs_its_pools_with_these_kernels(tmp_path) -> None:
    """A float64 conv (no ONNX Runtime kernel) sends the graph to onnx.reference, with these pools."""
    from zoo.numerics.float64 import OnnxFloat64, onnx_to_float64

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 6, 8])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    weight = helper.make_tensor("w", TensorProto.FLOAT, [2, 1, 3, 3], np.linspace(-1, 1, 18).tolist())
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]),
        helper.make_node("MaxPool", ["c"], ["y"], kernel_shape=[2, 2], strides=[2, 2]),
    ]
    model = helper.make_model(
        helper.make_graph(nodes, "g", [x], [y], [weight]), opset_imports=[helper.make_opsetid("", 17)]
    )
    path = tmp_path / "conv_pool.onnx"
    onnx.save(model, str(path))
    f64 = OnnxFloat64(path)
    assert f64.engine == "reference"
    assert any(type(node).__module__ == reference_pools.__name__ for node in f64.evaluator.rt_nodes_)
    feed = np.random.default_rng(1).standard_normal([1, 1, 6, 8])
    (expected,) = ReferenceEvaluator(onnx_to_float64(model)).run(None, {"x": feed})  # onnx's own pools
    got = f64.run({"x": feed})["y"]
    assert got.dtype == np.float64 and got.shape == expected.shape == (1, 2, 3, 4)
    np.testing.assert_array_equal(got, expected)  # the same convolution, and a max rounds nothing
