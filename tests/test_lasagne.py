"""converters/lasagne.py: Kahl's Python 2 pickle of a Lasagne layer graph, read without running anything,
described from its own graph and rebuilt in PyTorch."""

from __future__ import annotations

import os
import pickle
import re
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch
from scipy.signal import convolve2d, correlate2d

from converters import lasagne
from converters.lasagne_graph import Network, Step, describe, with_shapes
from converters.lasagne_pickle import instance, python2_pickle, stand_in_function, upstream_pickle
from converters.lasagne_torch import build as build_rebuild
from converters.networks import build
from zoo.catalog import Catalog
from zoo.errors import UsageError, ZooError
from zoo.frontends import prepare_inputs
from zoo.plugins import converter_for
from zoo.probes import probe_set
from zoo.safe_pickle import UnsafePickleError, safe_loads

pytestmark = pytest.mark.xdist_group("lasagne")

converter = converter_for("lasagne")


@pytest.fixture(scope="module")
def manifest():
    return Catalog().get("kahl-aed")


@pytest.fixture(scope="module")
def reference(tmp_path_factory, manifest):
    """Seeded reference pickle (upstream's layout, CudaNdarray values), the model loaded from it, its ONNX export."""
    folder = tmp_path_factory.mktemp("kahl")
    written = converter.write_reference_weights(manifest, folder, seed=0)
    path = written["AED_Example_Run_model.pkl"]
    source = converter.load(written, manifest)
    onnx_path = folder / "export" / "kahl-aed.onnx"
    onnx_path.parent.mkdir()
    converter.export_onnx(source, onnx_path, manifest)
    return {"files": written, "path": path, "raw": path.read_bytes(), "source": source, "onnx": onnx_path}


def _feed(manifest, index=3):
    return prepare_inputs(manifest, probe_set(44100, 3.0)[index].audio, 44100)[0]


def test_reference_pickle_has_the_upstream_structure(reference, manifest):
    data = safe_loads(reference["raw"], "reference")
    assert set(data) == {"net", "classes", "run_name", "epoch", "im_size", "im_dim"}
    assert tuple(data["im_size"]) == (512, 256) and data["im_dim"] == 1
    assert len(data["classes"]) == 20 and "schreien" in data["classes"]
    assert data["classes"] == sorted(data["classes"])  # upstream sorts class folders alphabetically
    assert all(c == "schreien" or c.startswith("class_") for c in data["classes"])
    # `net` is the output layer object: the graph, not a list of arrays
    assert repr(data["net"]) == "<pickled lasagne.layers.dense.DenseLayer>"
    network = describe(data["net"], "reference")
    arrays = [a for step in network.steps for a in step.arrays.values()]
    assert len(arrays) == 37 and all(a.dtype == np.float32 for a in arrays)
    assert arrays[0].shape == (64, 1, 7, 7)  # conv1 W
    assert [a.shape for a in arrays[1:5]] == [(64,)] * 4  # BN beta, gamma, mean, inv_std
    assert arrays[-2].shape == (512, 20) and arrays[-1].shape == (20,)  # dense W (in, out), b
    assert sum(a.size for a in arrays) == 23_456_724 + 6016
    assert network.steps[0].params["flip_filters"] is True and network.steps[0].params["padding"] == (3, 3)
    assert [s.kind for s in network.steps[:4]] == ["conv", "batchnorm", "activation", "pool"]
    assert network.output_activation == "softmax"
    assert manifest.read_labels(source_dir=reference["path"].parent) == data["classes"]


def protocol_0_opcodes(raw: bytes) -> tuple[set[str], set[str]]:
    """(opcodes, GLOBAL names) of a pickle that must use protocol 0 opcodes only.

    pickletools cannot walk it: it decodes Python 2 byte strings (STRING) as ASCII.
    """
    lines = {"c": 2, "i": 2, "S": 1, "V": 1, "I": 1, "L": 1, "F": 1, "p": 1, "g": 1, "P": 1}
    bare = set("(tldRbsaN.02")
    ops: set[str] = set()
    names: set[str] = set()
    pos = 0
    while pos < len(raw):
        op = chr(raw[pos])
        ops.add(op)
        if op in lines:
            end = raw.index(b"\n", pos)
            if lines[op] == 2:
                second = raw.index(b"\n", end + 1)
                names.add(f"{raw[pos + 1 : end].decode()} {raw[end + 1 : second].decode()}")
                end = second
            pos = end + 1
        else:
            assert op in bare, f"opcode {op!r} at {pos} is not a protocol 0 opcode"
            pos += 1
    return ops, names


