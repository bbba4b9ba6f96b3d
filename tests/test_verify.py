"""`zoo verify`: parity metrics, tolerances, report.json, golden vectors, damaged artifacts, streams."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import run_zoo
from tests.tinymodel import LABELS, make_stateful_onnx, make_tiny_onnx, write_stream_entry, write_tiny_entry
from zoo.verify import check_golden, compare, judge, read_golden

# -- metrics on arrays with known answers ----------------------------------------------------


def test_identical_outputs_agree_perfectly():
    ref = [[np.array([[0.1, 0.2, 0.7]])], [np.array([[0.5, 0.3, 0.2]])]]
    metrics = compare(ref, ref)
    assert metrics["max_abs"] == 0 and metrics["max_rel"] == 0
    assert metrics["cosine_min"] == pytest.approx(1.0)
    assert metrics["top1"] == 1 and metrics["top5"] == 1
    assert metrics["decision"] is None


def test_metrics_measure_what_they_say():
    ref = [[np.array([[0.1, 0.2, 0.7]])], [np.array([[0.6, 0.3, 0.1]])]]
    got = [[np.array([[0.1, 0.3, 0.6]])], [np.array([[0.3, 0.6, 0.1]])]]
    metrics = compare(ref, got)
    assert metrics["max_abs"] == pytest.approx(0.3)
    assert metrics["max_rel"] == pytest.approx(1.0)  # 0.3 -> 0.6
    assert metrics["top1"] == pytest.approx(0.5)  # the second probe's best class moved
    assert metrics["top5"] == pytest.approx(1.0)  # three classes: the top-3 sets are the same
    first = np.array([0.1, 0.2, 0.7])
    second = np.array([0.1, 0.3, 0.6])
    expected = float(first @ second / np.linalg.norm(first) / np.linalg.norm(second))
    cos2 = float(np.array([0.6, 0.3, 0.1]) @ np.array([0.3, 0.6, 0.1]) / (0.46**0.5 * 0.46**0.5))
    assert metrics["cosine_min"] == pytest.approx(min(expected, cos2))


def test_top5_is_the_overlap_of_the_five_best_classes():
    ref = np.arange(10, dtype=np.float64)[None]  # best five: 9..5
    got = ref.copy()
    got[0, 5], got[0, 0] = -1.0, 100.0  # class 5 leaves the top five, class 0 enters it (and wins top-1)
    metrics = compare([[ref]], [[got]])
    assert metrics["top5"] == pytest.approx(4 / 5)
    assert metrics["top1"] == 0


def test_decisions_compare_sides_of_the_threshold_and_a_stream_is_one_probe():
    ref = [[np.array([[0.2]]), np.array([[0.7]]), np.array([[0.9]]), np.array([[0.4]])]]
    got = [[np.array([[0.2]]), np.array([[0.4]]), np.array([[0.9]]), np.array([[0.4]])]]
    metrics = compare(ref, got, threshold=0.5)
    assert metrics["decision"] == pytest.approx(0.75)
    assert metrics["top1"] is None  # one output value: no classes to rank
    assert metrics["max_abs"] == pytest.approx(0.3)


def test_nan_is_an_infinite_error_and_fails_any_tolerance():
    metrics = compare([[np.array([[0.5, 0.5]])]], [[np.array([[np.nan, 0.5]])]])
    assert metrics["max_abs"] == float("inf")
    assert judge(metrics, {"atol": 1.0})[0]["metric"] == "max_abs"


def test_judge_applies_each_tolerance():
    metrics = compare([[np.array([[0.1, 0.9]])]], [[np.array([[0.12, 0.88]])]], atol=0.01, rtol=0.0)
    assert [f["metric"] for f in judge(metrics, {"atol": 0.01})] == ["max_abs"]
    assert judge(metrics, {"atol": 0.05, "top1": 1.0, "cosine": 0.99}) == []
    rule = judge(metrics, {"atol": 0.01, "rtol": 0.0})
    assert "2 of 2 elements beyond atol + rtol*|ref|" in rule[0]["rule"]
    assert (
        judge(
            compare([[np.array([[0.1, 0.9]])]], [[np.array([[0.1, 0.9]])]], atol=0.0, rtol=0.1),
            {"atol": 0.0, "rtol": 0.1},
        )
        == []
    )
    low = judge(
        {"max_abs": 0.0, "top1": 0.5, "top5": None, "cosine_min": 1.0, "decision": None},
        {"top1": 0.9, "top5": 0.8},
    )
    assert [(f["metric"], f["measured"]) for f in low] == [("top1", 0.5), ("top5", None)]


# -- the command on a tiny real model -----------------------------------------------------------


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    """The tiny model converted once (onnx, FP32, FP16); tests copy it before changing anything."""
    root = tmp_path_factory.mktemp("verify")
    model = make_tiny_onnx(root / "upstream" / "tiny.onnx", seed=2)
    catalog = root / "catalog"
    write_tiny_entry(catalog, model)
    out = root / "out"
    result = run_zoo(
        "convert",
        "--manifests",
        str(catalog),
        "--name",
        "tiny",
        "-o",
        str(out),
        "--cache-dir",
        str(root / "cache"),
    )
    assert result.returncode == 0, result.stderr
    return catalog, out


@pytest.fixture
def workspace(converted, tmp_path):
    import shutil

    catalog, out = converted
    shutil.copytree(catalog, tmp_path / "catalog")
    shutil.copytree(out, tmp_path / "out")
    return tmp_path / "catalog", tmp_path / "out"


def verify(catalog: Path, out: Path, *args: str, name: str = "tiny"):
    return run_zoo("verify", "--manifests", str(catalog), "--name", name, "-o", str(out), *args)


def test_verify_passes_and_writes_the_report_of_the_contract(workspace):
    catalog, out = workspace
    result = verify(catalog, out)
    assert result.returncode == 0, result.stderr
    for artifact in ("onnx", "FP32", "FP16"):
        assert f"tiny  │ {artifact}" in result.stdout or f"tiny │ {artifact}" in result.stdout
    report = json.loads((out / "tiny" / "report.json").read_text())
    for key in (
        "schema",
        "model",
        "manifest_version",
        "manifest_sha256",
        "reference_weights",
        "sources",
        "versions",
        "created",
        "probes",
        "artifacts",
        "expectations",
        "passed",
    ):
        assert key in report, key
    assert report["passed"] is True and report["reference_weights"] is False
    assert set(report["sources"]) == {"tiny.onnx"}
    assert report["probes"]["count"] == len(report["probes"]["names"]) >= 15
    assert "zeros" in report["probes"]["names"] and "sine-440" in report["probes"]["names"]
    onnx_entry = report["artifacts"]["onnx"]
    assert onnx_entry["path"] == "onnx/tiny.onnx" and onnx_entry["runtime"] == "onnxruntime"
    assert onnx_entry["tolerance"] == {"atol": 1e-6}
    fp32 = report["artifacts"]["FP32"]
    assert fp32["runtime"] == "openvino" and fp32["hint"] == "f32" and fp32["precision"] == "f32"
    assert fp32["files"][0]["path"] == "FP32/tiny.bin" and len(fp32["files"][0]["sha256"]) == 64
    assert fp32["default_precision"]["judged"] is False
    assert fp32["default_precision"]["precision"] in ("f32", "bf16")
    assert fp32["metrics"]["max_abs"] < 1e-5 and fp32["metrics"]["top1"] == 1.0
    fp16 = report["artifacts"]["FP16"]
    assert 0 < fp16["metrics"]["max_abs"] < 5e-3  # rounded weights: a real, small difference
    assert "INT8" not in report["artifacts"]  # only artifacts that exist are run

    as_json = verify(catalog, out, "--json")
    assert as_json.returncode == 0
    assert as_json.json()["artifacts"]["FP32"]["metrics"] == fp32["metrics"]


def test_golden_vectors_are_onnx_test_data_that_check_any_artifact(workspace):
    catalog, out = workspace
    assert verify(catalog, out).returncode == 0
    test_data = out / "tiny" / "test_data"
    sets = sorted(test_data.glob("test_data_set_*"))
    assert len(sets) == 5
    assert sorted(p.name for p in sets[0].iterdir()) == ["input_0.pb", "output_0.pb"]
    pairs = read_golden(test_data)
    inputs, outputs = pairs[0]
    assert list(inputs) == ["input"] and inputs["input"].shape == (1, 1, 1, 800)
    assert list(outputs) == ["output"] and outputs["output"].shape == (1, len(LABELS))
    index = json.loads((test_data / "index.json").read_text())
    assert index["sets"][0]["probe"] == "zeros"
    for artifact, tolerance in (
        ("onnx/tiny.onnx", {"atol": 1e-6}),
        ("FP32/tiny.xml", {"atol": 1e-5}),
        ("FP16/tiny.xml", {"atol": 5e-3, "top1": 1.0}),
    ):
        checked = check_golden(out / "tiny" / artifact, test_data, tolerance)
        assert checked["passed"], (artifact, checked)
        assert checked["sets"] == 5


def _damage_one_weight(xml: Path, elements: int, value: float) -> None:
    """Overwrite the first value of the f32 Const layer with this many elements in the IR's .bin."""
    root = ET.parse(xml).getroot()
    layer = next(
        e
        for e in root.iter("layer")
        if e.get("type") == "Const"
        and e.find("data").get("element_type") == "f32"
        and int(np.prod([int(d) for d in e.find("data").get("shape").split(",") if d.strip()])) == elements
    )
    data = layer.find("data")
    assert data.get("element_type") == "f32"
    offset = int(data.get("offset"))
    weights = bytearray(xml.with_suffix(".bin").read_bytes())
    weights[offset : offset + 4] = np.float32(value).tobytes()
    xml.with_suffix(".bin").write_bytes(bytes(weights))


