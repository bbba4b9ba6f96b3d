"""zoo/numerics.py: float64 evaluation, the source's own float32 error as yardstick, derived budgets.

Real models: silero-vad's real TorchScript (package index, through zoo.fetch) on PyTorch's float64
path, and AclNet's reference ONNX on the ONNX-graph float64 path. The genuine ONNX export and FP32
IR pass their budgets; the same IR with one weight tensor scaled by 1 + 1e-3 fails.
"""

from __future__ import annotations

import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest

from zoo import numerics
from zoo.catalog import Catalog
from zoo.errors import ZooError

pytestmark = pytest.mark.xdist_group("numerics")


# -- the float64 ONNX path -------------------------------------------------------------------


def small_graph(path: Path) -> Path:
    """x[1, 64] -> Sigmoid(Cast<float>(x) @ W + b) * c, with a Constant node and a Cast to float."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.RandomState(3)
    w = rng.standard_normal((64, 8)).astype(np.float32)
    b = rng.standard_normal(8).astype(np.float32)
    graph = helper.make_graph(
        [
            helper.make_node("Cast", ["x"], ["xf"], to=TensorProto.FLOAT),
            helper.make_node("MatMul", ["xf", "w"], ["h"]),
            helper.make_node("Add", ["h", "b"], ["z"]),
            helper.make_node(
                "Constant", [], ["c"], value=numpy_helper.from_array(np.array([0.3], np.float32), "c")
            ),
            helper.make_node("Sigmoid", ["z"], ["s"]),
            helper.make_node("Mul", ["s", "c"], ["y"]),
        ],
        "small",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 64])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 8])],
        [numpy_helper.from_array(w, "w"), numpy_helper.from_array(b, "b")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.save(model, str(path))
    return path


@pytest.mark.parametrize("engine", ["ort", "reference"])
def test_onnx_graph_runs_in_float64(tmp_path, engine):
    import onnx

    path = small_graph(tmp_path / "small.onnx")
    proto = onnx.load(str(path))
    w, b = (onnx.numpy_helper.to_array(t).astype(np.float64) for t in proto.graph.initializer)
    x = np.random.RandomState(0).standard_normal((1, 64)) * 3.0
    exact = float(np.float32(0.3)) * (
        1.0 / (1.0 + np.exp(-(x.astype(np.float32).astype(np.float64) @ w + b)))
    )
    model = numerics.OnnxFloat64(path, engine)
    got = model.run({"x": x.astype(np.float32)})["y"]
    assert got.dtype == np.float64
    assert np.max(np.abs(got - exact)) < 1e-14
    as_float32 = 0.3 * (
        1.0 / (1.0 + np.exp(-(x.astype(np.float32) @ w.astype(np.float32) + b.astype(np.float32))))
    )
    assert np.max(np.abs(as_float32 - exact)) > 1e-9  # float32 really is further away


def test_reduction_profile_counts_reducing_layers(tmp_path):
    assert numerics.reduction_profile(small_graph(tmp_path / "small.onnx")) == (64, 1)


def test_budget_rule():
    profile = (1024, 9)
    fp32 = numerics.budget("FP32", 1e-6, 0.5, profile)
    floor = numerics.floor32(0.5, profile)
    assert fp32 == pytest.approx(4 * 1e-6 + floor)
    assert floor == pytest.approx(4 * 2**-24 * np.sqrt(1024 * 9 / 3) * 0.5)
    assert numerics.budget("FP16", 1e-6, 0.5, profile) == pytest.approx(2**13 * fp32)
    assert numerics.scale_of("logits", np.array([0.2, -0.4])) == 1.0
    assert numerics.scale_of("probabilities", np.array([0.2, -0.4])) == pytest.approx(0.4)
    with pytest.raises(ZooError, match="INT8"):
        numerics.budget("INT8", 1e-6, 0.5, profile)


def tone_spectrum_graph(path: Path, n: int = 1024) -> Path:
    """x[1, n] -> |DFT(x)| with the DFT in float64 between two casts (as BirdNET's export has it)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    graph = helper.make_graph(
        [
            helper.make_node("Cast", ["x"], ["wide"], to=TensorProto.DOUBLE),
            helper.make_node("Unsqueeze", ["wide", "axes"], ["signal"]),
            helper.make_node("DFT", ["signal", "length"], ["spectrum"], axis=1, onesided=1),
            helper.make_node("Mul", ["spectrum", "spectrum"], ["squares"]),
            helper.make_node("ReduceSum", ["squares", "last"], ["power"], keepdims=0),
            helper.make_node("Cast", ["power"], ["narrow"], to=TensorProto.FLOAT),
            helper.make_node("Add", ["narrow", "tiny"], ["lifted"]),
            helper.make_node("Log", ["lifted"], ["y"]),
        ],
        "spectrum",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, n])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        [
            numpy_helper.from_array(np.array([2], np.int64), "axes"),
            numpy_helper.from_array(np.array(n, np.int64), "length"),
            numpy_helper.from_array(np.array([-1], np.int64), "last"),
            numpy_helper.from_array(np.array([1e-30], np.float32), "tiny"),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    onnx.save(model, str(path))
    return path


def test_float64_steps_are_found_and_narrowed(tmp_path):
    """The uniform-float32 graph: float64 steps found, narrowed, and costing what float32 costs."""
    import onnx

    path = tone_spectrum_graph(tmp_path / "spectrum.onnx")
    steps = numerics.float64_steps(onnx.load(str(path)))
    # the cast up and every step on its float64 values, not the cast back down nor what follows
    assert steps == ["Cast", "Unsqueeze", "DFT", "Mul", "ReduceSum"], steps
    assert numerics.float64_steps(onnx.load(str(small_graph(tmp_path / "small.onnx")))) == []
    assert numerics.alternatives(tmp_path / "small.onnx", 64) == []  # nothing to narrow, no quantizers
    narrowed = numerics.onnx_to_float32(onnx.load(str(path)))
    assert numerics.float64_steps(narrowed) == []

    # a pure tone on an exact bin: between harmonics the true power is ~0; float64 keeps it far
    # below float32's noise floor, which a log (like BirdNET's power law) lifts into the output
    n = 1024
    tone = np.sin(2 * np.pi * 64 * np.arange(n) / n).astype(np.float32)[None, :]
    exact = numerics.OnnxFloat64(path, "reference").run({"x": tone})["y"]
    (graph32,) = numerics.alternatives(path, 1024)
    assert isinstance(graph32, numerics.Float32Graph) and len(graph32.steps) == 5
    uniform = graph32.run({"x": tone})["y"]
    as_exported = numerics.OnnxFloat64(path, "reference")  # the export's own float64 DFT, float32 after
    float32_error = float(np.max(np.abs(uniform - exact)))
    export_error = float(np.max(np.abs(as_exported.run({"x": tone})["y"] - exact)))
    assert float32_error > 1.0  # log power between harmonics: float32's floor, not the true ~0
    assert export_error < 1e-6


def test_yardstick_takes_the_alternatives_that_apply():
    """IR artifacts take the larger of the source's error and the uniform-float32 graph's; ONNX does not."""
    graph32 = numerics.Alternative("the graph wholly in float32", numerics.NO_FLOAT64, [5e-2, 1e-5])
    steps = numerics.Alternative("quantizer steps", frozenset({"onnx", "FP32", "FP16"}), [0.0, 2e-3])
    stick = numerics.Yardstick("y", "logits", [1e-4, 1e-3], [1.0, 1.0], alternatives=[graph32])
    assert stick.error_for("FP32", 0) == 5e-2 and stick.error_for("FP32", 1) == 1e-3
    assert stick.error_for("FP16", 0) == 5e-2
    assert stick.error_for("onnx", 0) == 1e-4  # ONNX Runtime keeps the float64 steps
    assert "wholly in float32" in stick.basis("FP32") and stick.basis("onnx") == "source float32"
    both = numerics.Yardstick("y", "logits", [1e-4, 1e-3], [1.0, 1.0], alternatives=[graph32, steps])
    assert both.error_for("onnx", 1) == 2e-3 and both.error_for("FP32", 0) == 5e-2
    assert both.basis("onnx") == "source float32 and quantizer steps"
    plain = numerics.Yardstick("y", "logits", [1e-4], [1.0])
    assert plain.error_for("FP32", 0) == 1e-4
    assert numerics.NO_FLOAT64 == {"FP32", "FP16"}


# -- real models --------------------------------------------------------------------------------


def make_ir(onnx_path: Path, xml_path: Path, manifest, precision: str) -> Path:
    from zoo.ir import onnx_to_ir, save_ir

    save_ir(onnx_to_ir(onnx_path, manifest), xml_path, precision, manifest, labels=[])
    return xml_path


def plant_defect(xml_path: Path, target: Path, relative: float) -> str:
    """A copy of an IR whose largest float32 weight tensor is scaled by 1 + relative; its name."""
    consts = []
    for layer in ET.parse(xml_path).getroot().iter("layer"):
        data = layer.find("data")
        if layer.get("type") == "Const" and data is not None and data.get("element_type") == "f32":
            consts.append((int(data.get("size", 0)), int(data.get("offset", 0)), layer.get("name", "")))
    size, offset, name = max(consts)
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(xml_path, target)
    blob = bytearray(xml_path.with_suffix(".bin").read_bytes())
    scaled = np.frombuffer(bytes(blob[offset : offset + size]), np.float32) * np.float32(1 + relative)
    blob[offset : offset + size] = scaled.astype(np.float32).tobytes()
    target.with_suffix(".bin").write_bytes(bytes(blob))
    return name


def probe_feeds(manifest, seconds: float, kind: str, count: int) -> list[list[dict[str, np.ndarray]]]:
    from zoo.frontends import prepare_inputs
    from zoo.probes import probe_set

    rate = manifest.audio.sample_rate
    return [prepare_inputs(manifest, p.audio, rate) for p in probe_set(rate, seconds, kind=kind)[:count]]


def verdicts(case: dict, artifact: str, path: Path) -> dict[str, numerics.Verdict]:
    from zoo.runtimes import open_artifact

    got = numerics.run_probes(open_artifact(path, artifact), case["feeds"], case["manifest"])
    return {
        name: numerics.judge_artifact(artifact, stick, case["source_f32"], got, case["profile"])
        for name, stick in case["sticks"].items()
    }


def judged_case(manifest, source, onnx_path: Path, feeds, root: Path) -> dict:
    source_f32 = numerics.run_probes(source, feeds, manifest)
    reference = numerics.reference_f64(manifest, source, feeds, onnx_path)
    reference16 = numerics.reference_f64(manifest, source, feeds, onnx_path, weights="float16")
    return {
        "manifest": manifest,
        "source": source,
        "feeds": feeds,
        "source_f32": source_f32,
        "sticks": numerics.yardstick(manifest, source_f32, reference, reference16),
        "profile": numerics.reduction_profile(onnx_path),
        "onnx": onnx_path,
        "ir": make_ir(onnx_path, root / "FP32" / f"{manifest.name}.xml", manifest, "FP32"),
        "ir16": make_ir(onnx_path, root / "FP16" / f"{manifest.name}.xml", manifest, "FP16"),
        "root": root,
    }


@pytest.fixture(scope="module")
def silero(tmp_path_factory):
    """silero-vad's real weights (the wheel from the package index), on two 4 s speech streams."""
    from zoo.plugins import converter_for
    from zoo.source_folder import obtain_sources

    manifest = Catalog().get("silero-vad")
    root = tmp_path_factory.mktemp("silero")
    sources = obtain_sources(manifest, root / "out", cache_dir=root / "cache")
    converter = converter_for(manifest)
    source = converter.load(sources.files, manifest)
    onnx_path = root / "onnx" / "silero-vad.onnx"
    onnx_path.parent.mkdir()
    converter.export_onnx(source, onnx_path, manifest)
    feeds = probe_feeds(manifest, 4.0, "speech", 2)
    return judged_case(manifest, source, onnx_path, feeds, root)


@pytest.fixture(scope="module")
def aclnet(tmp_path_factory):
    """AclNet's reference ONNX (seeded weights, the published layout) on four standard probes."""
    from zoo.plugins import converter_for

    manifest = Catalog().get("aclnet")
    root = tmp_path_factory.mktemp("aclnet")
    adapter = converter_for(manifest)
    files = adapter.write_reference_weights(manifest, root / "source", seed=0)
    source = adapter.load(files, manifest)
    feeds = probe_feeds(manifest, 1.0, "standard", 4)
    return judged_case(manifest, source, Path(source.path), feeds, root)


def test_silero_float64_path_is_pytorch_double(silero):
    model = numerics.float64_model(silero["manifest"], silero["source"], silero["onnx"])
    assert "PyTorch" in model.path
    assert (
        next(model.module.parameters()).dtype.is_floating_point
        and next(model.module.parameters()).itemsize == 8
    )
    stick = silero["sticks"]["probability"]
    # the source's own float32 error is real (not zero) and small (float32, not a defect)
    assert 0 < max(stick.error) < 1e-3


@pytest.mark.parametrize("case_name", ["silero", "aclnet"])
def test_genuine_artifacts_pass_and_a_planted_defect_fails(request, case_name):
    case = request.getfixturevalue(case_name)
    main = case["manifest"].main_output.name
    for artifact, path in (("onnx", case["onnx"]), ("FP32", case["ir"]), ("FP16", case["ir16"])):
        for name, verdict in verdicts(case, artifact, path).items():
            assert verdict.passed, (artifact, name, verdict.as_dict())
    planted = case["root"] / "planted" / case["ir"].name
    tensor = plant_defect(case["ir"], planted, 1e-3)
    judged = verdicts(case, "FP32", planted)[main]
    assert not judged.passed, (tensor, judged.as_dict())
    assert judged.used > 5, (tensor, judged.as_dict())  # far outside, not at the edge


@pytest.mark.parametrize("case_name", ["silero", "aclnet"])
def test_float16_yardstick_is_measured_and_within_the_analytic_bound(request, case_name):
    """Rounding the weights to float16 costs something real, and less than 8192x the float32 error."""
    case = request.getfixturevalue(case_name)
    stick = case["sticks"][case["manifest"].main_output.name]
    assert stick.error16 is not None and max(stick.error16) > 0
    for p, measured in enumerate(stick.error16):
        analytic = numerics.budget("FP16", stick.error[p], stick.scale[p], case["profile"])
        assert measured <= analytic, (p, measured, analytic)


def test_keras_rebuild_runs_in_float64(tmp_path):
    """YAMNet (seeded reference weights) in float64: its log-mel equals numpy's float64 one, and the
    float32 source is close to it but not equal."""
    import tensorflow as tf

    from converters.networks import yamnet as net
    from zoo.plugins import converter_for
    from zoo.probes import probe_set

    manifest = Catalog().get("yamnet")
    adapter = converter_for(manifest)
    source = adapter.load(adapter.write_reference_weights(manifest, tmp_path, seed=3), manifest)
    model = numerics.float64_model(manifest, source)
    samples = int(manifest.inputs[0].shape[0])
    audio = {p.name: p.audio for p in probe_set(16000, samples / 16000)}["pink-noise"][:samples]
    got = model.run({"waveform": audio})
    assert all(v.dtype == np.float64 for v in got.values())

    hann = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(net.STFT_WINDOW) / net.STFT_WINDOW)
    frames = np.stack([audio[i * 160 : i * 160 + 400].astype(np.float64) for i in range(96)]) * hann
    mel = tf.signal.linear_to_mel_weight_matrix(64, 257, 16000, 125.0, 7500.0, dtype=tf.float64).numpy()
    expected = np.log(np.abs(np.fft.rfft(frames, n=512, axis=1)) @ mel + 0.001)
    assert np.abs(got["log_mel_spectrogram"] - expected).max() < 1e-9

    f32 = source.run({"waveform": audio.astype(np.float32)})
    for name in ("scores", "embeddings", "log_mel_spectrogram"):
        gap = np.abs(f32[name] - got[name]).max()
        assert 0 < gap < 0.05 * max(1.0, np.abs(got[name]).max()), (name, gap)


