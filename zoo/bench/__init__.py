"""`zoo bench`: latency and throughput of the source model and of every artifact, side by side.

Each subject (the source framework, ONNX Runtime on the export, OpenVINO on each IR
precision) is loaded, warmed up, then called back to back for a fixed time on one
realistic input (seeded noise through the manifest's preprocessing). Latency
percentiles come from the individual calls; throughput counts items (calls x batch)
over the measured wall time. The speed-up is the source's median latency over the
subject's; GFLOP/s uses the manifest's `flops` per item, next to a measured peak
(one large f32 MatMul on OpenVINO with the same thread count).

The package: timing (the timing core), subjects (what is measured, its input and row),
machine (CPU, load, peak) and command (`zoo bench` itself).
"""

from __future__ import annotations

from zoo.bench.command import bench, bench_model, order_key
from zoo.bench.machine import machine, measure_peak_gflops
from zoo.bench.subjects import Row, agreement_from_report, bench_input, plan, source_runtime
from zoo.bench.timing import Timing, time_calls

__all__ = [
    "Row",
    "Timing",
    "agreement_from_report",
    "bench",
    "bench_input",
    "bench_model",
    "machine",
    "measure_peak_gflops",
    "order_key",
    "plan",
    "source_runtime",
    "time_calls",
]
