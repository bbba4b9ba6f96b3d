"""The manifest schema: the real catalog validates, bad manifests fail with file and field named."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import yaml

from zoo.catalog import Catalog
from zoo.errors import ManifestError, UsageError
from zoo.manifest import load_manifest

from .conftest import MANIFESTS

EXPECTED = {
    "aclnet",
    "aclnet-int8",
    "yamnet",
    "kahl-aed",
    "dcase2018-task2-vggish",
    "dcase2018-task2-baseline-cnn",
    "audioset-attention-single",
    "audioset-attention-multi",
    "audioset-attention-feature",
    "silero-vad",
    "birdnet-v2.4",
    "vggish",
    "musicnn-mtt",
    "musicnn-msd",
    "musicnn-vgg-mtt",
    "musicnn-vgg-msd",
}
LABEL_SHA256 = {
    "aclnet_53cl.txt": "1d9f14d2ebefe1624a84bb2ec2567d72241460c322d064b19f1c3922b29b3f57",
    "yamnet_class_map.csv": "cdf24d193e196d9e95912a2667051ae203e92a2ba09449218ccb40ef787c6df2",
    "audioset_class_labels_indices.csv": "cdd1049833c4b86127c2773ac0d14a2754b6a6d0d1798002ed5c66e699708429",
    "dcase2018_task2_labels.txt": "ba09bbd0e9fb59962317666fa2f9ae94d324cc624af90fd013c99c2e7f981516",
    # MTT_LABELS and MSD_LABELS of musicnn 0.1.0's musicnn/configuration.py, one per line
    "musicnn_mtt.txt": "77e9943a6877133c414a952a8ef6489d7ad4342da8c897a9579a13db8fb77823",
    "musicnn_msd.txt": "3b0fd183e73f8a0e7e65b955f61ec3034e517a6427cacad8ec0c2f16394d0770",
}


def test_catalog_has_every_entry():
    assert set(Catalog(MANIFESTS).names()) == EXPECTED


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_labels_match_output_size(name):
    manifest = Catalog(MANIFESTS).get(name)
    assert manifest.labels.count == manifest.num_classes
    if manifest.labels.file is not None:
        assert manifest.labels_path().is_file()
        labels = manifest.read_labels()
        assert len(labels) == manifest.num_classes
        assert len(set(labels)) == len(labels), "label names must be unique"
    else:
        assert manifest.labels.source in [f.name for f in manifest.files]


@pytest.mark.parametrize("filename", sorted(LABEL_SHA256))
def test_label_files_are_upstream_copies(filename):
    data = (MANIFESTS / "labels" / filename).read_bytes()
    assert hashlib.sha256(data).hexdigest() == LABEL_SHA256[filename]


def test_checksums_from_models_md():
    catalog = Catalog(MANIFESTS)
    aclnet = catalog.get("aclnet").file("aclnet_des_53.onnx")
    assert aclnet.size == 10966521
    assert aclnet.sha384.startswith("966d8b3e0eb46d79")
    assert catalog.get("yamnet").file("yamnet.h5").size is None  # upstream publishes none
    kahl = catalog.get("kahl-aed").file("AED_Example_Run_model.pkl")
    assert kahl.unpinned and kahl.checksum is None
    silero = catalog.get("silero-vad").file("silero_vad.jit")
    assert silero.sources[0].pypi.sha256 == "7b7f5436cfcb02fae583a05b512ea96467fd449fe54cb49a5e4f06c51a1e43b8"


def test_entries_without_weights_say_so():
    catalog = Catalog(MANIFESTS)
    for name in ("dcase2018-task2-vggish", "dcase2018-task2-baseline-cnn", "audioset-attention-single"):
        manifest = catalog.get(name)
        assert not manifest.weights.published and manifest.weights.format
        assert manifest.weights_available == "bring your own"


def test_birdnet_is_non_commercial():
    licence = Catalog(MANIFESTS).get("birdnet-v2.4").license
    assert licence.name == "CC-BY-NC-SA-4.0" and licence.commercial_use is False


def _write(tmp_path: Path, mutate) -> Path:
    data = yaml.safe_load((MANIFESTS / "aclnet.yaml").read_text())
    mutate(data)
    target = tmp_path / "aclnet.yaml"
    (tmp_path / "labels").mkdir(exist_ok=True)
    (tmp_path / "labels" / "aclnet_53cl.txt").write_bytes(
        (MANIFESTS / "labels" / "aclnet_53cl.txt").read_bytes()
    )
    target.write_text(yaml.safe_dump(data, sort_keys=False))
    return target


@pytest.mark.parametrize(
    ("mutate", "field", "expected"),
    [
        (
            lambda d: d["files"][0].update(sha385=d["files"][0].pop("sha384")),
            "files[0].sha385",
            "unknown key",
        ),
        (lambda d: d["files"][0].update(sha384="abc"), "files[0].sha384", "pattern"),
        (lambda d: d["files"][0].pop("sha384"), "files[0]", "unpinned"),
        (lambda d: d.update(framework="caffe"), "framework", "'onnx'"),
        (lambda d: d["inputs"][0].update(shape=[1, 0, 1]), "inputs[0].shape", "positive"),
        (lambda d: d.pop("labels"), "labels", "missing"),
        (lambda d: d["verify"]["tolerance"].update(FP64={"atol": 1}), "verify.tolerance.FP64", ""),
        (lambda d: d["files"][0]["sources"][0].update(url="ftp://x/y"), "files[0].sources[0]", "http"),
    ],
)
def test_bad_manifest_names_file_and_field(tmp_path, mutate, field, expected):
    path = _write(tmp_path, mutate)
    with pytest.raises(ManifestError) as info:
        load_manifest(path)
    message = str(info.value)
    assert str(path) in message
    assert f"field {field}" in message
    assert expected in message
    assert "\n" not in message


def test_duplicate_yaml_key_is_an_error(tmp_path):
    path = tmp_path / "aclnet.yaml"
    path.write_text((MANIFESTS / "aclnet.yaml").read_text() + "\nversion: 2.0.0\n")
    with pytest.raises(ManifestError, match="duplicate key 'version'"):
        load_manifest(path)


def test_name_must_match_file_name(tmp_path):
    path = _write(tmp_path, lambda d: d.update(name="other"))
    with pytest.raises(ManifestError, match="field name"):
        load_manifest(path)


def test_missing_labels_file(tmp_path):
    path = _write(tmp_path, lambda d: d["labels"].update(file="labels/nope.txt"))
    with pytest.raises(ManifestError, match="labels.file"):
        load_manifest(path)


def test_digest_follows_content(tmp_path):
    first = load_manifest(_write(tmp_path, lambda d: None)).digest
    again = load_manifest(_write(tmp_path, lambda d: None)).digest
    changed = load_manifest(_write(tmp_path, lambda d: d["convert"]["onnx"].update(opset=16))).digest
    assert first == again != changed


def test_selection_patterns_and_lists(tmp_path):
    catalog = Catalog(MANIFESTS)
    names = [m.name for m in catalog.select(names=["audioset-*,aclnet"])]
    assert names == [
        "aclnet",
        "audioset-attention-feature",
        "audioset-attention-multi",
        "audioset-attention-single",
    ]
    listing = tmp_path / "models.txt"
    listing.write_text("# offline entries\nsilero-vad\nbirdnet-*  # real weights\n")
    assert [m.name for m in catalog.select(list_file=listing)] == ["birdnet-v2.4", "silero-vad"]
    assert len(catalog.select(all_=True)) == len(EXPECTED)
    with pytest.raises(UsageError, match="no catalog entry 'nope'"):
        catalog.select(names=["nope"])
    with pytest.raises(UsageError, match="matches no catalog entry"):
        catalog.select(names=["zzz*"])
    with pytest.raises(UsageError, match="no models selected"):
        catalog.select()


def _write_musicnn(tmp_path: Path, mutate) -> Path:
    data = yaml.safe_load((MANIFESTS / "musicnn-mtt.yaml").read_text())
    mutate(data)
    target = tmp_path / "musicnn-mtt.yaml"
    (tmp_path / "labels").mkdir(exist_ok=True)
    (tmp_path / "labels" / "musicnn_mtt.txt").write_bytes(
        (MANIFESTS / "labels" / "musicnn_mtt.txt").read_bytes()
    )
    target.write_text(yaml.safe_dump(data, sort_keys=False))
    return target


@pytest.mark.parametrize(
    ("mutate", "field", "expected"),
    [
        (lambda d: d["tf1"].update(bindings={}), "tf1.bindings", "unknown key"),
        (lambda d: d["tf1"]["tensors"].update(tags="model/Sigmoid"), "tf1.tensors.tags", "pattern"),
        (lambda d: d["tf1"]["bind"].update({"model/Placeholder_2:0": "false"}), "tf1.bind", "bool"),
        (lambda d: d["tf1"]["tensors"].pop("tags"), "(top level)", "no graph tensor for tags"),
        (lambda d: d["tf1"]["tensors"].update(extra="x:0"), "(top level)", "extra, which are not inputs"),
        (lambda d: d.pop("tf1"), "(top level)", "framework tf1-checkpoint needs tf1.tensors"),
        (lambda d: d.update(framework="onnx"), "(top level)", "tf1 is for framework tf1-checkpoint only"),
        (lambda d: d["tf1"]["bind"].update({"model/Sigmoid:0": 1}), "tf1", "both a port and bound"),
        (lambda d: d["verify"].update(batch_sizes=[0]), "verify.batch_sizes[0]", "greater than 0"),
        (
            lambda d: d["inputs"][0].update(shape=[1, 187, 96]),
            "(top level)",
            "batches above 1 need a symbolic first dimension",
        ),
    ],
)
def test_bad_tf1_manifest_names_file_and_field(tmp_path, mutate, field, expected):
    path = _write_musicnn(tmp_path, mutate)
    with pytest.raises(ManifestError) as info:
        load_manifest(path)
    message = str(info.value)
    assert str(path) in message and f"field {field}" in message and expected in message, message
    assert "\n" not in message


def test_musicnn_entries_bind_is_training_and_verify_batches():
    catalog = Catalog(MANIFESTS)
    for name in ("musicnn-mtt", "musicnn-msd", "musicnn-vgg-mtt", "musicnn-vgg-msd"):
        manifest = catalog.get(name)
        assert manifest.framework == "tf1-checkpoint" and manifest.real_weights_offline
        assert manifest.tf1.bind == {"model/Placeholder_2:0": False}
        assert manifest.verify.batch_sizes == [1, 10]
        assert sorted(f.name.rsplit(".", 1)[-1] for f in manifest.files) == [
            "data-00000-of-00001",
            "index",
            "meta",
        ]
        assert {s.pypi.sha256 for f in manifest.files for s in f.sources} == {
            "f38a4890c648c1ddbb141c5d96d2b0a8cfcd36746002d896989f7b88beb65cfa"
        }
