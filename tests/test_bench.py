"""`zoo bench`: the timing core on calls of known cost, and the command's structure on real models.

Timing figures are never asserted against targets here (benchmarks measure, tests check structure).
"""

from __future__ import annotations

import json
import time

import numpy as np
import pytest

from tests.conftest import run_zoo
from tests.int8_models import GROUP, env, quantized, verified, zoo_ok
from zoo.bench import Timing, time_calls
from zoo.bench.timing import FIGURE_PRECISION, round_medians

pytestmark = pytest.mark.xdist_group(GROUP)


def test_timing_statistics_by_hand():
    timing = Timing(np.array([0.001, 0.002, 0.003, 0.004, 0.010]), wall=0.020, batch=4)
    assert timing.calls == 5
    assert timing.p50 == pytest.approx(0.003)
    assert timing.p90 == pytest.approx(0.004 + 0.6 * 0.006)  # linear between the 4th and 5th values
    assert timing.mean == pytest.approx(0.004)
    assert timing.throughput == pytest.approx(5 * 4 / 0.020)


def test_time_calls_warms_up_then_measures():
    calls = []

    def call():
        calls.append(time.perf_counter())
        time.sleep(0.02 if len(calls) == 1 else 0.001)  # a slow first call, as with lazy initialisation

    ticks = []
    timing = time_calls(call, seconds=0.05, warmup_seconds=0.0, min_calls=5, tick=ticks.append)
    assert len(calls) == timing.calls + 3  # three warm-up calls, not measured
    assert timing.calls >= 5
    assert timing.latencies.max() < 0.02  # the slow first call stayed in the warm-up
    assert timing.wall >= 0.05 and ticks[-1] == 1.0
    bounded = time_calls(lambda: None, seconds=10, warmup_seconds=0.0, max_calls=7)
    assert bounded.calls == 7


def test_round_medians_tell_a_change_of_speed_from_chance():
    rng = np.random.default_rng(0)

    def rounds(*centres: float, calls: int = 400, jitter: float = 0.05) -> list[np.ndarray]:
        return [centre * (1 + jitter * rng.standard_normal(calls)) for centre in centres]

    medians, moved, steady = round_medians(rounds(1.0, 1.0, 1.0))
    assert len(medians) == 3 and moved < FIGURE_PRECISION and steady
    # a machine 30 % slower in the last round: flagged, with the move measured
    medians, moved, steady = round_medians(rounds(1.0, 1.0, 1.3))
    assert not steady and moved == pytest.approx(0.3, abs=0.02) and medians[2] > medians[0]
    # a real but small move (5 %) is within the figures' stated precision: steady
    assert round_medians(rounds(1.0, 1.05, 1.0, calls=20000))[2]
    # 13 % apart by chance alone (6 calls a round, wide spread): not flagged
    few = [np.array([0.7, 1.4, 0.9, 0.8, 1.2, 1.0]), np.array([1.05, 1.4, 0.6, 1.25, 1.1, 1.0])]
    _, moved, steady = round_medians(few)
    assert moved > FIGURE_PRECISION and steady
    assert round_medians([np.array([1.0, 2.0])]) == ([1.5], 0.0, True)  # one round: nothing to compare


def test_agreement_comes_from_a_valid_report_only(tmp_path):
    from zoo.bench import agreement_from_report
    from zoo.layout import ModelLayout
    from zoo.records import ArtifactReport, Report

    layout = ModelLayout(tmp_path, "m")
    layout.root.mkdir(parents=True)
    assert agreement_from_report(layout, "INT8") == (None, None)  # no report yet

    def entry(metrics):
        return ArtifactReport(path="x", sha256="0" * 64, runtime="openvino", metrics=metrics, passed=True)

    report = Report(
        model="m",
        manifest_version="1",
        manifest_sha256="0" * 64,
        reference_weights=False,
        passed=True,
        artifacts={"INT8": entry({"decision": 0.99, "top1": 0.5}), "FP16": entry({"top1": 1})},
    )
    report.write(layout.report)
    assert agreement_from_report(layout, "INT8") == (0.99, "decision")
    assert agreement_from_report(layout, "FP16") == (1.0, "top1")
    assert agreement_from_report(layout, "FP32") == (None, None)  # not in the report
    data = report.as_dict()
    data["schema"] = 99  # a report of another schema is not read
    layout.report.write_text(json.dumps(data))
    assert agreement_from_report(layout, "INT8") == (None, None)