def test_a_damaged_ir_fails_verify_naming_the_artifact(workspace):
    catalog, out = workspace
    xml = out / "tiny" / "FP32" / "tiny.xml"
    golden_before = verify(catalog, out)
    assert golden_before.returncode == 0
    _damage_one_weight(xml, len(LABELS), 3.0)  # one bias of the last layer
    result = verify(catalog, out)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "tiny: FP32: max_abs" in result.stderr and "exceeds the tolerance atol 1e-05" in result.stderr
    error = result.stderr.split("error:")[-1]
    assert "tiny: onnx" not in error and "tiny: FP16" not in error
    report = json.loads((out / "tiny" / "report.json").read_text())
    assert report["passed"] is False
    assert report["artifacts"]["FP32"]["passed"] is False
    assert report["artifacts"]["onnx"]["passed"] is True and report["artifacts"]["FP16"]["passed"] is True
    assert "FP32" in result.stdout and "FAIL" in result.stdout
    # the golden vectors catch it too, without the source framework
    assert check_golden(xml, out / "tiny" / "test_data", {"atol": 1e-5})["passed"] is False


def test_reference_flag_must_match_how_the_outputs_were_made(workspace, tmp_path):
    catalog, out = workspace
    result = verify(catalog, out, "--reference-weights")
    assert result.returncode == 2
    assert "from the real weights" in result.stderr and "Traceback" not in result.stderr
    result = verify(catalog, tmp_path / "empty")
    assert result.returncode == 2
    assert "run `zoo convert --name tiny" in result.stderr


