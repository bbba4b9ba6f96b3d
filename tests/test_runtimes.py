"""Runners for ONNX Runtime and OpenVINO, and ONNX -> IR conversion, on a small real model."""

from __future__ import annotations

import shutil
import xml.etree.ElementTree as ET

import numpy as np
import pytest

from tests.tinymodel import CLASSES, LABELS, SAMPLES, make_tiny_onnx, write_tiny_entry
from zoo.errors import UsageError, ZooError
from zoo.ir import keep_fp32_matches, onnx_to_ir, save_ir
from zoo.manifest import load_manifest
from zoo.runtimes import cpu_default_precision, open_artifact


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """The tiny model, its manifest, and its FP32/FP16 IRs."""
    root = tmp_path_factory.mktemp("runtimes")
    model = make_tiny_onnx(root / "tiny.onnx", seed=4)
    manifest = load_manifest(write_tiny_entry(root / "catalog", model))
    save_ir(onnx_to_ir(model, manifest), root / "FP32" / "tiny.xml", "FP32", manifest)
    save_ir(onnx_to_ir(model, manifest), root / "FP16" / "tiny.xml", "FP16", manifest)
    return root, model, manifest


def _numpy_forward(model_path, audio: np.ndarray) -> np.ndarray:
    """The tiny graph written out in numpy, from the file's own initializers."""
    import onnx
    from onnx import numpy_helper

    weights = {
        t.name: numpy_helper.to_array(t).astype(np.float64)
        for t in onnx.load(str(model_path)).graph.initializer
    }
    hidden = np.maximum(audio.reshape(1, SAMPLES) @ weights["w1"] + weights["b1"], 0)
    logits = hidden @ weights["w2"] + weights["b2"]
    exp = np.exp(logits - logits.max())
    return exp / exp.sum()


def _feed(seed: int) -> dict[str, np.ndarray]:
    return {"input": np.random.RandomState(seed).standard_normal((1, 1, 1, SAMPLES)).astype(np.float32)}


def test_onnx_runtime_runs_the_graph(tiny):
    _, model, _ = tiny
    runner = open_artifact(model, "onnx")
    assert runner.runtime == "onnxruntime"
    assert runner.input_names == ["input"] and runner.output_names == ["output"]
    feed = _feed(1)
    out = runner.run(feed)["output"]
    assert out.shape == (1, CLASSES)
    np.testing.assert_allclose(out, _numpy_forward(model, feed["input"]), atol=1e-6)


def test_openvino_fp32_runs_with_the_f32_hint_and_matches(tiny):
    root, model, _ = tiny
    runner = open_artifact(root / "FP32" / "tiny.xml", "FP32", hint="f32", threads=1)
    assert runner.runtime == "openvino"
    assert runner.precision == "f32"
    assert runner.input_names == ["input"] and runner.output_names == ["output"]
    for seed in range(3):
        feed = _feed(seed)
        np.testing.assert_allclose(
            runner.run(feed)["output"], _numpy_forward(model, feed["input"]), atol=1e-6
        )


def test_default_precision_is_the_plugins_choice(tiny):
    root, _, _ = tiny
    runner = open_artifact(root / "FP32" / "tiny.xml", "FP32", hint=None)
    assert runner.precision == cpu_default_precision()
    assert runner.precision in ("f32", "bf16", "f16")


def test_outputs_are_copies_not_reused_buffers(tiny):
    root, _, _ = tiny
    runner = open_artifact(root / "FP32" / "tiny.xml")
    first = runner.run(_feed(1))["output"]
    kept = first.copy()
    runner.run(_feed(2))
    assert np.array_equal(first, kept)


def test_fp16_ir_stores_half_precision_weights_and_stays_close(tiny):
    root, model, _ = tiny
    xml = (root / "FP16" / "tiny.xml").read_text()
    assert 'element_type="f16"' in xml
    assert (root / "FP16" / "tiny.bin").stat().st_size < 0.6 * (root / "FP32" / "tiny.bin").stat().st_size
    runner = open_artifact(root / "FP16" / "tiny.xml", "FP16")
    feed = _feed(5)
    diff = np.abs(runner.run(feed)["output"] - _numpy_forward(model, feed["input"])).max()
    assert 0 < diff < 5e-3


