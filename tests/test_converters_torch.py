"""converters/pytorch.py: upstream checkpoints onto rebuilt networks, the ONNX export, silero-vad.

Real files throughout: checkpoints written with torch.save, exports run in ONNX Runtime, and
silero-vad's real TorchScript file fetched from the package index through zoo.fetch.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from converters.networks import build
from zoo.catalog import Catalog
from zoo.errors import UsageError, ZooError
from zoo.frontends import frontend_for, prepare_inputs, synthetic_feature_inputs
from zoo.plugins import converter_for
from zoo.probes import probe_set

pytestmark = pytest.mark.xdist_group("torch-converters")

pytorch = converter_for("pytorch")  # serves `torchscript` too

CHECKPOINT_ENTRIES = [
    "dcase2018-task2-vggish",
    "dcase2018-task2-baseline-cnn",
    "audioset-attention-single",
    "audioset-attention-multi",
    "audioset-attention-feature",
]


@pytest.fixture(scope="session")
def catalog() -> Catalog:
    return Catalog()


@pytest.fixture(scope="session")
def references(tmp_path_factory, catalog):
    """Reference checkpoints and their exports, written once per entry for the session."""
    made: dict[str, dict] = {}

    def get(name: str) -> dict:
        if name not in made:
            manifest = catalog.get(name)
            folder = tmp_path_factory.mktemp(name)
            written = pytorch.write_reference_weights(manifest, folder, seed=0)
            source = pytorch.load(written, manifest)
            onnx_path = folder / "export" / f"{name}.onnx"
            onnx_path.parent.mkdir()
            pytorch.export_onnx(source, onnx_path, manifest)
            made[name] = {"manifest": manifest, "files": written, "source": source, "onnx": onnx_path}
        return made[name]

    return get


@pytest.fixture(scope="session")
def silero(tmp_path_factory, catalog):
    """silero-vad's real weights: the wheel from the package index, checked by zoo.fetch."""
    from zoo.source_folder import obtain_sources

    manifest = catalog.get("silero-vad")
    root = tmp_path_factory.mktemp("silero")
    sources = obtain_sources(manifest, root / "out", cache_dir=root / "cache")
    source = pytorch.load(sources.files, manifest)
    onnx_path = root / "export" / "silero-vad.onnx"
    onnx_path.parent.mkdir()
    pytorch.export_onnx(source, onnx_path, manifest)
    return {"manifest": manifest, "files": sources.files, "source": source, "onnx": onnx_path}


def probe_feeds(manifest, limit: int = 8) -> list[dict[str, np.ndarray]]:
    """Inputs as verification makes them: probes through the host front end, or synthetic embeddings."""
    if not frontend_for(manifest).takes_audio:
        return synthetic_feature_inputs(manifest, limit, seed=3)
    rate = manifest.audio.sample_rate
    seconds = manifest.audio.clip.seconds if manifest.audio.clip else 1.0
    feeds = []
    for probe in probe_set(rate, seconds)[:limit]:
        feeds.append(prepare_inputs(manifest, probe.audio, rate)[0])
    return feeds


def speech_stream(seconds: float = 10.0) -> np.ndarray:
    """Speech with pauses (espeak-ng) when installed, then the synthetic stream; *seconds* in all."""
    probes = probe_set(16000, seconds / 2, kind="speech")
    return np.concatenate([probes[0].audio, probes[-1].audio])


# -- checkpoints -------------------------------------------------------------------------


@pytest.mark.parametrize("name", CHECKPOINT_ENTRIES)
def test_reference_checkpoint_round_trip(references, name):
    ref = references(name)
    path = ref["files"]["weights"]
    assert path.name == "md_0_iters.tar"
    checkpoint = torch.load(path, weights_only=True)
    assert set(checkpoint) == {"iteration", "state_dict", "optimizer"}
    assert set(checkpoint["optimizer"]) == {"state", "param_groups"}
    network = build(ref["manifest"].network)
    assert set(checkpoint["state_dict"]) == set(network.state_dict())
    network.load_state_dict(checkpoint["state_dict"])
    feeds = probe_feeds(ref["manifest"], limit=3)
    for feed in feeds:
        (value,) = feed.values()
        with torch.no_grad():
            expected = network.eval()(torch.from_numpy(value)).numpy()
        got = ref["source"].run(feed)[ref["manifest"].outputs[0].name]
        np.testing.assert_array_equal(got, expected)


def test_seeded_weights_are_deterministic_and_seed_dependent(catalog, tmp_path):
    manifest = catalog.get("audioset-attention-single")
    first = pytorch.write_reference_weights(manifest, tmp_path / "a", seed=4)["weights"]
    again = pytorch.write_reference_weights(manifest, tmp_path / "b", seed=4)["weights"]
    other = pytorch.write_reference_weights(manifest, tmp_path / "c", seed=5)["weights"]
    a, b, c = (torch.load(p, weights_only=True)["state_dict"] for p in (first, again, other))
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["attention.cla.weight"], c["attention.cla.weight"])