def test_expectations_are_checked_on_the_source_outputs(workspace):
    catalog, out = workspace
    report = verify(catalog, out, "--json").json()
    assert report["expectations"] == []
    golden = read_golden(out / "tiny" / "test_data")
    best = LABELS[int(np.argmax(golden[0][1]["output"]))]  # set 0 is the zeros probe
    worst = LABELS[int(np.argmin(golden[0][1]["output"]))]
    manifest = catalog / "tiny.yaml"
    manifest.write_text(
        manifest.read_text() + f"  expectations:\n    - {{probe: zeros, label: {best}, top_k: 1}}\n"
    )
    passed = verify(catalog, out, "--json")
    assert passed.returncode == 0, passed.stderr
    assert passed.json()["expectations"][0] == {**passed.json()["expectations"][0], "rank": 1, "passed": True}
    manifest.write_text(manifest.read_text() + f"    - {{probe: zeros, label: {worst}, top_k: 2}}\n")
    failed = verify(catalog, out)
    assert failed.returncode == 1
    assert f"probe 'zeros' ranks '{worst}' at 5, expected within the top 2" in failed.stderr
    manifest.write_text(manifest.read_text() + "    - {probe: zeros, label: Thunder, top_k: 2}\n")
    unknown = verify(catalog, out)
    assert unknown.returncode == 2 and "verify.expectations[2].label" in unknown.stderr


