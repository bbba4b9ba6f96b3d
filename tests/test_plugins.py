"""The plugin contract (zoo/plugins.py, zoo/frontends/): registries, declared capabilities, code files.

The stamp test runs the real `zoo convert` on a copy of the repository's converters package placed
first on PYTHONPATH, edits a network module in the copy, and checks what is redone.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import MANIFESTS, ROOT
from tests.support.cli import run_in_subprocess
from zoo.catalog import Catalog
from zoo.errors import UsageError, ZooError
from zoo.frontends import frontend_for, prepare_inputs, synthetic_feature_inputs
from zoo.plugins import Converter, converter_for, known_frameworks, network_entry

STAGES = ["source", "onnx", "FP32", "FP16"]


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return Catalog()


def test_every_manifest_framework_has_a_registered_converter(catalog):
    assert known_frameworks() == [
        "keras",
        "lasagne",
        "onnx",
        "pytorch",
        "tf1-checkpoint",
        "tf1-graph",
        "tflite",
        "torchscript",
    ]
    for manifest in catalog.all():
        converter = converter_for(manifest)
        assert isinstance(converter, Converter)
        assert manifest.framework in converter.frameworks
        assert converter_for(manifest.framework) is converter
    assert converter_for("pytorch") is converter_for("torchscript")


def test_an_unknown_framework_names_itself_and_the_known_ones():
    with pytest.raises(UsageError, match=r"framework 'caffe' has no converter \(known: keras, lasagne, onnx"):
        converter_for("caffe")


def test_direct_ir_is_declared_and_the_base_refuses_to_openvino(catalog):
    assert {f for f in known_frameworks() if converter_for(f).direct_ir} == {
        "keras",
        "tflite",
        "tf1-checkpoint",
        "tf1-graph",
    }
    manifest = catalog.get("aclnet")
    with pytest.raises(UsageError, match="no direct OpenVINO path"):
        converter_for("onnx").to_openvino(None, {}, manifest)


def test_code_files_are_the_converter_its_network_and_the_helpers_they_import(catalog):
    def names(model: str) -> list[str]:
        manifest = catalog.get(model)
        return [p.relative_to(ROOT).as_posix() for p in converter_for(manifest).code_files(manifest)]

    assert names("audioset-attention-single") == [
        "converters/networks/__init__.py",
        "converters/networks/audioset_attention.py",
        "converters/networks/seeding.py",
        "converters/pytorch.py",
    ]
    assert "converters/lasagne.py" in names("kahl-aed") and "converters/pytorch.py" in names("kahl-aed")
    assert "converters/networks/kahl_aed.py" in names("kahl-aed")
    # AclNet's reference weights are made with the torch exporter, so it is one of the onnx entry's files
    assert {"converters/onnx.py", "converters/networks/aclnet.py", "converters/pytorch.py"} <= set(
        names("aclnet")
    )
    assert names("yamnet") == [
        "converters/__init__.py",
        "converters/keras.py",
        "converters/networks/yamnet.py",
        "converters/spectral.py",  # its IR's STFT as one strided convolution
    ]
    assert "converters/networks/dcase2018.py" not in names("audioset-attention-single")


def test_networks_come_from_one_registry_for_both_frameworks():
    assert network_entry("yamnet").framework == "keras"
    assert network_entry("dcase2018", "vggish").framework == "torch"
    with pytest.raises(UsageError, match=r"unknown network 'resnet' \(known: aclnet, audioset_attention"):
        network_entry("resnet")
    with pytest.raises(UsageError, match=r"no variant 'big' \(known: baseline_cnn, vggish\)"):
        network_entry("dcase2018", "big")
    with pytest.raises(UsageError, match="rebuilt in keras, not torch"):
        network_entry("yamnet", framework="torch")


def test_front_ends_are_chosen_by_features_kind_and_declare_whether_they_take_audio(catalog):
    kinds = {m.name: type(frontend_for(m)).__name__ for m in catalog.all()}
    assert kinds["aclnet"] == "WaveformClips"
    assert kinds["dcase2018-task2-vggish"] == "LogMel"
    assert kinds["kahl-aed"] == "StftImage"
    assert kinds["audioset-attention-single"] == "VggishEmbeddings"
    embeddings = catalog.get("audioset-attention-single")
    assert not frontend_for(embeddings).takes_audio
    assert all(frontend_for(catalog.get(n)).takes_audio for n in ("aclnet", "kahl-aed", "silero-vad"))
    unchained = embeddings.model_copy(update={"chain": None})  # the head alone cannot take audio
    with pytest.raises(ZooError, match="takes VGGish \\+ PCA embeddings"):
        prepare_inputs(unchained, np.zeros(16000, dtype=np.float32), 16000)
    # with its chain it takes waveform windows of ten VGGish examples, made into codes by the chained runner
    windows = prepare_inputs(embeddings, np.zeros(16000, dtype=np.float32), 16000)
    assert [list(w) for w in windows] == [["waveform"]] and windows[0]["waveform"].shape == (153840,)
    feeds = synthetic_feature_inputs(embeddings, 3, seed=1)
    assert len(feeds) == 3 and feeds[0]["embeddings"].shape == (1, 10, 128)


def test_a_new_converter_module_is_found_without_naming_it(tmp_path):
    """Adding a framework is one new file in converters/: the registry finds it by iterating the package."""
    package = tmp_path / "converters"
    shutil.copytree(ROOT / "converters", package, ignore=shutil.ignore_patterns("__pycache__"))
    (package / "toy.py").write_text(
        "from zoo.plugins import Converter, register_converter\n\n\n"
        "@register_converter\nclass ToyConverter(Converter):\n"
        '    frameworks = ("toy",)\n\n'
        "    def load(self, files, manifest):\n        raise NotImplementedError\n\n"
        "    def export_onnx(self, source, path, manifest):\n        raise NotImplementedError\n"
    )
    code = "from zoo.plugins import converter_for, known_frameworks; print(known_frameworks(), type(converter_for('toy')).__name__)"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), str(ROOT)])}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "'toy'" in done.stdout and "ToyConverter" in done.stdout


def _convert(out: Path, env: dict[str, str], *names: str) -> dict[str, dict[str, str]]:
    """`zoo convert` run outside the repository, so PYTHONPATH alone decides which converters load."""
    args = ["convert", "--manifests", str(MANIFESTS), "-o", str(out), "--reference-weights", "--json"]
    for name in names:
        args += ["--name", name]
    # a process of its own: which converters package is imported is decided at start-up
    result = run_in_subprocess(*args, "--cache-dir", str(out.parent / "cache"), env=env, cwd=out.parent)
    assert result.returncode == 0, result.stderr
    return {r["model"]: {s["stage"]: s["status"] for s in r["stages"]} for r in result.json()}


def test_editing_a_network_module_redoes_the_exports_of_the_models_using_it(tmp_path):
    package = tmp_path / "code" / "converters"
    shutil.copytree(ROOT / "converters", package, ignore=shutil.ignore_patterns("__pycache__"))
    env = {"PYTHONPATH": os.pathsep.join([str(tmp_path / "code"), str(ROOT)])}
    out = tmp_path / "out"
    models = ("audioset-attention-single", "dcase2018-task2-baseline-cnn")

    first = _convert(out, env, *models)
    assert first == dict.fromkeys(models, dict.fromkeys(STAGES, "done"))
    stamp = json.loads((out / models[0] / "stamps" / "onnx.json").read_text())
    digests = stamp["key"]["converter"]  # {code file: sha256}, one per file the converter runs
    assert any(name.endswith("audioset_attention.py") for name in digests)
    assert all(len(value) == 64 for value in digests.values())

    exported = (out / models[0] / "onnx" / f"{models[0]}.onnx").read_bytes()
    with open(package / "networks" / "audioset_attention.py", "a", encoding="utf-8") as handle:
        handle.write("# an edit that must redo the exports of every model built on this network\n")
    second = _convert(out, env, *models)
    # the reference weights are written by the network's code too: they are made again
    assert second[models[0]]["source"] == "done"
    assert second[models[0]]["onnx"] == "done"
    # the IRs are made from the ONNX export: redone exactly when the new export differs
    changed = (out / models[0] / "onnx" / f"{models[0]}.onnx").read_bytes() != exported
    for precision in ("FP32", "FP16"):
        assert second[models[0]][precision] == ("done" if changed else "up to date"), precision
    assert second[models[1]] == dict.fromkeys(STAGES, "up to date")

    with open(package / "networks" / "seeding.py", "a", encoding="utf-8") as handle:
        handle.write("# shared by every torch model's reference weights\n")
    third = _convert(out, env, *models)
    for model in models:
        assert third[model]["onnx"] == "done", model