def test_plain_state_dict_and_data_parallel_prefix_load(references, tmp_path):
    ref = references("audioset-attention-single")
    state = torch.load(ref["files"]["weights"], weights_only=True)["state_dict"]
    feed = probe_feeds(ref["manifest"], limit=1)[0]
    expected = ref["source"].run(feed)["probabilities"]
    for label, content in (
        ("plain.pth", state),
        ("parallel.pth", {f"module.{k}": v for k, v in state.items()}),
    ):
        torch.save(content, tmp_path / label)
        source = pytorch.load({"weights": tmp_path / label}, ref["manifest"])
        np.testing.assert_array_equal(source.run(feed)["probabilities"], expected)


def test_checkpoint_with_a_wrong_key_names_file_and_key(references, tmp_path):
    ref = references("dcase2018-task2-baseline-cnn")
    checkpoint = torch.load(ref["files"]["weights"], weights_only=True)
    checkpoint["state_dict"]["fc_final.weight"] = checkpoint["state_dict"].pop("fc1.weight")
    bad = tmp_path / "renamed.tar"
    torch.save(checkpoint, bad)
    with pytest.raises(UsageError) as caught:
        pytorch.load({"weights": bad}, ref["manifest"])
    message = caught.value.message
    assert str(bad) in message
    assert "missing keys: fc1.weight" in message and "unexpected keys: fc_final.weight" in message
    assert "dcase2018/baseline_cnn" in message


def test_checkpoint_with_a_wrong_shape_names_the_shapes(references, tmp_path):
    ref = references("dcase2018-task2-baseline-cnn")
    checkpoint = torch.load(ref["files"]["weights"], weights_only=True)
    checkpoint["state_dict"]["fc1.weight"] = torch.zeros(10, 512)
    bad = tmp_path / "ten_classes.tar"
    torch.save(checkpoint, bad)
    with pytest.raises(
        UsageError, match=r"wrong shapes: fc1.weight \(file \(10, 512\), network \(41, 512\)\)"
    ):
        pytorch.load({"weights": bad}, ref["manifest"])


class _RunsCode:
    """Unpickling this would run a shell command that leaves a marker file."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_checkpoint_that_would_run_code_is_refused(references, tmp_path):
    ref = references("audioset-attention-single")
    checkpoint = torch.load(ref["files"]["weights"], weights_only=True)
    marker = tmp_path / "ran"
    checkpoint["extra"] = _RunsCode(marker)
    bad = tmp_path / "evil.tar"
    torch.save(checkpoint, bad)
    with pytest.raises(UsageError, match="refused to load"):
        pytorch.load({"weights": bad}, ref["manifest"])
    assert not marker.exists()


def test_unreadable_and_foreign_files_are_clear_errors(catalog, tmp_path):
    manifest = catalog.get("dcase2018-task2-vggish")
    junk = tmp_path / "junk.tar"
    junk.write_bytes(b"<html>not found</html>")
    with pytest.raises(UsageError, match="not a readable PyTorch checkpoint"):
        pytorch.load({"weights": junk}, manifest)
    foreign = tmp_path / "foreign.tar"
    torch.save({"epoch": 3, "model": [1, 2, 3]}, foreign)
    with pytest.raises(UsageError, match=r"expected a training checkpoint .* found epoch, model"):
        pytorch.load({"weights": foreign}, manifest)
    with pytest.raises(UsageError, match="--weights PATH"):
        pytorch.load({}, manifest)


# -- export --------------------------------------------------------------------------------


def check_export_file(path: Path, manifest) -> onnx.ModelProto:
    """One self-contained file, the manifest's opset, names and static shapes."""
    assert sorted(p.name for p in path.parent.iterdir() if not p.name.startswith(".")) == [path.name]
    model = onnx.load(str(path), load_external_data=False)
    assert not any(t.data_location == onnx.TensorProto.EXTERNAL for t in model.graph.initializer)
    assert {o.domain: o.version for o in model.opset_import}.get("", None) == manifest.convert.onnx.opset
    for values, specs in ((model.graph.input, manifest.inputs), (model.graph.output, manifest.outputs)):
        assert [v.name for v in values] == [s.name for s in specs]
        for value, spec in zip(values, specs, strict=True):
            assert [d.dim_value for d in value.type.tensor_type.shape.dim] == spec.shape
    assert "If" not in {n.op_type for n in model.graph.node}
    return model