def test_verify_on_your_own_recordings(workspace, tmp_path):
    """--audio files and folders: judged by the same rules, reported apart; expectations may name one."""
    import soundfile

    catalog, out = workspace
    rng = np.random.RandomState(7)
    folder = tmp_path / "recordings"
    folder.mkdir()
    soundfile.write(folder / "hum.wav", 0.3 * np.sin(np.arange(48000) * 0.07), 48000)  # any rate
    single = tmp_path / "knock.flac"
    soundfile.write(single, 0.2 * rng.standard_normal(22050), 22050)
    result = verify(catalog, out, "--audio", str(folder), "--audio", str(single), "--json")
    assert result.returncode == 0, result.stderr
    report = result.json()
    audio = report["audio"]
    assert sorted(audio["files"]) == ["hum.wav", "knock.flac"]
    assert len(audio["sha256"]) == 64
    assert set(audio["artifacts"]) == set(report["artifacts"])
    for figures in audio["artifacts"].values():
        assert figures["passed"] and figures["metrics"]["max_abs"] is not None
    assert "knock.flac" not in report["probes"]["names"]  # the probe figures stay the probes'

    # an upstream self-test naming a recording runs on that recording
    golden = verify(catalog, out, "--audio", str(single), "--json").json()
    manifest = catalog / "tiny.yaml"
    labels = LABELS
    manifest.write_text(
        manifest.read_text() + f"  expectations:\n    - {{probe: knock.flac, label: {labels[0]}, top_k: 5}}\n"
    )
    heard = verify(catalog, out, "--audio", str(single), "--json").json()
    (item,) = heard["expectations"]
    assert item["probe"] == "knock.flac" and item["rank"] is not None and item["passed"] is True
    unheard = verify(catalog, out, "--json").json()
    assert (
        unheard["expectations"][0]["rank"] is None
        and "not in this probe set" in unheard["expectations"][0]["note"]
    )
    assert golden["passed"]

    broken = tmp_path / "broken.wav"
    broken.write_bytes(b"RIFF not really audio")
    refused = verify(catalog, out, "--audio", str(broken))
    assert refused.returncode == 2 and "broken.wav" in refused.stderr and "Traceback" not in refused.stderr


def test_an_artifact_without_a_tolerance_policy_is_a_manifest_error(workspace):
    catalog, out = workspace
    manifest = catalog / "tiny.yaml"
    manifest.write_text(manifest.read_text().replace("    FP16: {atol: 5.0e-3, top1: 1.0}\n", ""))
    result = verify(catalog, out, "--json")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "tiny.yaml" in result.stderr and "verify.tolerance.FP16 is missing" in result.stderr
    manifest.write_text(manifest.read_text().replace("    FP32: {atol: 1.0e-5}\n", "    FP32: {top1: 1.0}\n"))
    result = verify(catalog, out)
    assert result.returncode == 2 and "verify.tolerance.FP32: give budget: derived" in result.stderr


