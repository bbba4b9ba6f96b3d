"""The keras converter on YAMNet: front end, reference weights, loading, and both exports.

Everything runs the real frameworks: TensorFlow (tf_keras) is the reference, ONNX Runtime runs
the tf2onnx export, OpenVINO runs the IR made by its TensorFlow front end. One YAMNet with seeded
reference weights is built per session and shared.
"""

from __future__ import annotations

import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import MANIFESTS
from zoo.errors import ZooError
from zoo.plugins import converter_for

pytestmark = pytest.mark.xdist_group("tf-yamnet")

SAMPLES = 15600


def probe(name: str, seconds: float = SAMPLES / 16000) -> np.ndarray:
    from zoo.probes import probe_set

    found = {p.name: p.audio for p in probe_set(16000, seconds)}
    return found[name][:SAMPLES]


@pytest.fixture(scope="session")
def manifest():
    from zoo.manifest import load_manifest

    return load_manifest(MANIFESTS / "yamnet.yaml")


@pytest.fixture(scope="session")
def yamnet(manifest, tmp_path_factory):
    """Reference weights written once, loaded back through the converter, exported both ways."""

    folder = tmp_path_factory.mktemp("yamnet")
    written = converter_for("keras").write_reference_weights(manifest, folder, seed=3)
    source = converter_for("keras").load(written, manifest)
    onnx_path = folder / "yamnet.onnx"
    converter_for("keras").export_onnx(source, onnx_path, manifest)
    return {
        "folder": folder,
        "weights": written["yamnet.h5"],
        "source": source,
        "onnx": onnx_path,
        "openvino": converter_for("keras").to_openvino(source, written, manifest),
    }


def test_geometry_follows_upstream_padding():
    from converters.networks import yamnet

    one = yamnet.geometry(100)
    assert (one.padded_samples, one.frames, one.patches) == (15600, 96, 1)
    assert yamnet.geometry(15600).padded_samples == 15600
    # 3 s: 48000 samples -> 15600 + ceil(32400 / 7680) * 7680 = 54000 -> 6 patches, as upstream pads
    three = yamnet.geometry(48000)
    assert (three.padded_samples, three.patches, three.frames) == (54000, 6, 336)
    assert yamnet.geometry(15601).patches == 2


def test_front_end_matches_a_float64_log_mel(yamnet):
    """Framing, periodic Hann, |rFFT|, upstream's mel matrix, log offset and patching, in float64."""
    import tensorflow as tf

    from converters.networks import yamnet as net

    audio = probe("pink-noise")
    log_mel, patches = net.log_mel_patches(tf.constant(audio), SAMPLES)
    n = np.arange(net.STFT_WINDOW)
    hann = 0.5 - 0.5 * np.cos(2 * np.pi * n / net.STFT_WINDOW)  # periodic
    frames = np.stack([audio[i * 160 : i * 160 + 400].astype(np.float64) for i in range(96)]) * hann
    magnitude = np.abs(np.fft.rfft(frames, n=512, axis=1))
    mel = tf.signal.linear_to_mel_weight_matrix(64, 257, 16000, 125.0, 7500.0).numpy().astype(np.float64)
    expected = np.log(magnitude @ mel + 0.001)
    assert log_mel.shape == (96, 64) and patches.shape == (1, 96, 64)
    assert np.abs(log_mel.numpy() - expected).max() < 1e-4
    assert np.array_equal(patches.numpy()[0], log_mel.numpy())


def test_reference_weights_have_upstream_names_and_shapes_and_follow_the_seed(manifest, yamnet, tmp_path):
    import h5py

    with h5py.File(yamnet["weights"], "r") as handle:
        names = [_text(n) for n in handle.attrs["layer_names"]]
        assert {
            "layer1/conv",
            "layer1/conv/bn",
            "layer2/depthwise_conv",
            "layer14/pointwise_conv/bn",
            "logits",
        } <= set(names)
        assert handle["layer1/conv"]["layer1/conv"]["kernel:0"].shape == (3, 3, 1, 32)
        assert handle["layer14/depthwise_conv"]["layer14/depthwise_conv"]["depthwise_kernel:0"].shape == (
            3,
            3,
            1024,
            1,
        )
        assert handle["logits"]["logits"]["kernel:0"].shape == (1024, 521)
        bn = handle["layer1/conv/bn"]["layer1/conv/bn"]
        assert sorted(bn) == ["beta:0", "moving_mean:0", "moving_variance:0"]  # center=True, scale=False
        first = handle["logits"]["logits"]["kernel:0"][()]
    total = sum(
        int(np.prod(w.shape)) for w in yamnet["source"].model.trainable_weights if "beta" not in w.name
    )
    assert total == manifest.parameters == 3718537
    again = converter_for("keras").write_reference_weights(manifest, tmp_path / "again", seed=3)["yamnet.h5"]
    other = converter_for("keras").write_reference_weights(manifest, tmp_path / "other", seed=4)["yamnet.h5"]
    with h5py.File(again, "r") as a, h5py.File(other, "r") as b:
        assert np.array_equal(a["logits"]["logits"]["kernel:0"][()], first)
        assert not np.array_equal(b["logits"]["logits"]["kernel:0"][()], first)