def test_reference_pickle_is_written_as_python_2_wrote_it(reference):
    raw = reference["raw"]
    ops, globals_used = protocol_0_opcodes(raw)  # protocol 0 throughout (no PROTO, no binary opcodes)
    assert raw[:1] == b"(" and raw.endswith(b".")
    assert "V" not in ops and "S" in ops  # Python 2 str is bytes (STRING), never unicode
    assert {
        "copy_reg _reconstructor",
        "__builtin__ object",
        "collections OrderedDict",
        "__builtin__ set",
        "lasagne.layers.input InputLayer",
        "lasagne.layers.conv Conv2DLayer",
        "lasagne.layers.normalization BatchNormLayer",
        "lasagne.layers.special NonlinearityLayer",
        "lasagne.layers.pool MaxPool2DLayer",
        "lasagne.layers.dense DenseLayer",
        "lasagne.layers.noise DropoutLayer",
        "lasagne.nonlinearities rectify",
        "lasagne.nonlinearities linear",  # identity is the function `linear`
        "lasagne.nonlinearities softmax",
        "theano.sandbox.cuda.var CudaNdarraySharedVariable",
        "theano.sandbox.cuda.type CudaNdarrayType",
        "theano.sandbox.cuda.type CudaNdarray_unpickler",
        "theano.sandbox.rng_mrg MRG_RandomStreams",
        "theano.gof.link Container",
        "numpy.core.multiarray _reconstruct",
        "numpy ndarray",
        "numpy dtype",
    } <= globals_used


def test_rebuild_equals_the_fixed_architecture(reference, manifest):
    """The graph-built module computes what converters/networks/kahl_aed.py computes with the same arrays."""
    network = reference["source"].network
    fixed = build(manifest.network)
    arrays = [(step.kind, key, array) for step in network.steps for key, array in step.arrays.items()]
    state = {}
    convs = [f"conv{i}" for i in range(1, 6)]
    layers = iter(convs + ["fc1", "fc2", "fc3"])
    norms = iter(f"bn{i}" for i in range(1, 8))
    for kind, key, array in arrays:
        if kind == "conv":
            state[f"{next(layers)}.weight"] = torch.from_numpy(np.ascontiguousarray(array[:, :, ::-1, ::-1]))
        elif kind == "dense" and key == "W":
            layer = next(layers)
            state[f"{layer}.weight"] = torch.from_numpy(np.ascontiguousarray(array.T))
        elif kind == "dense":
            state[f"{layer}.bias"] = torch.from_numpy(array)
        else:
            if key == "beta":
                norm = next(norms)
            state[f"{norm}.{key}"] = torch.from_numpy(array)
    fixed.load_state_dict(state, strict=True)
    feed = _feed(manifest)
    with torch.no_grad():
        expected = fixed(torch.from_numpy(feed["spectrogram"])).numpy()
    np.testing.assert_allclose(reference["source"].run(feed)["probabilities"], expected, rtol=1e-5, atol=1e-7)


#: five narrow convolutions: a small network in upstream's layout, quick to write, read and run
NARROW = (
    ("conv1", 1, 8, 7, 2),
    ("conv2", 8, 16, 5, 1),
    ("conv3", 16, 16, 3, 1),
    ("conv4", 16, 32, 3, 1),
    ("conv5", 32, 32, 3, 1),
)


