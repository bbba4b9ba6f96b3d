"""converters/lasagne.py: Kahl's Python 2 pickle, read without running anything, on the PyTorch rebuild."""

from __future__ import annotations

import os
import pickle
import pickletools
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch
import torch.nn.functional as F
from scipy.signal import convolve2d

from converters import lasagne
from converters.networks import build
from zoo.catalog import Catalog
from zoo.errors import UsageError, ZooError
from zoo.frontends import prepare_inputs
from zoo.plugins import converter_for
from zoo.probes import probe_set
from zoo.safe_pickle import UnsafePickleError, safe_load_file

pytestmark = pytest.mark.xdist_group("lasagne")

converter = converter_for("lasagne")


@pytest.fixture(scope="module")
def manifest():
    return Catalog().get("kahl-aed")


@pytest.fixture(scope="module")
def reference(tmp_path_factory, manifest):
    """Seeded reference pickle, the model loaded from it, and its ONNX export."""
    folder = tmp_path_factory.mktemp("kahl")
    written = converter.write_reference_weights(manifest, folder, seed=0)
    source = converter.load(written, manifest)
    onnx_path = folder / "export" / "kahl-aed.onnx"
    onnx_path.parent.mkdir()
    converter.export_onnx(source, onnx_path, manifest)
    return {
        "files": written,
        "path": written["AED_Example_Run_model.pkl"],
        "source": source,
        "onnx": onnx_path,
    }


def test_reference_pickle_has_the_upstream_structure(reference, manifest):
    data = safe_load_file(reference["path"])
    assert set(data) == {"net", "classes", "run_name", "epoch", "im_size", "im_dim"}
    assert tuple(data["im_size"]) == (512, 256) and data["im_dim"] == 1
    assert len(data["classes"]) == 20 and "schreien" in data["classes"]
    assert data["classes"] == sorted(data["classes"])  # upstream sorts class folders alphabetically
    assert all(c == "schreien" or c.startswith("class_") for c in data["classes"])
    assert len(data["net"]) == 37 and all(a.dtype == np.float32 for a in data["net"])
    assert data["net"][0].shape == (64, 1, 7, 7)  # conv1 W
    assert [a.shape for a in data["net"][1:5]] == [(64,)] * 4  # BN beta, gamma, mean, inv_std
    assert data["net"][-2].shape == (512, 20) and data["net"][-1].shape == (20,)  # dense W (in, out), b
    assert sum(a.size for a in data["net"]) == 23_456_724 + 6016
    assert manifest.read_labels(source_dir=reference["path"].parent) == data["classes"]


def test_reference_pickle_is_written_as_python_2_wrote_it(reference):
    raw = reference["path"].read_bytes()
    assert raw[:2] == b"\x80\x02"  # protocol 2
    ops = {op.name for op, _arg, _pos in pickletools.genops(raw)}
    globals_used = {arg for op, arg, _pos in pickletools.genops(raw) if op.name == "GLOBAL"}
    assert globals_used == {"numpy.core.multiarray _reconstruct", "numpy ndarray", "numpy dtype"}
    assert not ops & {"BINUNICODE", "SHORT_BINUNICODE", "BINUNICODE8"}  # Python 2 str is bytes


def test_pickle_round_trip_reproduces_the_network(reference, manifest, tmp_path):
    source = reference["source"]
    arrays = lasagne.state_dict_to_lasagne(source.module)
    data = safe_load_file(reference["path"])
    for ours, stored in zip(arrays, data["net"], strict=True):
        np.testing.assert_array_equal(ours, stored)
    copy = tmp_path / "AED_Example_Run_model.pkl"
    copy.write_bytes(lasagne.python2_pickle({**data, "net": arrays}))
    again = converter.load({copy.name: copy}, manifest)
    feed = prepare_inputs(manifest, probe_set(44100, 3.0)[3].audio, 44100)[0]
    np.testing.assert_array_equal(again.run(feed)["probabilities"], source.run(feed)["probabilities"])
    assert again.classes == data["classes"]


def test_lasagne_convolution_is_flipped_onto_torch():
    """Lasagne's Conv2DLayer convolves (flip_filters=True); the mapped torch weight must give the same."""
    rng = np.random.RandomState(0)
    kernel = rng.standard_normal((1, 1, 7, 7)).astype(np.float32)
    image = rng.standard_normal((20, 24)).astype(np.float32)
    expected = convolve2d(image, kernel[0, 0], mode="same")
    weight = torch.from_numpy(lasagne.to_torch("flip", kernel))
    got = F.conv2d(torch.from_numpy(image)[None, None], weight, padding=3)[0, 0].numpy()
    np.testing.assert_allclose(got, expected, atol=1e-4)