def test_source_model_gives_spread_scores_with_manifest_shapes(yamnet, manifest):
    source = yamnet["source"]
    assert source.loaded == "by name"
    outputs = source.run({"waveform": probe("white-noise")})
    assert {k: list(v.shape) for k, v in outputs.items()} == {o.name: o.shape for o in manifest.outputs}
    scores = outputs["scores"]
    assert 0.0 < scores.min() and scores.max() < 1.0
    assert 0.02 < float(np.median(scores)) < 0.5  # neither saturated nor dead
    sine = source.run({"waveform": probe("sine-1000")})["scores"]
    assert set(np.argsort(-sine[0])[:5]) != set(
        np.argsort(-scores[0])[:5]
    )  # different sounds rank differently


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _renamed_copy(path: Path, target: Path, old: str, new: str) -> Path:
    import h5py

    shutil.copy(path, target)
    with h5py.File(target, "r+") as handle:
        handle.move(old, new)
        handle[new].move(old, new)
        names = [_text(n) for n in handle.attrs["layer_names"]]
        handle.attrs["layer_names"] = [(new if n == old else n).encode() for n in names]
        group = handle[new]
        group.attrs["weight_names"] = [
            _text(w).replace(old, new).encode() for w in group.attrs["weight_names"]
        ]
    return target


def test_weights_with_other_names_load_in_order_like_upstream(yamnet, manifest, tmp_path):
    """A file whose classifier is called 'dense' (Keras' default name) still loads, layer by layer."""

    renamed = _renamed_copy(yamnet["weights"], tmp_path / "yamnet.h5", "logits", "dense")
    source = converter_for("keras").load({"yamnet.h5": renamed}, manifest)
    assert source.loaded == "in order"
    audio = {"waveform": probe("chirp")}
    assert np.array_equal(source.run(audio)["scores"], yamnet["source"].run(audio)["scores"])


def test_weights_missing_layers_or_not_hdf5_are_refused(yamnet, manifest, tmp_path):
    import h5py

    broken = tmp_path / "broken.h5"
    shutil.copy(yamnet["weights"], broken)
    with h5py.File(broken, "r+") as handle:
        del handle["layer7/pointwise_conv"]  # HDF5 nests layer7/pointwise_conv/bn inside it: both go
        names = [_text(n) for n in handle.attrs["layer_names"]]
        handle.attrs["layer_names"] = [n.encode() for n in names if not n.startswith("layer7/pointwise_conv")]
    with pytest.raises(ZooError, match="layer7/pointwise_conv"):
        converter_for("keras").load({"weights": broken}, manifest)
    html = tmp_path / "yamnet.h5"
    html.write_text("<html>not found</html>")
    with pytest.raises(ZooError, match="not a readable HDF5 file"):
        converter_for("keras").load({"yamnet.h5": html}, manifest)


def test_manifest_shapes_that_do_not_fit_the_network_are_refused(manifest):
    from converters import keras as converter
    from zoo.errors import ManifestError

    data = manifest.model_dump(mode="json")
    data["outputs"][0]["shape"] = [2, 521]
    bad = type(manifest).model_validate(data)
    with pytest.raises(ManifestError, match=r"outputs\[0\].shape"):
        converter.build_model(bad)


def test_onnx_export_keeps_the_front_end_and_matches_tensorflow(yamnet, manifest):
    import onnx
    import onnxruntime as ort

    model = onnx.load(str(yamnet["onnx"]))
    assert model.opset_import[0].version == manifest.convert.onnx.opset
    assert [i.name for i in model.graph.input] == ["waveform"]
    assert [d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim] == [SAMPLES]
    assert [o.name for o in model.graph.output] == ["scores", "embeddings", "log_mel_spectrogram"]
    kinds = {n.op_type for n in model.graph.node}
    assert {"Log", "Conv", "Sigmoid"} <= kinds  # one graph: waveform in, log-mel and scores out
    session = ort.InferenceSession(str(yamnet["onnx"]), providers=["CPUExecutionProvider"])
    for name in ("white-noise", "clicks", "loud-noise"):
        audio = probe(name)
        expected = yamnet["source"].run({"waveform": audio})
        got = dict(
            zip([o.name for o in session.get_outputs()], session.run(None, {"waveform": audio}), strict=True)
        )
        assert np.abs(got["scores"] - expected["scores"]).max() < 5e-4, name
        assert np.abs(got["log_mel_spectrogram"] - expected["log_mel_spectrogram"]).max() < 1e-4, name


