"""End to end for the PyTorch, ONNX and Lasagne families, and silero-vad with its real weights.

Each entry is downloaded from a real HTTP server on 127.0.0.1 (reference weights in the upstream
format, under test manifests that differ from the real ones only in sources, checksums and a
shorter probe set), converted with `zoo convert -j 2` and verified with `zoo verify` against its
original framework. silero-vad comes from its wheel on the package index, as in the real catalog.
"""

from __future__ import annotations

import json
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
from ruamel.yaml import YAML

from tests.conftest import MANIFESTS, run_zoo
from tests.support.catalogs import served_catalog

NAMES = [
    "aclnet",
    "aclnet-int8",
    "dcase2018-task2-vggish",
    "dcase2018-task2-baseline-cnn",
    "audioset-attention-single",
    "audioset-attention-multi",
    "audioset-attention-feature",
    "kahl-aed",
]
#: probes per entry in the test catalogs (verify.max_probes): enough to exercise every path, quick to run
PROBES = 4


def set_fields(catalog: Path, name: str, **verify_fields) -> None:
    """Set verify.<field> values in one entry of a catalog copy."""
    yaml = YAML()
    yaml.width = 4096
    path = catalog / f"{name}.yaml"
    with open(path, encoding="utf-8") as handle:
        data = yaml.load(handle)
    data["verify"].update(verify_fields)
    with open(path, "w", encoding="utf-8") as handle:
        yaml.dump(data, handle)


@pytest.fixture(scope="session")
def torch_family(shared_http_server, tmp_path_factory):
    """Every entry served, converted with -j 2 and verified once; the tests read the results."""
    root = tmp_path_factory.mktemp("e2e-torch")
    catalog = served_catalog(root, NAMES, shared_http_server)
    for name in NAMES:
        set_fields(catalog, name, max_probes=PROBES)
    out = root / "out"
    selection = ",".join(NAMES)
    converted = run_zoo(
        "convert",
        "--manifests",
        str(catalog),
        "--name",
        selection,
        "-o",
        str(out),
        "-j",
        "2",
        "--cache-dir",
        str(root / "cache"),
        "--json",
    )
    verified = run_zoo("verify", "--manifests", str(catalog), "--name", selection, "-o", str(out), "--json")
    return {"root": root, "catalog": catalog, "out": out, "convert": converted, "verify": verified}


pytestmark = pytest.mark.xdist_group("e2e-torch")


def test_every_entry_downloads_and_converts(torch_family):
    converted = torch_family["convert"]
    assert converted.returncode == 0, converted.stderr
    results = {r["model"]: r for r in converted.json()}
    assert sorted(results) == sorted(NAMES)
    for name, result in results.items():
        stages = {s["stage"]: s["status"] for s in result["stages"]}
        expected = ["source", "onnx", "FP32"] + ([] if name == "aclnet-int8" else ["FP16"])
        assert stages == dict.fromkeys(expected, "done"), name
        root = torch_family["out"] / name
        sources = json.loads((root / "source" / "SOURCES.json").read_text())
        assert sources["reference_weights"] is False  # downloaded like real weights
        assert any("127.0.0.1" in str(record.get("url", "")) for record in sources["files"].values()), name
        assert (root / "onnx" / f"{name}.onnx").is_file()


@pytest.mark.parametrize("name", NAMES)
def test_every_entry_matches_its_original_framework(torch_family, name):
    verified = torch_family["verify"]
    reports = {r["model"]: r for r in json.loads(verified.stdout)} if verified.stdout else {}
    assert name in reports, verified.stderr
    report = reports[name]
    assert report["passed"], report["failures"]
    artifacts = ["onnx", "FP32"] + ([] if name == "aclnet-int8" else ["FP16"])
    assert sorted(report["artifacts"]) == sorted(artifacts)
    assert report["probes"]["count"] == PROBES
    for kind in artifacts:
        entry = report["artifacts"][kind]
        assert entry["passed"] and entry["tolerance"], (kind, entry)
        if entry["metrics"]["top1"] is not None:
            assert entry["metrics"]["top1"] >= 0.75
    assert report["artifacts"]["FP32"]["hint"] == "f32"
    assert "default_precision" in report["artifacts"]["FP32"]
    assert len(list((torch_family["out"] / name / "test_data").glob("test_data_set_*"))) >= 1
    assert verified.returncode == 0, verified.stderr


def test_a_second_convert_is_up_to_date(torch_family):
    again = run_zoo(
        "convert",
        "--manifests",
        str(torch_family["catalog"]),
        "--name",
        ",".join(NAMES),
        "-o",
        str(torch_family["out"]),
        "--cache-dir",
        str(torch_family["root"] / "cache"),
        "--json",
    )
    assert again.returncode == 0, again.stderr
    for result in again.json():
        assert {s["status"] for s in result["stages"]} == {"up to date"}, result


def _largest_f32_const(xml: Path) -> tuple[int, int]:
    root = ET.parse(xml).getroot()
    consts = [e.find("data") for e in root.iter("layer") if e.get("type") == "Const"]
    consts = [d for d in consts if d.get("element_type") == "f32"]
    biggest = max(consts, key=lambda d: int(d.get("size")))
    return int(biggest.get("offset")), int(biggest.get("size"))