def test_bench_silero_vad_reports_every_subject(int8):
    out, _ = quantized("silero-vad")
    verified("silero-vad")  # the agreement column comes from verify's report
    result = zoo_ok(
        "bench", "--name", "silero-vad", "-o", str(out), "--seconds", "0.2", "--threads", "1", "--json"
    ).json()
    rows = {row["artifact"]: row for row in result["rows"]}
    assert list(rows) == ["source", "onnx", "FP32", "FP16", "INT8"]
    assert rows["source"]["runtime"].startswith("torch")
    for row in rows.values():
        assert row["error"] is None, row
        assert row["calls"] >= 5 and 0 < row["p50_ms"] <= row["p90_ms"]
        assert row["throughput"] > 0 and row["size"] > 0 and row["speedup"] > 0 and row["threads"] == 1
        assert len(row["round_p50_ms"]) == 3 and min(row["round_p50_ms"]) <= row["p50_ms"] <= max(
            row["round_p50_ms"]
        )
        assert row["round_spread"] >= 0 and isinstance(row["steady"], bool)
    assert rows["source"]["speedup"] == pytest.approx(1.0)
    # IRs: p50 is OpenVINO's own request timer (as benchmark_app reports it); Python's per-call time
    # holds that and the call around it. Runtimes without a timer report Python's per-call time.
    for artifact in ("FP32", "FP16", "INT8"):
        assert rows[artifact]["python_p50_ms"] >= rows[artifact]["p50_ms"] > 0, rows[artifact]
    for artifact in ("source", "onnx"):
        assert rows[artifact]["python_p50_ms"] == rows[artifact]["p50_ms"]
    # silero-vad's INT8 recipe keeps the STFT basis and the first encoder convolution in float32,
    # so its INT8 IR is smaller than the FP32 one but not than the FP16 one
    assert rows["INT8"]["size"] < rows["FP32"]["size"] and rows["FP16"]["size"] < rows["FP32"]["size"]
    assert rows["INT8"]["agreement_metric"] == "decision" and rows["INT8"]["agreement"] >= 0.995
    assert rows["FP32"]["inference_precision"] == "f32"
    assert rows["source"]["gflops"] is None  # the manifest gives no FLOPs for silero-vad
    assert result["options"] == {
        "batch": 1,
        "threads": 1,
        "seconds": 0.2,
        "rounds": 3,
        "openvino_precision_hint": "f32",
        "profile": 0,
    }

    table = zoo_ok(
        "bench",
        "--name",
        "silero-vad",
        "-o",
        str(out),
        "--seconds",
        "0.1",
        "--runtimes",
        "openvino",
        "--precisions",
        "INT8,FP32",
    ).stdout
    assert "INT8" in table and "FP32" in table and "torch" not in table and "p50 ms" in table


def test_bench_aclnet_batch_and_gflops(int8):
    out, _ = quantized("aclnet")
    result = zoo_ok(
        "bench",
        "--name",
        "aclnet",
        "-o",
        str(out),
        "--seconds",
        "0.2",
        "--batch",
        "2",
        "--runtimes",
        "onnxruntime,openvino",
        "--json",
    ).json()
    rows = {row["artifact"]: row for row in result["rows"]}
    assert set(rows) == {"onnx", "FP32", "INT8"}
    for row in rows.values():
        assert row["error"] is None, row
        assert row["batch"] == 2 and row["gflops"] > 0
        # GFLOP/s is the manifest's FLOPs per item times the batch over the median latency
        assert row["gflops"] == pytest.approx(1.42e9 * 2 / (row["p50_ms"] / 1e3) / 1e9)
        assert row["speedup"] is None  # no source row was asked for
    assert result["machine"]["peak_gflops_f32"] > 0


def test_bench_profile_lists_the_slowest_operations(int8):
    """--profile N: the N slowest executed ops of each IR from OpenVINO's counters, slowest first."""
    out, _ = quantized("aclnet")
    args = ("bench", "--name", "aclnet", "-o", str(out), "--seconds", "0.2", "--runtimes", "openvino")
    result = zoo_ok(*args, "--profile", "3", "--json").json()
    assert result["options"]["profile"] == 3
    rows = {row["artifact"]: row for row in result["rows"]}
    assert set(rows) == {"FP32", "INT8"}
    for artifact, row in rows.items():
        profile = row["profile"]
        assert len(profile) == 3, (artifact, profile)
        assert [op["ms"] for op in profile] == sorted((op["ms"] for op in profile), reverse=True)
        assert all(op["op"] and op["type"] and op["kernel"] and 0 < op["share"] <= 1 for op in profile)
    assert any(op["type"] == "Convolution" for op in rows["FP32"]["profile"])  # AclNet is convolutions
    assert any("I8" in op["kernel"] or "i8" in op["kernel"] for op in rows["INT8"]["profile"])
    table = zoo_ok(*args, "--profile", "2").stdout
    assert "aclnet FP32: slowest operations" in table and "aclnet INT8: slowest operations" in table
    plain = zoo_ok(*args, "--json").json()
    assert all(row["profile"] is None for row in plain["rows"])