def _compiled(model):
    import openvino as ov

    return ov.Core().compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})


def _run(compiled, audio):
    result = compiled({0: audio})
    return {next(iter(port.get_names())): result[index] for index, port in enumerate(compiled.outputs)}


def mel_band_bins() -> int:
    """How many of the 257 STFT bins YAMNet's mel matrix (125 to 7500 Hz) gives any weight."""
    import tensorflow as tf

    matrix = tf.signal.linear_to_mel_weight_matrix(64, 257, 16000, 125.0, 7500.0).numpy()
    return int((np.abs(matrix).sum(axis=1) > 0).sum())


def test_openvino_model_has_its_stft_folded_and_matches_tensorflow(yamnet):
    from converters.spectral import FOLDED_TAG

    model = yamnet["openvino"]
    kinds = {op.get_type_name() for op in model.get_ops()}
    assert "RDFT" not in kinds  # framing, window and RDFT folded (converters.spectral)
    # the Hann window is symmetric about each frame's middle sample: the bins the mel matrix uses,
    # and only those, come from the frame's folded halves, 200 rows each for cosines and sines
    # (converters.spectral.band_limited_magnitudes), not from a strided convolution
    assert not [op for op in model.get_ops() if op.get_friendly_name().endswith(FOLDED_TAG)]
    halves = [
        op
        for op in model.get_ops()
        if op.get_type_name() == "MatMul" and tuple(op.input_value(1).get_shape()) == (200, mel_band_bins())
    ]
    assert len(halves) == 2
    # front-end name patterns still match
    assert all("log_mel_features" in op.get_friendly_name() for op in halves)
    assert sorted(n for p in model.outputs for n in p.get_names()) == [
        "embeddings",
        "log_mel_spectrogram",
        "scores",
    ]
    assert [sorted(p.get_names()) for p in model.inputs] == [["waveform"]]
    compiled = _compiled(model)
    for name in ("white-noise", "pink-noise", "clicks"):
        audio = probe(name)
        expected = yamnet["source"].run({"waveform": audio})
        got = _run(compiled, audio)
        assert np.abs(got["scores"] - expected["scores"]).max() < 5e-4, name


def _consts(xml: Path) -> dict[tuple, set[str]]:
    """{shape: the element types of every constant of that shape} of the IR."""
    found: dict[tuple, set[str]] = {}
    for layer in ET.parse(xml).getroot().iter("layer"):
        if layer.get("type") == "Const":
            data = layer.find("data")
            shape = tuple(int(d) for d in data.get("shape").split(",") if d)
            found.setdefault(shape, set()).add(data.get("element_type"))
    return found


def test_fp16_keeps_the_front_end_in_fp32_and_survives_loud_probes(yamnet, manifest, tmp_path):
    """A half-precision Hann window lifts the spectral floor over the log offset: the trap, and the fix."""
    import openvino as ov

    from zoo.ir import save_ir

    kept = save_ir(
        converter_for("keras").to_openvino(yamnet["source"], {}, manifest),
        tmp_path / "kept" / "yamnet.xml",
        "FP16",
        manifest,
        labels=manifest.read_labels(),
    )
    assert kept["fp16_keep_fp32"], "the manifest's fp16_keep_fp32 patterns match no op"
    consts = _consts(tmp_path / "kept" / "yamnet.xml")
    # the windowed DFT's cosine and sine halves (one shape, both kept) and the mel matrix
    used = mel_band_bins()
    assert consts[(200, used)] == {"f32"} and consts[(used, 64)] == {"f32"}
    # the classifier is compressed
    assert consts.get((1024, 521), set()) | consts.get((521, 1024), set()) == {"f16"}
    naive = tmp_path / "naive.xml"
    ov.save_model(
        converter_for("keras").to_openvino(yamnet["source"], {}, manifest), str(naive), compress_to_fp16=True
    )
    core = ov.Core()
    good = _compiled(core.read_model(str(tmp_path / "kept" / "yamnet.xml")))
    bad = _compiled(core.read_model(str(naive)))
    for name in ("loud-sine", "sine-440"):
        audio = probe(name)
        expected = yamnet["source"].run({"waveform": audio})["log_mel_spectrogram"]
        assert np.abs(_run(good, audio)["log_mel_spectrogram"] - expected).max() < 0.02, name
        assert np.abs(_run(bad, audio)["log_mel_spectrogram"] - expected).max() > 0.2, name
