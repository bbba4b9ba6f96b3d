"""zoo.streams: one stream from zero state, each runner carrying its own state, on the tiny recurrent model."""

from __future__ import annotations

import numpy as np
import pytest

from tests.tinymodel import CHUNK, STATE, make_stateful_onnx, write_stream_entry
from zoo.errors import UsageError
from zoo.manifest import load_manifest
from zoo.streams import initial_state, run_calls, run_stream, state_pairs


@pytest.fixture(scope="module")
def stream(tmp_path_factory):
    """The tiny recurrent model, its entry, its verified sources in an output folder, and its FP32 IR."""
    from zoo.ir import onnx_to_ir, save_ir
    from zoo.source_folder import obtain_sources

    root = tmp_path_factory.mktemp("streams")
    model = make_stateful_onnx(root / "upstream" / "stream.onnx", seed=3)
    manifest = load_manifest(write_stream_entry(root / "catalog", model))
    out = root / "out"
    obtain_sources(manifest, out, cache_dir=root / "cache")
    save_ir(onnx_to_ir(model, manifest), root / "FP32" / "tiny-stream.xml", "FP32", manifest)
    return root, model, manifest, out


def _numpy_stream(model_path, chunks: list[np.ndarray]) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """(state in, probability) per chunk of the tiny recurrence, written out in numpy from the file's weights."""
    import onnx
    from onnx import numpy_helper

    w = {
        t.name: numpy_helper.to_array(t).astype(np.float64)
        for t in onnx.load(str(model_path)).graph.initializer
    }
    state = np.zeros((1, STATE))
    states, probabilities = [], []
    for chunk in chunks:
        states.append(state)
        state = np.tanh(chunk @ w["w"] + state @ w["u"] + w["b"])
        probabilities.append(1 / (1 + np.exp(-(state @ w["v"] + w["c"]))))
    return states, probabilities


def _chunks(count: int, seed: int = 0) -> list[dict[str, np.ndarray]]:
    rng = np.random.RandomState(seed)
    return [{"chunk": rng.standard_normal((1, CHUNK)).astype(np.float32)} for _ in range(count)]


def test_the_stream_driver_carries_state_like_the_source(stream):
    from zoo.runtimes import open_artifact, open_source

    root, model, manifest, out = stream
    chunks = _chunks(12)
    states, probabilities = _numpy_stream(model, [c["chunk"].astype(np.float64) for c in chunks])
    source = open_source(manifest, out)
    assert source.runtime == "source" and source.model_type == "OnnxSourceModel"
    for runner in (
        source,
        open_artifact(model, "onnx"),
        open_artifact(root / "FP32" / "tiny-stream.xml", "FP32"),
    ):
        given, outputs = run_stream(runner, manifest, chunks)
        assert len(given) == len(outputs) == len(chunks)
        assert not given[0]["state"].any() and given[0]["state"].dtype == np.float32
        for step in range(1, len(chunks)):
            # the state a chunk returns is the state the next one gets
            np.testing.assert_array_equal(given[step]["state"], outputs[step - 1]["new_state"])
            np.testing.assert_array_equal(given[step]["chunk"], chunks[step]["chunk"])
        np.testing.assert_allclose(np.stack([g["state"] for g in given]), np.stack(states), atol=1e-5)
        np.testing.assert_allclose(
            np.stack([o["probability"] for o in outputs]), np.stack(probabilities), atol=1e-5
        )
        assert np.abs(given[-1]["state"]).max() > 0.05  # the state really moved
    # two runners never share state: a second stream starts from zero again
    again, _ = run_calls(source, manifest, chunks[:2])
    assert not again[0]["state"].any()


def test_initial_state_follows_the_manifest(stream):
    _, _, manifest, _ = stream
    (pair,) = state_pairs(manifest)
    assert (pair.input, pair.output, pair.shape, pair.dtype) == ("state", "new_state", (1, STATE), "float32")
    zeros = initial_state(manifest)
    assert list(zeros) == ["state"] and zeros["state"].shape == (1, STATE) and not zeros["state"].any()


def test_unpaired_or_dynamic_state_is_the_manifests_fault(tmp_path, stream):
    _, model, _, _ = stream
    path = write_stream_entry(tmp_path / "catalog", model)
    text = path.read_text()
    new_state = f"{{name: new_state, shape: [1, {STATE}], dtype: float32, kind: "
    assert new_state + "state}" in text
    path.write_text(text.replace(new_state + "state}", new_state + "probabilities}"))
    with pytest.raises(UsageError, match="as many state outputs as state inputs"):
        state_pairs(load_manifest(path))
    state = f"{{name: state, shape: [1, {STATE}]"
    assert state in text
    path.write_text(text.replace(state, "{name: state, shape: [1, width]"))
    with pytest.raises(UsageError, match="static shape"):
        initial_state(load_manifest(path))


def test_clip_models_make_independent_calls(tmp_path):
    from tests.tinymodel import SAMPLES, make_tiny_onnx, write_tiny_entry
    from zoo.runtimes import open_artifact

    model = make_tiny_onnx(tmp_path / "tiny.onnx", seed=2)
    manifest = load_manifest(write_tiny_entry(tmp_path / "catalog", model))
    rng = np.random.RandomState(1)
    feeds = [{"input": rng.standard_normal((1, 1, 1, SAMPLES)).astype(np.float32)} for _ in range(3)]
    runner = open_artifact(model)
    given, outputs = run_calls(runner, manifest, feeds)
    assert given == feeds
    for feed, output in zip(feeds, outputs, strict=True):
        np.testing.assert_array_equal(output["output"], runner.run(feed)["output"])


def test_open_source_reads_the_verified_sources_with_thread_control(tmp_path, stream):
    from zoo.runtimes import NoSources, open_source

    _, model, manifest, out = stream
    with pytest.raises(NoSources, match="no verified sources under"):
        open_source(manifest, tmp_path / "empty")
    threaded = open_source(manifest, out, threads=1)
    # the ONNX source runs on a session of its own with the thread count, graph optimizations off
    assert threaded.threads == 1 and threaded.config == {"framework": "onnx", "threads": 1}
    assert threaded.model.runner.config == {"threads": 1, "graph_optimizations": False}
    assert open_source(manifest, out).threads is None
    chunks = _chunks(3, seed=5)
    np.testing.assert_array_equal(
        np.stack([o["probability"] for o in run_stream(threaded, manifest, chunks)[1]]),
        np.stack([o["probability"] for o in run_stream(open_source(manifest, out), manifest, chunks)[1]]),
    )
    import shutil

    changed = shutil.copytree(out, tmp_path / "changed")
    (changed / manifest.name / "source" / "stream.onnx").write_bytes(b"changed")
    with pytest.raises(NoSources):  # a source that no longer matches its record is not used
        open_source(manifest, changed)