def _derived(catalog: Path) -> None:
    """Judge the tiny entry's ONNX, FP32 and FP16 by budgets derived from its own float32 error."""
    manifest = catalog / "tiny.yaml"
    text = manifest.read_text()
    for old in ("onnx: {atol: 1.0e-6}", "FP32: {atol: 1.0e-5}", "FP16: {atol: 5.0e-3, top1: 1.0}"):
        assert old in text, old
    text = text.replace("onnx: {atol: 1.0e-6}", "onnx: {budget: derived}")
    text = text.replace("FP32: {atol: 1.0e-5}", "FP32: {budget: derived}")
    text = text.replace("FP16: {atol: 5.0e-3, top1: 1.0}", "FP16: {budget: derived, top1: 1.0}")
    manifest.write_text(text)


def test_derived_budgets_pass_genuine_artifacts_and_report_their_yardstick(workspace, tmp_path):
    catalog, out = workspace
    _derived(catalog)
    junit = tmp_path / "verify.xml"
    result = verify(catalog, out, "--json", "--junit", str(junit), "--threads", "1")
    assert result.returncode == 0, result.stderr
    report = result.json()
    assert report["reference"]["float64"] and report["threads"] == 1
    for kind in ("onnx", "FP32", "FP16"):
        budget = report["artifacts"][kind]["outputs"]["output"]["checks"]["budget"]
        assert budget["passed"] and 0 <= budget["measured"] <= budget["limit"]
        assert budget["limit"] > 0 and budget["yardstick"] >= 0
    assert report["artifacts"]["FP32"]["runtime_config"]["DYNAMIC_QUANTIZATION_GROUP_SIZE"] == 0
    assert report["artifacts"]["FP16"]["float16_weights"] > 0
    assert len(report["probes"]["sha256"]) == 64
    xml = junit.read_text()
    assert 'testsuite name="tiny"' in xml and 'name="FP32 output"' in xml and "<failure" not in xml


def test_a_one_in_a_thousand_weight_change_exceeds_the_derived_budget(workspace, tmp_path):
    """A tolerance must still catch a real defect: scale one weight tensor of the FP32 IR by 1 + 1e-3."""
    catalog, out = workspace
    _derived(catalog)
    xml = out / "tiny" / "FP32" / "tiny.xml"
    root = ET.parse(xml).getroot()
    biggest = max(
        (layer.find("data") for layer in root.iter("layer") if layer.get("type") == "Const"),
        key=lambda data: int(data.get("size")),
    )
    offset, size = int(biggest.get("offset")), int(biggest.get("size"))
    weights = bytearray(xml.with_suffix(".bin").read_bytes())
    tensor = np.frombuffer(bytes(weights[offset : offset + size]), dtype=np.float32) * np.float32(1 + 1e-3)
    weights[offset : offset + size] = tensor.astype(np.float32).tobytes()
    xml.with_suffix(".bin").write_bytes(bytes(weights))
    junit = tmp_path / "verify.xml"
    result = verify(catalog, out, "--junit", str(junit))
    assert result.returncode == 1, result.stderr
    assert "tiny: FP32: max_abs" in result.stderr and "exceeds its budget" in result.stderr
    assert "<failure" in junit.read_text() and "budget" in junit.read_text()