@pytest.mark.parametrize("name", CHECKPOINT_ENTRIES)
def test_export_matches_pytorch_in_onnx_runtime(references, name):
    ref = references(name)
    manifest = ref["manifest"]
    check_export_file(ref["onnx"], manifest)
    from zoo.numerics import float64_model, judge_artifact, reduction_profile, run_probes, yardstick

    session = ort.InferenceSession(str(ref["onnx"]), providers=["CPUExecutionProvider"])
    assert manifest.verify.tolerance["onnx"].budget == "derived"
    feeds = [[feed] for feed in probe_feeds(manifest)]
    source = [[ref["source"].run(call) for call in calls] for calls in feeds]
    exported = [
        [
            dict(zip([o.name for o in manifest.outputs], session.run(None, call), strict=True))
            for call in calls
        ]
        for calls in feeds
    ]
    for src, got in zip(source, exported, strict=True):
        output = manifest.main_output.name
        assert got[0][output].argmax() == src[0][output].argmax()
    exact = run_probes(float64_model(manifest, ref["source"], ref["onnx"]), feeds, manifest)
    sticks = yardstick(manifest, source, exact)
    for spec in manifest.outputs:
        verdict = judge_artifact("onnx", sticks[spec.name], source, exported, reduction_profile(ref["onnx"]))
        assert verdict.passed, f"{name}: {verdict.as_dict()}"


# -- silero-vad -------------------------------------------------------------------------------


@pytest.mark.filterwarnings("ignore:.*torch.jit.load. is deprecated:DeprecationWarning")
def test_silero_rebuild_is_bit_exact_to_the_torchscript_file(silero):
    """The whole .jit (its own state and context handling) against the rebuild with explicit state."""
    scripted = torch.jit.load(str(silero["files"]["silero_vad.jit"]), map_location="cpu")
    rebuild = silero["source"].export_module
    audio = speech_stream()
    state, context = torch.zeros(2, 1, 128), torch.zeros(1, 64)
    chunks = 0
    with torch.no_grad():
        for start in range(0, audio.size - 511, 512):
            chunk = torch.from_numpy(audio[start : start + 512])[None]
            expected = scripted(chunk, 16000)
            probability, state, context = rebuild(chunk, state, context)
            assert torch.equal(probability, expected), f"chunk {chunks}"
            chunks += 1
    assert chunks >= 300  # 10 s


def test_silero_reference_steps_the_original_model(silero):
    """SourceModel.run (the .jit's `_model` with explicit state) equals the rebuild exactly, state carried."""
    source = silero["source"]
    feeds = prepare_inputs(silero["manifest"], speech_stream(4.0), 16000)
    state, context = np.zeros((2, 1, 128), np.float32), np.zeros((1, 64), np.float32)
    with torch.no_grad():
        for feed in feeds:
            out = source.run({"chunk": feed["chunk"], "state": state, "context": context})
            mine = source.export_module(
                torch.from_numpy(feed["chunk"]), torch.from_numpy(state), torch.from_numpy(context)
            )
            for got, name in zip(mine, ("probability", "new_state", "new_context"), strict=True):
                np.testing.assert_array_equal(got.numpy(), out[name])
            state, context = out["new_state"], out["new_context"]


def test_silero_onnx_carries_state_like_the_original(silero):
    """Over a speech stream, each carrying its own state: within the budget the manifest's policy derives."""
    from zoo.numerics import float64_model, judge_artifact, reduction_profile, run_probes, yardstick
    from zoo.runtimes import OnnxRuntimeRunner
    from zoo.streams import run_calls

    manifest = silero["manifest"]
    assert manifest.verify.tolerance["onnx"].budget == "derived"
    check_export_file(silero["onnx"], manifest)
    feeds = prepare_inputs(manifest, speech_stream(), 16000)
    source = [run_calls(silero["source"], manifest, feeds)[1]]
    onnx = [run_calls(OnnxRuntimeRunner(silero["onnx"], exact=True), manifest, feeds)[1]]
    exact = run_probes(float64_model(manifest, silero["source"], silero["onnx"]), [feeds], manifest)
    sticks = yardstick(manifest, source, exact)
    profile = reduction_profile(silero["onnx"])
    for output in ("probability", "new_state", "new_context"):
        verdict = judge_artifact("onnx", sticks[output], source, onnx, profile)
        assert verdict.passed, verdict.as_dict()
    agree = sum(
        int((o["probability"] > 0.5).item() == (r["probability"] > 0.5).item())
        for o, r in zip(onnx[0], source[0], strict=True)
    )
    assert agree == len(feeds)
    worst = max(
        float(np.abs(o["probability"] - r["probability"]).max())
        for o, r in zip(onnx[0], source[0], strict=True)
    )
    sys.stderr.write(f"silero-vad ONNX Runtime over {len(feeds)} chunks: max |dp| {worst:.3g}\n")


def test_silero_needs_no_reference_weights(catalog, tmp_path):
    with pytest.raises(UsageError, match="real weights on the package index"):
        pytorch.write_reference_weights(catalog.get("silero-vad"), tmp_path, seed=0)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_torchscript_file_that_is_not_silero_is_refused(catalog, tmp_path):
    other = torch.jit.script(torch.nn.Linear(2, 2))
    path = tmp_path / "other.jit"
    other.save(str(path))
    with pytest.raises(ZooError, match="no 16 kHz `_model` submodule"):
        pytorch.load({"silero_vad.jit": path}, catalog.get("silero-vad"))
