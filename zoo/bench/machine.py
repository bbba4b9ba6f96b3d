"""The machine a bench ran on: its CPU, load, and the practical f32 peak of OpenVINO here."""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from zoo.bench.timing import time_calls


def measure_peak_gflops(threads: int | None = None, size: int = 1024, seconds: float = 1.0) -> float:
    """Achieved f32 GFLOP/s of one large MatMul on OpenVINO's CPU plugin: the practical peak here."""
    import openvino as ov
    import openvino.opset13 as ops

    from zoo.runtimes import openvino_core

    left = ops.parameter([size, size], ov.Type.f32, name="left")
    right = ops.constant(np.random.RandomState(0).standard_normal((size, size)).astype(np.float32))
    model = ov.Model([ops.matmul(left, right, False, False)], [left], "peak")
    config: dict[str, object] = {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_PRECISION_HINT": "f32"}
    if threads:
        config["INFERENCE_NUM_THREADS"] = int(threads)
    compiled = openvino_core().compile_model(model, "CPU", config)
    request = compiled.create_infer_request()
    data = np.random.RandomState(1).standard_normal((size, size)).astype(np.float32)
    timing = time_calls(lambda: request.infer([data]), seconds=seconds, warmup_seconds=0.2)
    return 2.0 * size**3 / timing.p50 / 1e9


def load_average() -> float | None:
    """The 1-minute load average: other work on the cores shows in every figure."""
    try:
        return round(os.getloadavg()[0], 2)
    except OSError:
        return None


def machine() -> dict[str, Any]:
    """The CPU model, core count and platform, as the bench result records them."""
    from zoo.versions import host

    return dict(host())


#: the frameworks whose versions a bench result records
BENCH_VERSIONS = ("zoo", "torch", "onnxruntime", "openvino", "tensorflow", "nncf")


def measured_on(load_before: float | None) -> tuple[dict[str, Any], dict[str, str]]:
    """(machine, versions) for a bench result; the load average before and now, since other work
    on the cores shows in every figure (OpenVINO's worker threads suffer most)."""
    from zoo.versions import versions

    host = machine()
    host["load_average"] = {"before": load_before, "after": load_average()}
    return host, {k: v for k, v in versions().items() if k in BENCH_VERSIONS}