def test_a_stream_is_verified_chunk_by_chunk_with_the_state_carried(tmp_path):
    model = make_stateful_onnx(tmp_path / "upstream" / "stream.onnx", seed=3)
    catalog = tmp_path / "catalog"
    write_stream_entry(catalog, model)
    out = tmp_path / "out"
    converted = run_zoo(
        "convert",
        "--manifests",
        str(catalog),
        "--name",
        "tiny-stream",
        "-o",
        str(out),
        "--cache-dir",
        str(tmp_path / "cache"),
    )
    assert converted.returncode == 0, converted.stderr
    result = verify(catalog, out, "--json", name="tiny-stream")
    assert result.returncode == 0, result.stderr
    report = result.json()
    assert report["probes"]["streaming"] is True
    assert "synthetic-stream" in report["probes"]["names"]
    assert report["probes"]["calls"] == len(report["probes"]["names"]) * (12000 // 64 + 1)
    for artifact in ("onnx", "FP32", "FP16"):
        metrics = report["artifacts"][artifact]["metrics"]
        assert metrics["decision"] is not None and metrics["top1"] is None
    assert report["artifacts"]["FP32"]["other_outputs"]["new_state"]["max_abs"] < 1e-5
    # golden sets hold every input of one step, the carried state included
    sets = read_golden(out / "tiny-stream" / "test_data")
    assert all(set(inputs) == {"chunk", "state"} for inputs, _ in sets)
    assert any(np.abs(inputs["state"]).max() > 0.05 for inputs, _ in sets[1:])
    assert check_golden(
        out / "tiny-stream" / "FP32" / "tiny-stream.xml",
        out / "tiny-stream" / "test_data",
        {"atol": 1e-5, "decision": 1.0},
        output="probability",
        threshold=0.5,
    )["passed"]


def test_an_int8_ir_is_verified_with_its_own_tolerance(workspace):
    """An INT8 IR (NNCF post-training quantization of the FP32 IR) is found and judged as INT8."""
    import nncf
    import openvino as ov

    from zoo.frontends import prepare_inputs
    from zoo.manifest import load_manifest
    from zoo.probes import probe_set

    catalog, out = workspace
    manifest = load_manifest(catalog / "tiny.yaml")
    items = [
        feed
        for probe in probe_set(8000, 0.1, kind="calibration", count=30)
        for feed in prepare_inputs(manifest, probe.audio, 8000)
    ]
    model = ov.Core().read_model(str(out / "tiny" / "FP32" / "tiny.xml"))
    quantized = nncf.quantize(model, nncf.Dataset(items), subset_size=len(items))
    (out / "tiny" / "INT8").mkdir()
    ov.save_model(quantized, str(out / "tiny" / "INT8" / "tiny.xml"))
    text = (catalog / "tiny.yaml").read_text()
    (catalog / "tiny.yaml").write_text(
        text.replace(
            "    FP16: {atol: 5.0e-3, top1: 1.0}\n",
            "    FP16: {atol: 5.0e-3, top1: 1.0}\n    INT8: {top1: 0.8, cosine: 0.8}\n",
        )
    )
    report = verify(catalog, out, "--json").json()
    entry = report["artifacts"]["INT8"]
    assert entry["path"] == "INT8/tiny.xml" and entry["tolerance"] == {"top1": 0.8, "cosine": 0.8}
    assert entry["passed"], entry
    assert 0 < entry["metrics"]["max_abs"]  # quantized: close, not equal
    (catalog / "tiny.yaml").write_text(
        text.replace(
            "    FP16: {atol: 5.0e-3, top1: 1.0}\n",
            "    FP16: {atol: 5.0e-3, top1: 1.0}\n    INT8: {atol: 1.0e-7}\n",
        )
    )
    strict = verify(catalog, out)
    assert strict.returncode == 1 and "tiny: INT8: max_abs" in strict.stderr


def test_report_machine_records_only_the_kernel_variables_that_are_set(monkeypatch):
    import sys

    from zoo.verify.report import ISA_VARIABLES, machine

    for name in ISA_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    assert machine()["isa_env"] == {}
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX2")
    monkeypatch.setenv("TF_ENABLE_ONEDNN_OPTS", "0")
    found = machine()
    assert found["isa_env"] == {"ONEDNN_MAX_CPU_ISA": "AVX2", "TF_ENABLE_ONEDNN_OPTS": "0"}
    assert found["cpu"] and found["cores"] >= 1
    assert "ONNX Runtime" in found["notes"] and "XNNPACK" in found["notes"]
    # torch's own capability only when torch is already loaded: never imported to describe the machine
    assert ("torch_cpu_capability" in found) == ("torch" in sys.modules)