def test_one_changed_weight_in_a_real_ir_fails_verify(torch_family, tmp_path):
    """AclNet's FP32 IR with one weight of its largest layer changed: verify names the artifact."""
    out = tmp_path / "out"
    shutil.copytree(torch_family["out"] / "aclnet", out / "aclnet")
    xml = out / "aclnet" / "FP32" / "aclnet.xml"
    offset, size = _largest_f32_const(xml)
    weights = bytearray(xml.with_suffix(".bin").read_bytes())
    values = np.frombuffer(bytes(weights[offset : offset + size]), dtype=np.float32)
    index = int(np.argmax(np.abs(values)))  # the weight that matters most
    weights[offset + 4 * index : offset + 4 * index + 4] = np.float32(-values[index] * 50).tobytes()
    xml.with_suffix(".bin").write_bytes(bytes(weights))
    result = run_zoo(
        "verify", "--manifests", str(torch_family["catalog"]), "--name", "aclnet", "-o", str(out)
    )
    assert result.returncode == 1, result.stdout
    assert "aclnet: FP32: max_abs" in result.stderr and "exceeds its budget" in result.stderr
    assert "aclnet: onnx" not in result.stderr.split("error:")[-1]


def test_reference_weights_make_the_whole_pipeline_run_offline(tmp_path):
    """`--reference-weights` on the real catalog: no download, and verify must be told the same."""
    out = tmp_path / "out"
    converted = run_zoo(
        "convert",
        "--name",
        "audioset-attention-single",
        "--reference-weights",
        "-o",
        str(out),
        "--offline",
        "--cache-dir",
        str(tmp_path / "cache"),
    )
    assert converted.returncode == 0, converted.stderr
    verified = run_zoo(
        "verify", "--name", "audioset-attention-single", "--reference-weights", "-o", str(out), "--json"
    )
    assert verified.returncode == 0, verified.stderr
    report = verified.json()
    assert report["reference_weights"] is True and report["passed"]
    assert report["probes"]["kind"] == "synthetic-features"  # VGGish embeddings: no audio front end here
    # later commands read from the outputs how they were made: no need to repeat --reference-weights
    again = run_zoo("verify", "--name", "audioset-attention-single", "-o", str(out), "--json")
    assert again.returncode == 0, again.stderr
    assert again.json()["reference_weights"] is True and again.json()["passed"]
    quantized = run_zoo("quantize", "--name", "audioset-attention-single", "-o", str(out), "--json")
    assert quantized.returncode == 0, quantized.stderr
    converted_again = run_zoo("convert", "--name", "audioset-attention-single", "-o", str(out), "--json")
    assert converted_again.returncode == 0, converted_again.stderr
    assert {s["status"] for s in converted_again.json()[0]["stages"]} == {"up to date"}


# -- silero-vad, real weights from the package index ---------------------------------------------


@pytest.fixture(scope="session")
def silero(tmp_path_factory):
    root = tmp_path_factory.mktemp("e2e-silero")
    catalog = root / "catalog"
    shutil.copytree(MANIFESTS, catalog)
    set_fields(catalog, "silero-vad", seconds=4.0)  # streams of 125 chunks instead of 312
    out = root / "out"
    converted = run_zoo(
        "convert",
        "--manifests",
        str(catalog),
        "--name",
        "silero-vad",
        "-o",
        str(out),
        "--cache-dir",
        str(root / "cache"),
        "--json",
    )
    verified = run_zoo(
        "verify", "--manifests", str(catalog), "--name", "silero-vad", "-o", str(out), "--json"
    )
    return {"root": root, "catalog": catalog, "out": out, "convert": converted, "verify": verified}


@pytest.mark.xdist_group("e2e-silero")
def test_silero_vad_with_real_weights_converts_and_verifies_over_whole_streams(silero):
    assert silero["convert"].returncode == 0, silero["convert"].stderr
    sources = json.loads((silero["out"] / "silero-vad" / "source" / "SOURCES.json").read_text())
    assert sources["reference_weights"] is False
    assert sources["files"]["silero_vad.jit"]["sha256"] == (
        "e1122837f4154c511485fe0b9c64455f7b929c96fbb8d79fbdb336383ebd3720"
    )
    verified = silero["verify"]
    assert verified.returncode == 0, verified.stderr
    report = verified.json()
    assert report["passed"], report["failures"]
    assert report["probes"]["streaming"] is True
    assert report["probes"]["calls"] == len(report["probes"]["names"]) * 125
    if shutil.which("espeak-ng"):
        assert "speech-1" in report["probes"]["names"]
    for kind in ("onnx", "FP32"):
        metrics = report["artifacts"][kind]["metrics"]
        assert metrics["decision"] == 1.0 and metrics["max_abs"] < 1e-4
        assert report["artifacts"][kind]["other_outputs"]["new_state"]["max_abs"] < 1e-3
    assert report["artifacts"]["FP16"]["metrics"]["decision"] >= 0.99
    golden = silero["out"] / "silero-vad" / "test_data" / "test_data_set_1"
    assert sorted(p.name for p in golden.iterdir()) == [
        "input_0.pb",
        "input_1.pb",
        "input_2.pb",
        "output_0.pb",
        "output_1.pb",
        "output_2.pb",
    ]


@pytest.mark.xdist_group("e2e-silero")
def test_silero_vad_second_convert_is_up_to_date(silero):
    again = run_zoo(
        "convert",
        "--manifests",
        str(silero["catalog"]),
        "--name",
        "silero-vad",
        "-o",
        str(silero["out"]),
        "--cache-dir",
        str(silero["root"] / "cache"),
    )
    assert again.returncode == 0, again.stderr
    assert "silero-vad: up to date, nothing to do" in again.stderr