def test_fp16_keeps_what_the_manifest_lists_in_fp32(tmp_path, tiny):
    root, model, _ = tiny
    manifest = load_manifest(
        write_tiny_entry(
            tmp_path / "catalog",
            model,
            extra="",
        )
    )
    text = manifest.path.read_text().replace(
        "openvino: {precisions: [FP32, FP16]}",
        "openvino: {precisions: [FP32, FP16], fp16_keep_fp32: [dense1]}",
    )
    manifest.path.write_text(text)
    manifest = load_manifest(manifest.path)
    ir = onnx_to_ir(model, manifest)
    assert keep_fp32_matches(ir, ["dense1"]) == ["dense1"]
    assert keep_fp32_matches(ir, ["Relu"]) == ["relu"]  # op types match too
    facts = save_ir(ir, tmp_path / "FP16" / "tiny.xml", "FP16", manifest)
    assert facts["fp16_keep_fp32"] == ["dense1"]
    root_xml = ET.parse(tmp_path / "FP16" / "tiny.xml").getroot()
    layers = {layer.get("id"): layer for layer in root_xml.iter("layer")}
    dense = next(lid for lid, layer in layers.items() if layer.get("name") == "dense1")
    feeding = [layers[e.get("from-layer")] for e in root_xml.iter("edge") if e.get("to-layer") == dense]
    weight = next(layer for layer in feeding if layer.get("type") == "Const")
    assert weight.find("data").get("element_type") == "f32"  # the kept op's weights stay f32
    others = [
        layer.find("data").get("element_type")
        for layer in layers.values()
        if layer.get("type") == "Const"
        and layer is not weight
        and layer.find("data").get("element_type") in ("f16", "f32")
    ]
    assert "f16" in others  # the rest is still compressed
    runner = open_artifact(tmp_path / "FP16" / "tiny.xml")
    feed = _feed(5)
    np.testing.assert_allclose(runner.run(feed)["output"], _numpy_forward(model, feed["input"]), atol=5e-3)


def test_ir_runtime_info_carries_labels_and_preprocessing(tiny):
    import json

    import openvino as ov

    root, _, manifest = tiny
    model = ov.Core().read_model(str(root / "FP32" / "tiny.xml"))
    assert json.loads(model.get_rt_info(["zoo", "labels"]).astype(str)) == LABELS
    assert model.get_rt_info(["model_info", "labels"]).astype(str) == " ".join(LABELS)
    preprocessing = json.loads(model.get_rt_info(["zoo", "preprocessing"]).astype(str))
    assert preprocessing["sample_rate"] == 8000 and preprocessing["normalize"] == "zscore"
    assert model.get_rt_info(["zoo", "manifest_sha256"]).astype(str) == manifest.digest


def test_onnx_to_ir_refuses_a_model_without_the_manifests_names(tmp_path, tiny):
    _, _, manifest = tiny
    other = make_tiny_onnx(tmp_path / "renamed.onnx", input_name="audio", output_name="scores")
    with pytest.raises(ZooError, match="input"):
        onnx_to_ir(other, manifest)


def test_save_ir_leaves_no_half_written_folder_on_failure(tmp_path, tiny, monkeypatch):
    import openvino as ov

    root, model, manifest = tiny
    target = tmp_path / "FP32" / "tiny.xml"
    save_ir(onnx_to_ir(model, manifest), target, "FP32", manifest)
    before = target.read_bytes()

    def broken_save(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(ov, "save_model", broken_save)
    with pytest.raises(RuntimeError):
        save_ir(onnx_to_ir(model, manifest), target, "FP32", manifest)
    assert target.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["FP32"]


def test_wrong_feeds_and_missing_files_are_clear_errors(tmp_path, tiny):
    root, model, _ = tiny
    runner = open_artifact(model)
    with pytest.raises(ZooError, match="missing"):
        runner.run({"audio": np.zeros((1, 1, 1, SAMPLES), np.float32)})
    with pytest.raises(UsageError, match="does not exist"):
        open_artifact(tmp_path / "nothing.onnx", "onnx")
    (tmp_path / "model.txt").write_text("x")
    with pytest.raises(UsageError, match="expected an .onnx"):
        open_artifact(tmp_path / "model.txt")
    (tmp_path / "broken.onnx").write_bytes(b"this is not a protobuf")
    with pytest.raises(ZooError, match="ONNX Runtime cannot load"):
        open_artifact(tmp_path / "broken.onnx")
    shutil.copy(root / "FP32" / "tiny.xml", tmp_path / "lonely.xml")
    with pytest.raises(ZooError, match="weights file lonely.bin is missing"):
        open_artifact(tmp_path / "lonely.xml")


def test_feeds_are_cast_to_the_input_type(tiny):
    root, model, _ = tiny
    feed = {"input": _feed(3)["input"].astype(np.float64)}
    for path in (model, root / "FP32" / "tiny.xml"):
        out = open_artifact(path).run(feed)["output"]
        assert out.dtype == np.float32
        np.testing.assert_allclose(out, _numpy_forward(model, feed["input"]), atol=1e-5)