def test_cpu_cuda_and_gpuarray_variants_load_to_the_same_network(manifest, tmp_path):
    """The same seeded graph pickled with CPU arrays or either GPU back end's arrays gives the same model."""
    outputs = []
    feed = _feed(manifest)
    for gpu, marker in (
        (None, "theano.tensor.sharedvar TensorSharedVariable"),
        ("cuda", "theano.sandbox.cuda.type CudaNdarray_unpickler"),
        ("gpuarray", "theano.gpuarray.type GpuArray_unpickler"),
    ):
        path = tmp_path / str(gpu) / "AED_Example_Run_model.pkl"
        path.parent.mkdir()
        network = lasagne.manifest_network(manifest, NARROW)
        path.write_bytes(lasagne.seeded_pickle(manifest, 5, network=network, gpu=gpu))
        _ops, globals_used = protocol_0_opcodes(path.read_bytes())
        assert marker in globals_used
        source = converter.load({path.name: path}, manifest)
        assert source.classes == lasagne.reference_classes(20)
        outputs.append(source.run(feed)["probabilities"])
    np.testing.assert_array_equal(outputs[0], outputs[1])
    np.testing.assert_array_equal(outputs[0], outputs[2])


def _tiny(flip: bool) -> Network:
    conv = {"in_channels": 1, "out_channels": 1, "kernel": (7, 7), "stride": (1, 1), "padding": (3, 3),
            "dilation": (1, 1), "flip_filters": flip, "activation": "linear", "activation_arg": None}  # fmt: skip
    rng = np.random.RandomState(0)
    step = Step(
        "conv",
        "lasagne.layers.conv.Conv2DLayer",
        None,
        conv,
        {"W": rng.standard_normal((1, 1, 7, 7)).astype(np.float32)},
    )
    return with_shapes(Network((None, 1, 20, 24), [step]))


@pytest.mark.parametrize(("flip", "reference_op"), [(True, convolve2d), (False, correlate2d)])
def test_lasagne_convolution_maps_onto_torch(flip, reference_op):
    """flip_filters=True convolves (kernel flipped onto torch's correlation), False correlates; both read from the pickle."""
    network = _tiny(flip)
    data = safe_loads(upstream_pickle(network, ["a"], (24, 20), 1), "tiny")
    read = describe(data["net"], "tiny")
    assert read.steps[0].params["flip_filters"] is flip and read.steps[0].params["padding"] == (3, 3)
    image = np.random.RandomState(1).standard_normal((20, 24)).astype(np.float32)
    expected = reference_op(image, network.steps[0].arrays["W"][0, 0], mode="same")
    with torch.no_grad():
        got = build_rebuild(read)(torch.from_numpy(image)[None, None])[0, 0].numpy()
    np.testing.assert_allclose(got, expected, atol=1e-4)


def test_dense_weights_are_transposed(reference):
    network = reference["source"].network
    final = reference["source"].module.final_layer
    np.testing.assert_array_equal(network.steps[-1].arrays["W"].T, final.weight.detach().numpy())


