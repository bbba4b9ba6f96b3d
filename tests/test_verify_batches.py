"""zoo.verify.batches on small real ONNX models and IRs: batching, splitting back, and a batch-dependent
model that is exact at batch 1 and wrong at batch 10 (only the batched run can catch it)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from zoo.errors import ZooError
from zoo.verify.batches import open_batched, run_batched

pytestmark = pytest.mark.xdist_group("verify-batches")

WIDTH = 4


def _onnx(path: Path, batch_dependent: bool = False, batch: str | int = "batch") -> Path:
    """y = 2x per item; batch_dependent adds mean over the batch minus x (zero at batch 1 only)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    nodes = [helper.make_node("Mul", ["x", "two"], ["doubled"])]
    if batch_dependent:
        nodes += [
            helper.make_node("ReduceMean", ["x", "axis0"], ["mean"], keepdims=1),
            helper.make_node("Sub", ["mean", "x"], ["drift"]),
            helper.make_node("Add", ["doubled", "drift"], ["y"]),
        ]
    else:
        nodes.append(helper.make_node("Identity", ["doubled"], ["y"]))
    graph = helper.make_graph(
        nodes,
        "batches",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, WIDTH])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [batch, WIDTH])],
        [
            numpy_helper.from_array(np.array(2.0, dtype=np.float32), "two"),
            numpy_helper.from_array(np.array([0], dtype=np.int64), "axis0"),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)], ir_version=9)
    onnx.save(model, str(path))
    return path


def _calls(probes: int = 4, per_probe: int = 3) -> list[list[dict[str, np.ndarray]]]:
    rng = np.random.RandomState(0)
    return [[{"x": rng.rand(1, WIDTH).astype(np.float32)} for _ in range(per_probe)] for _ in range(probes)]


def _error(calls, outputs) -> float:
    return max(
        float(np.abs(out["y"] - 2 * call["x"]).max())
        for probe_calls, probe_outputs in zip(calls, outputs, strict=True)
        for call, out in zip(probe_calls, probe_outputs, strict=True)
    )


def test_batches_split_back_into_their_calls_in_order(tmp_path):
    calls = _calls()  # 12 calls: a full batch of 10 and one of 2 filled with repeats
    runner = open_batched(_onnx(tmp_path / "right.onnx"), "onnx", 10, None, "f32", exact=True)
    outputs = run_batched(runner, calls, 10, "test")
    assert [len(p) for p in outputs] == [3, 3, 3, 3]
    assert all(out["y"].shape == (1, WIDTH) for p in outputs for out in p)
    assert _error(calls, outputs) < 1e-6


def test_a_batch_dependent_model_is_exact_at_batch_1_and_wrong_at_batch_10(tmp_path):
    path = _onnx(tmp_path / "drift.onnx", batch_dependent=True)
    calls = _calls()
    one = run_batched(open_batched(path, "onnx", 1, None, "f32", exact=True), calls, 1, "test")
    ten = run_batched(open_batched(path, "onnx", 10, None, "f32", exact=True), calls, 10, "test")
    assert _error(calls, one) < 1e-6
    assert _error(calls, ten) > 0.1


def test_irs_run_dynamic_as_saved_and_static_ones_reshaped(tmp_path):
    import openvino as ov

    calls = _calls()
    for batch_dim in ("batch", 1):
        onnx_path = _onnx(tmp_path / f"right-{batch_dim}.onnx", batch=batch_dim)
        xml = tmp_path / f"right-{batch_dim}.xml"
        ov.save_model(ov.convert_model(str(onnx_path)), str(xml), compress_to_fp16=False)
        runner = open_batched(xml, "FP32", 10, None, "f32", exact=True)
        assert _error(calls, run_batched(runner, calls, 10, "test")) < 1e-6


def test_an_output_without_the_batch_is_an_error_naming_the_batch_size(tmp_path):
    path = _onnx(tmp_path / "static.onnx", batch=1)
    runner = open_batched(path, "onnx", 10, None, "f32", exact=True)
    with pytest.raises(ZooError, match="batch size 10"):
        run_batched(runner, _calls(), 10, "static.onnx")