def test_dense_weights_are_transposed(reference):
    data = safe_load_file(reference["path"])
    np.testing.assert_array_equal(data["net"][-2].T, reference["source"].module.fc3.weight.detach().numpy())


def test_export_matches_the_rebuild_in_onnx_runtime(reference, manifest):
    session = ort.InferenceSession(str(reference["onnx"]), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["spectrogram"]
    assert [o.name for o in session.get_outputs()] == ["probabilities"]
    from zoo.numerics import float64_model, judge_artifact, reduction_profile, run_probes, yardstick

    feeds = [[prepare_inputs(manifest, probe.audio, 44100)[0]] for probe in probe_set(44100, 3.0)[:5]]
    source = [[reference["source"].run(call) for call in calls] for calls in feeds]
    exported = [[{"probabilities": session.run(None, call)[0]} for call in calls] for calls in feeds]
    for src, got in zip(source, exported, strict=True):
        assert got[0]["probabilities"].argmax() == src[0]["probabilities"].argmax()
    # within the budget the manifest's policy derives from the source's own float32 error
    assert manifest.verify.tolerance["onnx"].budget == "derived"
    exact = run_probes(float64_model(manifest, reference["source"], reference["onnx"]), feeds, manifest)
    stick = yardstick(manifest, source, exact)["probabilities"]
    verdict = judge_artifact("onnx", stick, source, exported, reduction_profile(reference["onnx"]))
    assert verdict.passed, verdict.as_dict()


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


def test_malicious_pickle_is_refused_by_the_cli(tmp_path):
    """`zoo convert --weights evil.pkl` exits non-zero with one paragraph and no traceback; nothing runs."""
    from tests.conftest import run_zoo

    marker = tmp_path / "ran"
    evil = tmp_path / "evil.pkl"
    evil.write_bytes(pickle.dumps({"net": [_RunsCode(marker)], "classes": ["schreien"]}, protocol=2))
    result = run_zoo("convert", "--name", "kahl-aed", "--weights", str(evil), "-o", str(tmp_path / "out"))
    assert result.returncode != 0
    assert "posix.system" in result.stderr and "Traceback" not in result.stderr
    assert not marker.exists()
    assert not (tmp_path / "out" / "kahl-aed" / "onnx" / "kahl-aed.onnx").exists()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d.update(net=d["net"][:-1]), "has 36 parameter arrays, the AED network needs 37"),
        (
            lambda d: d["net"].__setitem__(0, np.zeros((64, 3, 7, 7), np.float32)),
            r"net\[0\] \(conv1.weight\) has shape",
        ),
        (lambda d: d.update(classes=d["classes"][:5]), "classes has 5 names"),
        (lambda d: d.update(im_size=(256, 256)), "im_size is 256 x 256"),
        (lambda d: d.update(net={"W": 1}), "expected the Lasagne parameter arrays"),
        (lambda d: d.pop("classes"), "lacks classes"),
    ],
)
def test_damaged_pickles_are_clear_errors(reference, manifest, tmp_path, change, message):
    data = safe_load_file(reference["path"])
    data["net"] = list(data["net"])
    change(data)
    path = tmp_path / "AED_Example_Run_model.pkl"
    path.write_bytes(lasagne.python2_pickle(data))
    with pytest.raises(UsageError, match=message):
        converter.load({path.name: path}, manifest)


def test_not_a_pickle(manifest, tmp_path):
    path = tmp_path / "AED_Example_Run_model.pkl"
    path.write_bytes(b"<!DOCTYPE html><html>login required</html>")
    with pytest.raises(ZooError, match="not a readable model pickle"):
        converter.load({path.name: path}, manifest)


def test_multi_label_network_maps_too(manifest):
    from zoo.manifest import Network

    module = build(Network(name="kahl_aed", args={"num_classes": 7, "multi_label": True}))
    arrays = lasagne.state_dict_to_lasagne(module)
    state = lasagne.lasagne_to_state_dict(module, arrays, "memory")
    assert all(torch.equal(state[k], v) for k, v in module.state_dict().items())