def test_bench_several_thread_counts_in_one_run(int8):
    """--threads 1,2: every subject at each count, each speed-up against the source at that count."""
    out, _ = quantized("silero-vad")
    args = ("bench", "--name", "silero-vad", "-o", str(out), "--seconds", "0.1", "--rounds", "1")
    result = zoo_ok(*args, "--precisions", "FP32", "--threads", "1,2", "--json").json()
    assert result["options"]["threads"] == [1, 2]
    rows = [(row["artifact"], row["threads"]) for row in result["rows"]]
    assert rows == [("source", 1), ("onnx", 1), ("FP32", 1), ("source", 2), ("onnx", 2), ("FP32", 2)]
    for row in result["rows"]:
        assert row["error"] is None and row["p50_ms"] > 0, row
        if row["artifact"] == "source":
            assert row["speedup"] == pytest.approx(1.0)  # its own count's source, not the other's
    table = zoo_ok(*args, "--precisions", "FP32", "--runtimes", "openvino", "--threads", "2,1").stdout
    assert "threads 2, 1" in table
    bad = run_zoo(*args, "--threads", "1,two", env=env())
    assert bad.returncode == 2 and "--threads" in bad.stderr and "'two'" in bad.stderr


def test_bench_throughput_finds_each_subjects_best_configuration(int8):
    """--throughput: audio seconds per wall second; the best of the configurations tried is reported."""
    out, _ = quantized("silero-vad")
    result = zoo_ok(
        "bench", "--name", "silero-vad", "-o", str(out), "--seconds", "0.2", "--throughput",
        "--threads", "2", "--precisions", "FP32,INT8", "--json",
    ).json()  # fmt: skip
    assert result["options"]["mode"] == "throughput" and result["options"]["cores"] == 2
    rows = {row["artifact"]: row for row in result["rows"]}
    assert list(rows) == ["source", "onnx", "FP32", "INT8"]
    for row in rows.values():
        assert row["error"] is None, row
        tried = row["tried"]
        assert {"1 x 2 threads", "2 x 1 thread"} <= set(tried), tried
        assert (
            row["windows_per_s"] == max(tried.values())
            and tried[row["configuration"]] == row["windows_per_s"]
        )
        # a silero-vad window is one 512-sample chunk at 16 kHz, 32 ms of audio
        assert row["audio_s_per_s"] == pytest.approx(row["windows_per_s"] * 0.032)
        assert row["versus_source"] == pytest.approx(row["windows_per_s"] / rows["source"]["windows_per_s"])
    for artifact in ("FP32", "INT8"):  # OpenVINO's own throughput mode is among an IR's configurations
        assert any("streams" in name for name in rows[artifact]["tried"]), rows[artifact]
    bad = run_zoo("bench", "--name", "silero-vad", "-o", str(out), "--throughput", "--batch", "2", env=env())
    assert bad.returncode == 2 and "--throughput" in bad.stderr


def test_bench_bad_input():
    result = run_zoo("bench", "--name", "silero-vad", "--runtimes", "tensorrt", env=env())
    assert result.returncode == 2 and "--runtimes" in result.stderr and "Traceback" not in result.stderr
    result = run_zoo("bench", "--name", "silero-vad", "-o", "/nonexistent-zoo-out", env=env())
    assert result.returncode == 2 and "nothing to benchmark" in result.stderr


def test_the_table_names_unsteady_rows(capsys):
    from dataclasses import asdict

    from zoo.bench.subjects import Row
    from zoo.cli.render import print_bench_table

    common = {"size": 1000, "calls": 30, "p90_ms": 2.0, "mean_ms": 1.5, "throughput": 600.0}
    rows = [
        Row("m", "FP32", "openvino", "FP32", threads=2, p50_ms=1.5, round_p50_ms=[1.4, 1.5, 1.9],
            round_spread=0.357, steady=False, **common),
        Row("m", "INT8", "openvino", "INT8", threads=2, p50_ms=0.5, round_p50_ms=[0.5, 0.5, 0.51],
            round_spread=0.02, steady=True, **common),
    ]  # fmt: skip
    result = {
        "options": {
            "batch": 1,
            "threads": [1, 2],
            "seconds": 1.0,
            "rounds": 3,
            "openvino_precision_hint": "f32",
        },
        "machine": {"cpu": "test CPU", "cores": 2},
        "rows": [asdict(row) for row in rows],
    }
    print_bench_table(result)
    footer = capsys.readouterr().out.splitlines()[-1]
    assert footer.startswith("unsteady: m FP32 at 2 threads (36 %):") and "INT8" not in footer
    for row in result["rows"]:
        row["steady"] = True
    print_bench_table(result)
    assert "unsteady" not in capsys.readouterr().out
