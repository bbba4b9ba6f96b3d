"""converters.tf1_freeze on a small real TF1 checkpoint made here: strip, bind, restore, freeze, export.

The checkpoint is written by tf.compat.v1.train.Saver from a graph shaped like musicnn's: a
convolution, batch normalisation selected by an `is_training` placeholder (a TF1 cond), a dense
layer and a sigmoid; stale `_output_shapes` attributes are added to its `.meta` as old
TensorFlow versions wrote them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from zoo.errors import ZooError

pytestmark = pytest.mark.xdist_group("tf1")

FRAMES, BINS, CLASSES = 20, 12, 5
IN, TRAINING, OUT = "model/Placeholder:0", "model/Placeholder_1:0", "model/Sigmoid:0"


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    """A TF1 checkpoint (prefix) whose .meta carries stale _output_shapes attributes."""
    from converters import quiet_tensorflow

    quiet_tensorflow()
    import tensorflow as tf
    from tensorflow.core.protobuf import meta_graph_pb2

    folder = tmp_path_factory.mktemp("tf1")
    graph = tf.Graph()
    tf.compat.v1.disable_control_flow_v2()  # Switch/Merge conds, as TF 1.x graphs hold them
    try:
        _build(tf, graph, folder)
    finally:
        tf.compat.v1.enable_control_flow_v2()
    meta = meta_graph_pb2.MetaGraphDef()
    meta.ParseFromString((folder / "model.meta").read_bytes())
    for node in meta.graph_def.node:  # as TF 1.x wrote them: shapes current inference may contradict
        node.attr["_output_shapes"].list.shape.add().unknown_rank = True
    (folder / "model.meta").write_bytes(meta.SerializeToString())
    return folder / "model"


def _build(tf, graph, folder: Path) -> None:
    """musicnn's shape of graph with reference variables (TF 1.x's), saved as a checkpoint in *folder*."""
    with graph.as_default():
        tf.compat.v1.set_random_seed(0)
        with tf.compat.v1.name_scope("model"):
            x = tf.compat.v1.placeholder(tf.float32, [None, FRAMES, BINS])
            training = tf.compat.v1.placeholder(tf.bool)
            kernel = tf.compat.v1.get_variable("kernel", [3, 3, 1, 4], use_resource=False)
            mean = tf.compat.v1.get_variable(
                "mean", [4], initializer=tf.compat.v1.random_uniform_initializer(), use_resource=False
            )
            conv = tf.nn.conv2d(tf.expand_dims(x, 3), kernel, strides=1, padding="SAME")
            batch_mean = tf.reduce_mean(conv, axis=[0, 1, 2])
            centred = conv - tf.compat.v1.cond(training, lambda: batch_mean, lambda: mean)
            pooled = tf.reduce_max(tf.nn.relu(centred), axis=[1, 2])
            dense = tf.compat.v1.get_variable("dense", [4, CLASSES], use_resource=False)
            tf.nn.sigmoid(tf.matmul(pooled, dense))
        session = tf.compat.v1.Session(graph=graph)
        session.run(tf.compat.v1.global_variables_initializer())
        tf.compat.v1.train.Saver().save(session, str(folder / "model"))


def _frozen(checkpoint: Path, bind: bool = True):
    from converters import tf1_freeze as tf1

    meta = tf1.read_meta_graph(checkpoint.with_suffix(".meta"))
    assert tf1.strip_output_shapes(meta) > 0
    if bind:
        tf1.bind_placeholders(meta.graph_def, {TRAINING: False}, "test")
    _, session = tf1.restore_session(meta, checkpoint, "test")
    frozen = tf1.freeze(session, [OUT], "test")
    return tf1.rename_ports(frozen, {"patches": IN}, {"tags": OUT}), session


def _patches(batch: int) -> np.ndarray:
    return np.random.RandomState(batch).rand(batch, FRAMES, BINS).astype(np.float32)


def test_frozen_graph_runs_as_the_restored_session_with_is_training_false(checkpoint):
    from converters import tf1_freeze as tf1

    frozen, _ = _frozen(checkpoint)
    _, session = _frozen(checkpoint, bind=False)
    x = _patches(3)
    expected = session.run(OUT, {IN: x, TRAINING: False})
    got = tf1.FrozenGraph(frozen, ["patches"], ["tags"], "test").run({"patches": x})["tags"]
    np.testing.assert_allclose(got, expected, atol=1e-7)
    # and not as in training (batch statistics): the binding chose the inference branch
    assert np.abs(session.run(OUT, {IN: x, TRAINING: True}) - expected).max() > 1e-4
    assert not any(node.op == "Placeholder" and node.name != "patches" for node in frozen.node)


def test_onnx_and_openvino_from_the_pb_file_match_at_every_batch(checkpoint, tmp_path):
    import onnxruntime as ort
    import openvino as ov

    from converters import tf1_freeze as tf1

    frozen, _ = _frozen(checkpoint)
    source = tf1.FrozenGraph(frozen, ["patches"], ["tags"], "test")
    proto = tf1.export_onnx(frozen, ["patches"], ["tags"], 17, "test")
    assert [i.name for i in proto.graph.input] == ["patches"]
    assert [o.name for o in proto.graph.output] == ["tags"]
    assert not tf1.control_flow_ops(proto)
    onnx_session = ort.InferenceSession(proto.SerializeToString())
    pb = tf1.write_pb(frozen, tmp_path / "frozen.pb")
    model = tf1.openvino_from_pb(pb, ["patches"], ["tags"], "test")
    pb.unlink()  # the converted model holds its weights, not a reference to the file
    compiled = ov.Core().compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    onnx_file = tmp_path / "frozen.onnx"
    onnx_file.write_bytes(proto.SerializeToString())
    from_onnx = tf1.openvino_from_onnx(onnx_file, ["patches"], ["tags"], "test")
    assert [p.get_names() for p in from_onnx.inputs] == [{"patches"}]
    via_onnx = ov.Core().compile_model(from_onnx, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    for batch in (1, 4):
        x = _patches(batch)
        expected = source.run({"patches": x})["tags"]
        assert expected.shape == (batch, CLASSES)
        np.testing.assert_allclose(onnx_session.run(None, {"patches": x})[0], expected, atol=1e-6)
        np.testing.assert_allclose(compiled({"patches": x})[0], expected, atol=1e-6)
        np.testing.assert_allclose(via_onnx({"patches": x})[0], expected, atol=1e-6)


def test_an_unbound_training_cond_is_refused_by_the_onnx_check(checkpoint):
    from converters import tf1_freeze as tf1

    meta = tf1.read_meta_graph(checkpoint.with_suffix(".meta"))
    tf1.strip_output_shapes(meta)
    _, session = tf1.restore_session(meta, checkpoint, "test")
    frozen = tf1.rename_ports(
        tf1.freeze(session, [OUT], "test"), {"patches": IN, "training": TRAINING}, {"tags": OUT}
    )
    with pytest.raises(ZooError, match="control flow .*If"):
        tf1.export_onnx(frozen, ["patches", "training"], ["tags"], 17, "test")


def test_binding_errors_name_the_placeholder(checkpoint):
    from converters import tf1_freeze as tf1

    meta = tf1.read_meta_graph(checkpoint.with_suffix(".meta"))
    with pytest.raises(ZooError, match=r"'model/kernel:0' is not a placeholder.*model/Placeholder_1:0"):
        tf1.bind_placeholders(meta.graph_def, {"model/kernel:0": False}, "test")
    with pytest.raises(ZooError, match="is boolean; bind it to true or false"):
        tf1.bind_placeholders(meta.graph_def, {TRAINING: 0}, "test")
    with pytest.raises(ZooError, match="not a readable TF1 MetaGraphDef"):
        tf1.read_meta_graph(checkpoint.with_suffix(".index"))


def _manifest(**extra):
    from zoo.manifest import Manifest

    return Manifest.model_validate(
        {
            "name": "tiny-tf1",
            "version": "1.0.0",
            "description": "a small TF1 checkpoint",
            "task": "audio-tagging",
            "license": {"name": "MIT"},
            "framework": "tf1-checkpoint",
            "files": [
                {"name": f"tiny.{part}", "sha256": "0" * 64, "sources": [{"url": "file:///unused"}]}
                for part in ("meta", "index", "data-00000-of-00001")
            ],
            "tf1": {"tensors": {"patches": IN, "tags": OUT}, "bind": {TRAINING: False}},
            "inputs": [{"name": "patches", "shape": ["batch", FRAMES, BINS]}],
            "outputs": [{"name": "tags", "shape": ["batch", CLASSES]}],
            "audio": {"sample_rate": 16000},
            "labels": {"file": "unused.txt", "count": CLASSES},
            "quantize": {"enabled": False},
            "verify": {"tolerance": {k: {"budget": "derived"} for k in ("onnx", "FP32", "FP16")}},
            **extra,
        }
    )


def test_the_converter_restores_files_of_any_names_under_one_prefix(checkpoint, tmp_path):
    from zoo.errors import ManifestError, UsageError
    from zoo.plugins import converter_for

    files = {
        f"tiny.{part}": checkpoint.with_name(f"model.{part}")
        for part in ("meta", "index", "data-00000-of-00001")
    }
    manifest = _manifest()
    converter = converter_for(manifest)
    assert converter.set_threads(1)
    source = converter.load(files, manifest)
    x = _patches(2)
    _, session = _frozen(checkpoint, bind=False)
    np.testing.assert_allclose(
        source.run({"patches": x})["tags"], session.run(OUT, {IN: x, TRAINING: False}), atol=1e-7
    )
    converter.export_onnx(source, tmp_path / "tiny.onnx", manifest)
    import onnx

    proto = onnx.load(str(tmp_path / "tiny.onnx"))
    assert proto.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "batch"
    with pytest.raises(ManifestError, match=r"missing \.index"):
        converter.load({k: v for k, v in files.items() if not k.endswith(".index")}, manifest)
    with pytest.raises(UsageError, match="--weights takes one file"):
        converter.load({**files, "weights": files["tiny.meta"]}, manifest)