# -- QDQ graphs ---------------------------------------------------------------------------------


def qdq_graph(path: Path) -> Path:
    """x[1, 3, 8, 8] -> Q/DQ (uint8) -> Conv with per-channel int8 weights (DQ, axis 0) -> Q/DQ -> y."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.RandomState(5)
    weights = rng.randint(-127, 128, size=(4, 3, 3, 3)).astype(np.int8)
    graph = helper.make_graph(
        [
            helper.make_node("QuantizeLinear", ["x", "sx", "zx"], ["qx"]),
            helper.make_node("DequantizeLinear", ["qx", "sx", "zx"], ["dx"]),
            helper.make_node("DequantizeLinear", ["w", "sw", "zw"], ["dw"], axis=0),
            helper.make_node("Conv", ["dx", "dw"], ["c"], pads=[1, 1, 1, 1]),
            helper.make_node("QuantizeLinear", ["c", "sc", "zc"], ["qc"]),
            helper.make_node("DequantizeLinear", ["qc", "sc", "zc"], ["y"]),
        ],
        "qdq",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 8, 8])],
        [
            numpy_helper.from_array(np.array(0.02, np.float32), "sx"),
            numpy_helper.from_array(np.array(128, np.uint8), "zx"),
            numpy_helper.from_array(weights, "w"),
            numpy_helper.from_array(np.array([0.01, 0.02, 0.005, 0.015], np.float32), "sw"),
            numpy_helper.from_array(np.zeros(4, np.int8), "zw"),
            numpy_helper.from_array(np.array(0.05, np.float32), "sc"),
            numpy_helper.from_array(np.array(0, np.int8), "zc"),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    onnx.save(model, str(path))
    return path


def test_qdq_graph_runs_in_float64_with_its_quantizers(tmp_path):
    """The written-out quantizers compute what ONNX Runtime's QDQ kernels compute, in float64."""
    import onnx
    import onnxruntime as ort

    path = qdq_graph(tmp_path / "qdq.onnx")
    x = np.random.RandomState(1).uniform(-2.5, 2.5, (1, 3, 8, 8)).astype(np.float32)
    exact = numerics.OnnxFloat64(path, "reference").run({"x": x})["y"]
    assert exact.dtype == np.float64
    runtime = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    step = float(np.float32(0.05))
    on_grid = exact / step, runtime.astype(np.float64) / step
    for values in on_grid:  # both sit on the int8 grid (to the float32 rounding of the product)
        assert np.allclose(values, np.round(values), rtol=0, atol=1e-5)
    steps = np.abs(np.round(on_grid[0]) - np.round(on_grid[1]))
    assert steps.max() <= 1 and (steps == 0).mean() > 0.95  # at most a neighbouring step, rarely
    # clipping and the zero points follow the specification: saturated at 127 steps of 0.05
    assert np.round(on_grid[0]).max() == 127 and np.round(on_grid[0]).min() == -128
    assert numerics.float64_steps(onnx.load(str(path))) == []