def test_export_matches_the_rebuild_in_onnx_runtime(reference, manifest):
    session = ort.InferenceSession(str(reference["onnx"]), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["spectrogram"]
    assert [o.name for o in session.get_outputs()] == ["probabilities"]
    _judge(manifest, reference["source"], reference["onnx"], session)


def _judge(manifest, source, onnx_path, session, probes=5):
    from zoo.numerics import float64_model, judge_artifact, reduction_profile, run_probes, yardstick

    feeds = [[prepare_inputs(manifest, probe.audio, 44100)[0]] for probe in probe_set(44100, 3.0)[:probes]]
    ours = [[source.run(call) for call in calls] for calls in feeds]
    exported = [[{"probabilities": session.run(None, call)[0]} for call in calls] for calls in feeds]
    for src, got in zip(ours, exported, strict=True):
        assert got[0]["probabilities"].argmax() == src[0]["probabilities"].argmax()
    # within the budget the manifest's policy derives from the source's own float32 error
    assert manifest.verify.tolerance["onnx"].budget == "derived"
    exact = run_probes(float64_model(manifest, source, onnx_path), feeds, manifest)
    stick = yardstick(manifest, ours, exact)["probabilities"]
    verdict = judge_artifact("onnx", stick, ours, exported, reduction_profile(onnx_path))
    assert verdict.passed, verdict.as_dict()


def test_a_different_architecture_converts_from_its_own_description(manifest, tmp_path, capsys):
    """Four (narrower) convolutions instead of five: rebuilt from the pickle, exported, within budget; reported."""
    convs = (
        ("conv1", 1, 16, 7, 2),
        ("conv2", 16, 32, 5, 1),
        ("conv3", 32, 64, 3, 1),
        ("conv4", 64, 96, 3, 1),
    )
    path = tmp_path / "AED_Example_Run_model.pkl"
    path.write_bytes(
        lasagne.seeded_pickle(manifest, 3, network=lasagne.manifest_network(manifest, convs), gpu=None)
    )
    source = converter.load({path.name: path}, manifest)
    assert sum(s.kind == "conv" for s in source.network.steps) == 4
    dense = [s for s in source.network.steps if s.kind == "dense"]
    assert dense[0].params["in_features"] == 96 * 8 * 16  # 256 x 512 halved by the stride and by 4 pools
    assert len(source.notes) == 1 and "4 convolutions (5 in the manifest)" in source.notes[0]
    assert "Conv2DLayer(in_channels=1, out_channels=16" in source.notes[0]
    assert "zoo: warning:" in capsys.readouterr().err
    onnx_path = tmp_path / "four.onnx"
    converter.export_onnx(source, onnx_path, manifest)
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    _judge(manifest, source, onnx_path, session, probes=3)


class _RunsCode:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_malicious_pickle_is_refused_and_runs_nothing(manifest, tmp_path):
    marker = tmp_path / "ran"
    evil = tmp_path / "AED_Example_Run_model.pkl"
    evil.write_bytes(pickle.dumps({"net": [_RunsCode(marker)], "classes": ["schreien"]}, protocol=2))
    with pytest.raises(UnsafePickleError, match=r"refused .* asks for posix\.system.*nothing was run"):
        converter.load({evil.name: evil}, manifest)
    assert not marker.exists()


def _evil_upstream_layout(tmp_path: Path, where: str) -> tuple[Path, Path]:
    """A protocol-0 pickle in upstream's layout with one payload that would touch a marker file."""
    marker = tmp_path / "ran"
    network = _tiny(True)
    from converters.lasagne_pickle import layer_graph

    net = layer_graph(network)
    if where == "nonlinearity":
        net.nonlinearity = _RunsCode(marker)  # a __reduce__ to os.system in place of a nonlinearity
    elif where == "weights":
        net.W.container.storage = [_RunsCode(marker)]
    else:  # a GLOBAL outside the allow-list, as a layer's attribute
        net.convolution = stand_in_function("subprocess", "check_call")
    evil = tmp_path / "AED_Example_Run_model.pkl"
    evil.write_bytes(python2_pickle({"net": net, "classes": ["schreien"], "im_size": (24, 20), "im_dim": 1}))
    return evil, marker


@pytest.mark.parametrize(
    ("where", "named"),
    [("nonlinearity", "posix.system"), ("weights", "posix.system"), ("global", "subprocess.check_call")],
)
def test_malicious_upstream_layout_is_refused_and_runs_nothing(manifest, tmp_path, where, named):
    evil, marker = _evil_upstream_layout(tmp_path, where)
    assert evil.read_bytes()[:1] == b"("  # protocol 0, as upstream's file
    with pytest.raises(
        UnsafePickleError,
        match=rf"{re.escape(str(evil))}: refused .* asks for {re.escape(named)}.*nothing was run",
    ):
        converter.load({evil.name: evil}, manifest)
    assert not marker.exists()


def test_malicious_pickle_is_refused_by_the_cli(tmp_path):
    """`zoo convert --weights evil.pkl` exits 2 with one paragraph naming file and class; nothing runs."""
    from tests.conftest import run_zoo

    evil, marker = _evil_upstream_layout(tmp_path, "nonlinearity")
    result = run_zoo("convert", "--name", "kahl-aed", "--weights", str(evil), "-o", str(tmp_path / "out"))
    assert result.returncode == 2
    assert "posix.system" in result.stderr and evil.name in result.stderr and "Traceback" not in result.stderr
    assert not marker.exists()
    assert not (tmp_path / "out" / "kahl-aed" / "onnx" / "kahl-aed.onnx").exists()


def _small_pickle(tmp_path: Path, **changes) -> Path:
    network = _tiny(True)
    data = {
        "net": None,
        "classes": ["schreien"],
        "run_name": "x",
        "epoch": 1,
        "im_size": (512, 256),
        "im_dim": 1,
    }
    data.update(changes)
    from converters.lasagne_pickle import layer_graph

    data["net"] = data["net"] if data["net"] is not None else layer_graph(network)
    path = tmp_path / "AED_Example_Run_model.pkl"
    path.write_bytes(python2_pickle(data))
    return path


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"classes": ["a", "b"]}, r"field classes has 2 names, but .* expects 20"),
        ({"im_size": (256, 256)}, r"field im_size is 256 x 256 \(width x height\)"),
        ({"im_dim": 3}, r"field im_dim is 3 \(image channels\), but .* has 1 channel"),
        ({"net": [1, 2]}, r"field net, layer 1 from the output: expected a Lasagne layer, found list"),
    ],
)
def test_damaged_pickles_are_clear_errors(manifest, tmp_path, change, message):
    if "classes" not in change:
        change = {"classes": [f"c{i}" for i in range(20)], **change}
    path = _small_pickle(tmp_path, **change)
    with pytest.raises(UsageError, match=message) as caught:
        converter.load({path.name: path}, manifest)
    assert caught.value.exit_code == 2 and str(path) in caught.value.message


