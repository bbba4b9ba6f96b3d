"""Saturating int8 sums on CPUs without VNNI: when they happen, and which IR layers are at risk.

The planted case is a convolution whose 8-bit weights and full-scale u8 activations overflow the
16-bit pair sums of VPMADDUBSW; under oneDNN capped to AVX2 OpenVINO's answer is then about half
the exact one, and the same IR with 7-bit weights stays exact. The detection must see both.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from zoo.runtimes.int8_kernels import SAFE_WEIGHT, cpu_flags, exact_int8_sums, explain, ir_saturation_risk

CHANNELS = 64


@pytest.mark.unit
@pytest.mark.parametrize(
    ("flags", "environ", "expected"),
    [
        (frozenset({"avx2", "fma"}), {}, False),  # AVX2 without VNNI saturates
        (frozenset({"avx512f", "avx512bw"}), {}, False),  # AVX-512 before VNNI too
        (frozenset({"avx512f", "avx512_vnni"}), {}, True),
        (frozenset({"avx2", "avx_vnni"}), {}, True),
        (frozenset({"avx512f", "avx512_vnni"}), {"ONEDNN_MAX_CPU_ISA": "AVX2"}, False),
        (frozenset({"avx512f", "avx512_vnni"}), {"DNNL_MAX_CPU_ISA": "avx512_core"}, False),
        (frozenset({"avx512f", "avx512_vnni"}), {"ONEDNN_MAX_CPU_ISA": "AVX512_CORE_VNNI"}, True),
        (frozenset({"avx512f", "avx512_vnni"}), {"ONEDNN_MAX_CPU_ISA": "ALL"}, True),
    ],
)
def test_exact_int8_sums_follow_cpu_flags_and_the_onednn_cap(flags, environ, expected) -> None:
    assert exact_int8_sums(flags, environ) is expected


@pytest.mark.unit
def test_cpu_flags_are_read_from_cpuinfo_or_unknown(tmp_path: Path) -> None:
    listed = tmp_path / "cpuinfo"
    listed.write_text("processor\t: 0\nflags\t\t: fpu avx2 avx512_vnni\n")
    assert cpu_flags(listed) == frozenset({"fpu", "avx2", "avx512_vnni"})
    unlisted = tmp_path / "other"
    unlisted.write_text("processor\t: 0\n")
    assert cpu_flags(unlisted) is None and cpu_flags(tmp_path / "missing") is None


def _qdq_conv(path: Path, weight: int, quantize_activations: bool = True) -> Path:
    """A 1x1 convolution over 64 channels, its weights all `weight` (int8), as QDQ ONNX."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    initializers = [
        numpy_helper.from_array(np.full((8, CHANNELS, 1, 1), weight, np.int8), "w_q"),
        numpy_helper.from_array(np.array(0.01, np.float32), "w_scale"),
        numpy_helper.from_array(np.array(0, np.int8), "w_zero"),
        numpy_helper.from_array(np.array(1 / 255, np.float32), "x_scale"),
        numpy_helper.from_array(np.array(0, np.uint8), "x_zero"),
    ]
    nodes = [helper.make_node("DequantizeLinear", ["w_q", "w_scale", "w_zero"], ["w"])]
    data = "x"
    if quantize_activations:
        nodes += [
            helper.make_node("QuantizeLinear", ["x", "x_scale", "x_zero"], ["x_q"]),
            helper.make_node("DequantizeLinear", ["x_q", "x_scale", "x_zero"], ["x_dq"]),
        ]
        data = "x_dq"
    nodes.append(helper.make_node("Conv", [data, "w"], ["y"], name="paired"))
    graph = helper.make_graph(
        nodes,
        "planted",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, CHANNELS, 4, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 8, 4, 4])],
        initializers,
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    return path


def _ir(tmp_path: Path, weight: int, quantize_activations: bool = True) -> Path:
    import openvino as ov

    source = _qdq_conv(tmp_path / f"w{weight}-{quantize_activations}.onnx", weight, quantize_activations)
    xml = source.with_suffix(".xml")
    ov.save_model(ov.convert_model(str(source)), str(xml), compress_to_fp16=False)
    return xml


@pytest.mark.integration
def test_ir_layers_with_8bit_weights_are_found(tmp_path: Path) -> None:
    risky = ir_saturation_risk(_ir(tmp_path, 127))
    assert len(risky.layers) == 1 and risky.largest_weight == 127
    assert "8-bit weights" in (explain(risky, False) or "") and "VNNI" in (explain(risky, False) or "")
    safe = ir_saturation_risk(_ir(tmp_path, SAFE_WEIGHT))
    assert safe.layers == () and safe.largest_weight == SAFE_WEIGHT and explain(safe, False) is None
    # int8 weights with float activations are decompressed to float: no int8 products to overflow
    assert ir_saturation_risk(_ir(tmp_path, 127, quantize_activations=False)).layers == ()


RUN = """
import json, sys
import numpy as np, openvino as ov
from zoo.runtimes.int8_kernels import exact_int8_sums
compiled = ov.Core().compile_model(sys.argv[1], "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
y = compiled(np.ones((1, 64, 4, 4), np.float32))[0]
print(json.dumps({"y": float(y.ravel()[0]), "exact_sums": exact_int8_sums()}))
"""


def _run(xml: Path, cap: str | None) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA")}
    if cap:
        env["ONEDNN_MAX_CPU_ISA"] = cap  # read at the first compile, so only a fresh process can set it
    done = subprocess.run(
        [sys.executable, "-c", RUN, str(xml)], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.integration
@pytest.mark.skipif(platform.machine().lower() not in ("x86_64", "amd64"), reason="x86 int8 kernels only")
def test_saturation_is_real_where_the_detection_says_so(tmp_path: Path) -> None:
    """Exact sums give 64 * 127 * 0.01 = 81.28; saturated pairs give at most 32 * 32767 levels."""
    exact = CHANNELS * 127 * 0.01
    risky = _ir(tmp_path, 127)
    for cap in (None, "AVX2"):
        run = _run(risky, cap)
        if run["exact_sums"] is None:
            pytest.skip("this system does not list its CPU flags")
        # the tolerance is float32 rounding of a 64-term sum of one product (orders below 1e-3)
        assert (abs(run["y"] - exact) < 1e-3) is run["exact_sums"], (cap, run)
    safe = _run(_ir(tmp_path, SAFE_WEIGHT), "AVX2")  # 7-bit weights never overflow
    assert abs(safe["y"] - CHANNELS * SAFE_WEIGHT * 0.01) < 1e-3