def test_quantizer_noise_flips_elements_near_a_half_step(tmp_path):
    """With float32-sized noise, an element sitting on a half step lands on either neighbour."""
    path = qdq_graph(tmp_path / "qdq.onnx")
    x = np.random.RandomState(1).uniform(-2.5, 2.5, (1, 3, 8, 8)).astype(np.float32)
    # the first quantizer's input placed exactly on half steps: 0.02 * (k + 0.5)
    on_half = (0.02 * (np.round(x / 0.02) + 0.5)).astype(np.float64).astype(np.float32)
    exact = numerics.OnnxFloat64(path, "reference").run({"x": on_half})["y"]
    draws = [numerics.QuantizerSteps(path, longest=27, draw=d, engine="reference") for d in range(3)]
    noisy = [d.run({"x": on_half})["y"] for d in draws]
    assert all(np.abs(n - exact).max() > 0 for n in noisy)  # some elements flipped
    assert not np.array_equal(noisy[0], noisy[1])  # each draw its own
    calm = numerics.QuantizerSteps(path, longest=27, engine="reference").run({"x": x})["y"]
    assert np.abs(calm - numerics.OnnxFloat64(path, "reference").run({"x": x})["y"]).max() <= 0.0501
    alts = numerics.alternatives(path, 27)
    assert len(alts) == numerics.QuantizerSteps.DRAWS
    assert {a.basis for a in alts} == {"quantizer steps under float32 rounding"}
