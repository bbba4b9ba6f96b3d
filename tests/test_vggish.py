"""VGGish and the composite end to end, on reference weights: one conversion for the whole module.

`zoo convert --name audioset-attention-feature --chain --reference-weights` converts vggish (72 M
parameters: about a minute) and the head once; every test reads that output folder.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from tests.conftest import MANIFESTS, run_zoo
from zoo.catalog import Catalog
from zoo.errors import ZooError

pytestmark = pytest.mark.xdist_group("vggish")

UPSTREAM_VARIABLES = {
    f"vggish/{scope}/{kind}"
    for scope in (
        "conv1",
        "conv2",
        "conv3/conv3_1",
        "conv3/conv3_2",
        "conv4/conv4_1",
        "conv4/conv4_2",
        "fc1/fc1_1",
        "fc1/fc1_2",
        "fc2",
    )
    for kind in ("weights", "biases")
}


def ok(result, what: str):
    assert result.returncode == 0, f"{what}: {result.stderr[-3000:]}"
    return result


@pytest.fixture(scope="module")
def out(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("vggish") / "out"
    ok(
        run_zoo(
            "convert",
            "--name",
            "audioset-attention-feature",
            "--chain",
            "--reference-weights",
            "--offline",
            "-o",
            str(folder),
        ),
        "zoo convert --chain",
    )
    return folder


@pytest.fixture(scope="module")
def song(tmp_path_factory) -> Path:
    """12.5 s at 22.05 kHz (resampled to 16 kHz): a tone in noise, 16-bit PCM."""
    path = tmp_path_factory.mktemp("audio") / "song.wav"
    t = np.arange(int(22050 * 12.5)) / 22050
    x = 0.3 * np.sin(2 * np.pi * 440 * t) + 0.05 * np.random.RandomState(0).standard_normal(t.size)
    sf.write(path, x.astype(np.float32), 22050, subtype="PCM_16")
    return path


def test_reference_weights_are_upstreams_v1_checkpoint_and_npz(out):
    import tensorflow as tf

    source = out / "vggish" / "source"
    checkpoint = source / "vggish_model.ckpt"
    assert checkpoint.is_file() and not list(source.glob("*.index"))  # V1: one file, no .index/.data
    assert not (source / "checkpoint").exists()  # the Saver's index file is not upstream's
    stored = tf.compat.v1.train.NewCheckpointReader(str(checkpoint)).get_variable_to_shape_map()
    assert set(stored) == UPSTREAM_VARIABLES
    assert stored["vggish/fc1/fc1_1/weights"] == [12288, 4096] and stored["vggish/fc2/weights"] == [4096, 128]
    with np.load(source / "vggish_pca_params.npz", allow_pickle=False) as data:
        assert sorted(data.files) == ["pca_eigen_vectors", "pca_means"]
        assert data["pca_eigen_vectors"].shape == (128, 128) and data["pca_means"].shape == (128,)


def test_the_checkpoint_loads_by_name_and_a_foreign_one_is_refused(out, tmp_path):
    import tensorflow as tf

    from converters.tf1_graph import Tf1GraphConverter, restored_graph_def

    manifest = Catalog(MANIFESTS).get("vggish")
    checkpoint = out / "vggish" / "source" / "vggish_model.ckpt"
    converter = Tf1GraphConverter()
    source = converter.load({"vggish_model.ckpt": checkpoint}, manifest)
    reader = tf.compat.v1.train.NewCheckpointReader(str(checkpoint))
    values = {name: reader.get_tensor(name) for name in UPSTREAM_VARIABLES}
    by_value = restored_graph_def(manifest, values)
    example = np.random.RandomState(0).uniform(-6, 2, (1, 96, 64)).astype(np.float32)
    from converters.tf1_freeze import FrozenGraph

    direct = FrozenGraph(by_value, ["input_features"], ["embedding"], "values").run(
        {"input_features": example}
    )
    loaded = source.run({"input_features": example})
    np.testing.assert_array_equal(loaded["embedding"], direct["embedding"])
    # the same values under one wrong name: refused, naming the missing variable
    renamed = {("vggish/fc2/kernel" if k == "vggish/fc2/weights" else k): v for k, v in values.items()}
    graph = tf.Graph()
    with graph.as_default(), tf.compat.v1.Session(graph=graph) as session:
        variables = {k: tf.compat.v1.Variable(v, name=k) for k, v in renamed.items() if "fc2" in k}
        session.run(tf.compat.v1.global_variables_initializer())
        saver = tf.compat.v1.train.Saver(var_list=variables, write_version=tf.compat.v1.train.SaverDef.V1)
        foreign = Path(saver.save(session, str(tmp_path / "vggish_model.ckpt"), write_meta_graph=False))
    with pytest.raises(
        ZooError,
        match=r"17 of the 18 variables of vggish .* not in the checkpoint \(vggish/conv1/weights, .*"
        r"it holds vggish/fc2/biases, vggish/fc2/kernel\)",
    ):
        converter.load({"vggish_model.ckpt": foreign}, manifest)


def test_vggish_and_the_chain_verify_against_their_sources(out):
    report = ok(
        run_zoo(
            "verify",
            "--name",
            "audioset-attention-feature",
            "--chain",
            "-o",
            str(out),
            "--json",
            "--threads",
            "2",
        ),
        "zoo verify --chain",
    ).json()
    vggish, head = report
    assert (
        vggish["model"] == "vggish"
        and vggish["passed"]
        and set(vggish["artifacts"]) >= {"onnx", "FP32", "FP16"}
    )
    assert vggish["probes"]["kind"] == "standard"  # audio through the VGGish front end, not synthetic inputs
    assert all(vggish["artifacts"][k]["batches"]["10"]["passed"] for k in ("onnx", "FP32", "FP16"))
    chain = head["chain"]
    assert head["passed"] and chain["checked"] and chain["passed"]
    assert chain["reference"] == {"embedder": "tf1-graph", "postprocess": "numpy float64", "head": "pytorch"}
    for kind in ("onnx", "FP32", "FP16"):
        entry = chain["artifacts"][kind]
        assert entry["passed"] and entry["codes_unexplained"] == 0 and 0 <= entry["used"] <= 1
    # FP32 embeddings sit far from the budget; rounding VGGish's weights to float16 flips codes by one level
    assert chain["artifacts"]["FP32"]["embedding_error"] < 1e-4
    assert all(r["max_code_step"] <= 1 for r in chain["artifacts"]["FP16"]["probes"])


def test_the_chain_check_fails_when_vggish_is_off_by_a_weight_change(out, tmp_path, monkeypatch):
    """A 1e-3 relative change of fc2 in the ONNX export: the embedding leaves its budget, the chain fails."""
    import onnx
    from onnx import numpy_helper

    from zoo.composite import verify as chain_verify

    copy = tmp_path / "out"
    for name in ("vggish", "audioset-attention-feature"):
        shutil.copytree(out / name, copy / name, symlinks=True)
    path = copy / "vggish" / "onnx" / "vggish.onnx"
    model = onnx.load(str(path))
    changed = 0
    for index, tensor in enumerate(model.graph.initializer):
        values = numpy_helper.to_array(tensor)
        if values.shape == (4096, 128):  # fc2's weights
            model.graph.initializer[index].CopyFrom(
                numpy_helper.from_array(values * np.float32(1.001), tensor.name)
            )
            changed += 1
    assert changed == 1
    onnx.save(model, str(path))
    monkeypatch.setattr(chain_verify, "CHAIN_PROBES", ("white-noise",))
    monkeypatch.setattr(chain_verify, "CHAIN_KINDS", ("onnx",))
    head = Catalog(MANIFESTS).get("audioset-attention-feature")
    section = chain_verify.verify_chain(head, copy, log=lambda message: None)
    entry = section["artifacts"]["onnx"]
    assert not section["passed"] and not entry["passed"]
    row = entry["probes"][0]
    assert row["embedding_error"] > row["embedding_budget"]
    assert chain_verify.chain_failures(head, section)[0].startswith("audioset-attention-feature: chain onnx:")


@pytest.mark.parametrize(
    "head", ["audioset-attention-feature", "audioset-attention-single", "audioset-attention-multi"]
)
def test_predict_gives_audioset_labels_from_a_waveform(out, song, head):
    if head != "audioset-attention-feature":
        ok(run_zoo("convert", "--name", head, "--reference-weights", "--offline", "-o", str(out)), "convert")
    result = ok(
        run_zoo(
            "predict", "--name", head, "--reference-weights", "-o", str(out), str(song), "--format", "json"
        ),
        "zoo predict",
    )
    files = result.json()["files"]
    assert len(files) == 1 and files[0]["windows"] == 2  # 12.5 s: windows at 0 and 9.6 s, the second padded
    labels = {d["label"] for d in files[0]["detections"]}
    names = set(Catalog(MANIFESTS).get(head).read_labels())
    assert labels and labels <= names
    assert "vggish" in result.stderr and "seeded" in result.stderr


def test_predict_saves_vggish_embeddings_as_npy(out, song, tmp_path):
    from zoo.frontends import prepare_inputs
    from zoo.runtimes import open_artifact

    result = ok(
        run_zoo(
            "predict",
            "--name",
            "vggish",
            "-o",
            str(out),
            str(song),
            "--format",
            "npy",
            "--save-dir",
            str(tmp_path),
        ),
        "zoo predict --format npy",
    )
    saved = tmp_path / "song.vggish.npy"
    assert str(saved) in result.stdout
    values = np.load(saved, allow_pickle=False)
    assert values.shape == (13, 128) and values.dtype == np.float32  # 1 + (1248 - 96) // 96 examples
    audio, rate = sf.read(song, dtype="float32")
    manifest = Catalog(MANIFESTS).get("vggish")
    feeds = prepare_inputs(manifest, audio, rate)
    runner = open_artifact(out / "vggish" / "FP32" / "vggish.xml", "FP32", exact=True)
    expected = np.concatenate([runner.run(f)["embedding"] for f in feeds])
    np.testing.assert_allclose(values, expected, atol=1e-5)
    table = ok(run_zoo("predict", "--name", "vggish", "-o", str(out), str(song)), "zoo predict table")
    assert "norm" in table.stdout and len(table.stdout.strip().splitlines()) == 14
    refused = run_zoo(
        "predict", "--name", "audioset-attention-feature", "-o", str(out), str(song), "--format", "npy"
    )
    assert refused.returncode == 2 and "not an embedding model" in refused.stderr


def test_predict_on_a_composite_names_the_missing_stage(song, tmp_path):
    result = run_zoo(
        "predict", "--name", "audioset-attention-multi", "--reference-weights", "-o", str(tmp_path), str(song)
    )
    assert result.returncode == 2
    assert "takes audio through vggish, which is not converted" in result.stderr
    assert "zoo convert --name audioset-attention-multi --chain --reference-weights" in result.stderr