def test_a_graph_that_does_not_fit_the_manifest_input_is_refused(manifest, tmp_path):
    path = _small_pickle(tmp_path, classes=[f"c{i}" for i in range(20)], im_size=(512, 256))
    with pytest.raises(UsageError, match=r"field net: the InputLayer takes \(None, 1, 20, 24\)"):
        converter.load({path.name: path}, manifest)


def test_wrong_weight_shapes_name_the_layer(manifest):
    from converters.lasagne_pickle import layer_graph

    net = layer_graph(_tiny(True))
    net.W.container.storage = [np.zeros((1, 3, 7, 7), np.float32)]
    data = safe_loads(python2_pickle({"net": net}), "wrong.pkl")
    with pytest.raises(
        UsageError, match=r"wrong.pkl: field net, layer 2 \(Conv2DLayer\): W has shape \(1, 3, 7, 7\)"
    ):
        describe(data["net"], "wrong.pkl")


def test_missing_classes_and_not_a_pickle(manifest, tmp_path):
    path = tmp_path / "AED_Example_Run_model.pkl"
    path.write_bytes(python2_pickle({"net": None}))
    with pytest.raises(UsageError, match="lacks classes"):
        converter.load({path.name: path}, manifest)
    path.write_bytes(b"<!DOCTYPE html><html>login required</html>")
    with pytest.raises(ZooError, match="not a readable model pickle"):
        converter.load({path.name: path}, manifest)


def test_multi_label_network_has_a_sigmoid_head(manifest):
    from zoo.manifest import Network as ManifestNetwork

    multi = manifest.model_copy(
        update={"network": ManifestNetwork(name="kahl_aed", args={"num_classes": 20, "multi_label": True})}
    )
    network = lasagne.manifest_network(multi)
    assert network.output_activation == "sigmoid"
    assert lasagne.cross_check(network, multi, "multi") == []
    assert len(lasagne.cross_check(network, manifest, "multi")) == 1  # softmax in the manifest
    narrow = lasagne.manifest_network(multi, NARROW)
    data = safe_loads(upstream_pickle(narrow, [f"c{i}" for i in range(20)], (512, 256), 1), "multi")
    read = describe(data["net"], "multi")
    assert read.output_activation == "sigmoid" and build_rebuild(read).multi_label


def test_nothing_is_imported_from_theano_or_lasagne(reference):
    import sys

    assert not any(name.split(".")[0] in ("theano", "lasagne") for name in sys.modules)
    assert instance("lasagne.layers.conv", "Conv2DLayer").__class__.__module__ == "lasagne.layers.conv"
