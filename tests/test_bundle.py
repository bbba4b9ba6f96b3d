"""`zoo bundle` and `zoo bundle verify` on real pipeline outputs.

A tiny ONNX classifier goes through the real `zoo convert` and `zoo verify` (seconds); its
outputs are bundled, signed with a key pair made by `zoo bundle keygen`, tampered with, and
checked again. One catalog entry made from reference weights covers the reference-weights gate.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import shutil
import tarfile
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest
import yaml

from tests import tinymodel
from tests.conftest import run_zoo
from zoo.vocab import human_size

pytestmark = pytest.mark.xdist_group("bundle")

LABELS = tinymodel.LABELS


def sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def ok(result, what: str):
    assert result.returncode == 0, f"{what} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}"
    return result


def write_tiny_entry(catalog: Path, model: Path) -> Path:
    """The shared tiny entry, quantized too, so bundles carry INT8."""
    return tinymodel.write_tiny_entry(
        catalog, model, quantize="{enabled: true, subset_size: 16}", extra="    INT8: {top1: 0.5}\n"
    )


@dataclass
class Verified:
    catalog: Path
    out: Path


@dataclass
class Keys:
    private: Path
    public: Path
    other_public: Path


@dataclass
class Made:
    dist: Path
    folder: Path
    tarball: Path
    info: dict


def convert_quantize_verify(catalog: Path, out: Path) -> None:
    for command in ("convert", "quantize", "verify"):
        ok(run_zoo(command, "--manifests", str(catalog), "--name", "tiny", "-o", str(out)), f"zoo {command}")


def built_once(tmp_path_factory, name: str, build) -> Path:
    """A folder made once per test run and shared by every xdist worker (built under a file lock)."""
    from filelock import FileLock

    base = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        base = base.parent  # the run's folder, above each worker's own
    root = base / name
    with FileLock(str(root) + ".lock"):
        if not (root / ".complete").is_file():
            shutil.rmtree(root, ignore_errors=True)
            root.mkdir(parents=True)
            build(root)
            (root / ".complete").touch()
    return root


@pytest.fixture(scope="session")
def verified_tiny(tmp_path_factory) -> Verified:
    """The tiny entry through the real `zoo convert`, `zoo quantize` and `zoo verify`."""

    def build(root: Path) -> None:
        write_tiny_entry(root / "catalog", tinymodel.make_tiny_onnx(root / "upstream" / "tiny.onnx"))
        convert_quantize_verify(root / "catalog", root / "out")

    root = built_once(tmp_path_factory, "bundle-tiny", build)
    return Verified(root / "catalog", root / "out")


@pytest.fixture(scope="session")
def keys(tmp_path_factory) -> Keys:
    root = tmp_path_factory.mktemp("keys")
    ok(run_zoo("bundle", "keygen", str(root / "signer.pem")), "keygen")
    ok(run_zoo("bundle", "keygen", str(root / "stranger.pem")), "keygen")
    return Keys(root / "signer.pem", root / "signer.pem.pub", root / "stranger.pem.pub")


def make_bundle(
    verified: Verified, dist: Path, *extra: str, version: str = "1.0.0", env: dict | None = None
) -> Made:
    result = ok(
        run_zoo(
            "bundle",
            "--manifests",
            str(verified.catalog),
            "--name",
            "tiny",
            "--version",
            version,
            "-o",
            str(verified.out),
            "--dist",
            str(dist),
            "--json",
            *extra,
            env=env,
        ),
        "zoo bundle",
    )
    info = result.json()
    return Made(dist, Path(info["directory"]), Path(info["tarball"]), info)


@pytest.fixture(scope="session")
def signed(verified_tiny, keys, tmp_path_factory) -> Made:
    return make_bundle(verified_tiny, tmp_path_factory.mktemp("signed"), "--sign-key", str(keys.private))


def copy_of(made: Made, tmp_path: Path) -> Path:
    target = tmp_path / made.folder.name
    shutil.copytree(made.folder, target)
    return target


def flip_byte(path: Path, where: float = 0.5) -> None:
    data = bytearray(path.read_bytes())
    data[int(len(data) * where)] ^= 0x01
    path.write_bytes(bytes(data))


# -- what goes in -------------------------------------------------------------------------------


def test_bundle_holds_verified_artifacts_golden_vectors_cards_and_sums(verified_tiny, signed, keys):
    folder = signed.folder
    assert folder.name == "tiny-1.0.0" and signed.tarball.name == "tiny-1.0.0.tar.gz"
    assert signed.info["signed"] is True and signed.info["models"] == ["tiny"]
    document = json.loads((folder / "bundle.json").read_text())
    report = json.loads((verified_tiny.out / "tiny" / "report.json").read_text())
    assert document["schema"] == 1 and document["version"] == "1.0.0" and document["name"] == "tiny"
    assert document["created"] == report["created"]
    assert document["created_from"].startswith("newest report.json")
    for tool in ("zoo", "onnx", "onnxruntime", "openvino", "model-signing", "oras"):
        assert tool in document["versions"]
    assert document["reference_weights"] is False
    assert document["signature"]["public_key_sha256"] == sha256(keys.public)

    model = document["models"][0]
    assert model["manifest"]["name"] == "tiny" and model["license"]["name"] == "Apache-2.0"
    assert model["sources"] == report["sources"]
    assert model["labels"]["names"] == LABELS
    assert (folder / model["labels"]["file"]).read_text().split() == LABELS
    assert [a["kind"] for a in model["artifacts"]] == ["onnx", "FP32", "FP16", "INT8"]
    for artifact in model["artifacts"]:
        entry = report["artifacts"][artifact["kind"]]
        assert artifact["parity"]["metrics"] == entry["metrics"] and artifact["parity"]["passed"] is True
        assert artifact["sha256"] == entry["sha256"]
        for item in artifact["files"]:
            assert (folder / item["path"]).stat().st_size == item["size"]
            assert sha256(folder / item["path"]) == item["sha256"]
    assert [a["precision"] for a in model["artifacts"]] == ["FP32", "FP32", "FP16", "INT8"]
    quantization = model["artifacts"][3]["quantization"]
    stamp = json.loads((verified_tiny.out / "tiny" / "stamps" / "INT8.json").read_text())
    assert quantization == stamp["quantization"] and 0 < quantization["agreement"] <= 1
    assert {Path(f["path"]).name for f in model["artifacts"][1]["files"]} == {"tiny.xml", "tiny.bin"}
    golden = sorted((folder / "models/tiny/test_data").glob("test_data_set_*/input_0.pb"))
    assert golden and model["golden_vectors"]["sets"] == len(golden)

    listed = {}
    for line in (folder / "SHA256SUMS").read_text().splitlines():
        digest, rel = line.split("  ", 1)
        listed[rel] = digest
    on_disk = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())
    assert sorted(listed) == [p for p in on_disk if p not in ("SHA256SUMS", "bundle.sig")]
    assert all(sha256(folder / rel) == digest for rel, digest in listed.items())


def test_model_card_has_front_matter_with_measured_metrics_and_a_readable_body(verified_tiny, signed):
    card = (signed.folder / "models/tiny/MODEL_CARD.md").read_text()
    assert card.startswith("---\n")
    front = yaml.safe_load(card.split("---\n")[1])
    report = json.loads((verified_tiny.out / "tiny" / "report.json").read_text())
    assert front["license"] == "apache-2.0" and front["task"] == "audio-classification"
    assert front["tags"] == ["test"] and front["commercial_use"] is True
    by_kind = {m["artifact"]: m for m in front["metrics"]}
    assert by_kind["FP16"]["max_abs"] == report["artifacts"]["FP16"]["metrics"]["max_abs"]
    assert by_kind["onnx"]["runtime"] == "onnxruntime"
    assert 0 < by_kind["INT8"]["quantization_agreement"] <= 1
    for heading in (
        "## Licence",
        "## Preprocessing",
        "## Labels",
        "## Verification",
        "## Checking an artifact with the golden vectors",
    ):
        assert heading in card
    assert "z-score" in card and "8000 Hz" in card
    document = json.loads((signed.folder / "bundle.json").read_text())
    onnx = document["models"][0]["artifacts"][0]
    assert f"`{onnx['path']}` | {human_size(onnx['size'])} |" in card  # sizes in kB = 1000 B, as elsewhere
    assert (verified_tiny.out / "tiny" / "MODEL_CARD.md").read_text() == card


def test_golden_vectors_in_the_bundle_recheck_the_bundled_onnx(signed):
    """The card's recipe works: the bundled ONNX reproduces the source framework's outputs."""
    import onnx
    import onnxruntime as ort
    from onnx import numpy_helper

    root = signed.folder / "models/tiny"
    session = ort.InferenceSession(str(root / "onnx/tiny.onnx"))
    checked = 0
    for folder in sorted((root / "test_data").glob("test_data_set_*")):
        tensors = {}
        for path in sorted(folder.glob("*.pb")):
            proto = onnx.TensorProto()
            proto.ParseFromString(path.read_bytes())
            tensors[path.stem] = (proto.name, numpy_helper.to_array(proto))
        got = session.run(None, {tensors["input_0"][0]: tensors["input_0"][1]})[0]
        assert np.max(np.abs(got - tensors["output_0"][1])) < 1e-5
        checked += 1
    assert checked >= 2


# -- reproducible -------------------------------------------------------------------------------


def test_two_runs_give_the_same_tarball_bytes(verified_tiny, tmp_path):
    first = make_bundle(verified_tiny, tmp_path / "a")
    second = make_bundle(verified_tiny, tmp_path / "b")
    assert first.info["tarball_sha256"] == second.info["tarball_sha256"] == sha256(first.tarball)
    assert first.tarball.read_bytes() == second.tarball.read_bytes()

    raw = first.tarball.read_bytes()
    assert raw[:2] == b"\x1f\x8b" and raw[4:8] == b"\0\0\0\0"  # gzip header: no mtime
    assert not raw[3] & 0x08  # no file name in the gzip header
    created = datetime.fromisoformat(first.info["created"].replace("Z", "+00:00")).timestamp()
    with tarfile.open(first.tarball) as tar:
        members = tar.getmembers()
    names = [m.name for m in members]
    assert names == sorted(names) and names[0] == "tiny-1.0.0"
    for member in members:
        assert (member.uid, member.gid, member.uname, member.gname) == (0, 0, "", "")
        assert member.mtime == created
        assert member.mode in (0o644, 0o755)


def test_source_date_epoch_sets_the_creation_time(verified_tiny, tmp_path):
    made = make_bundle(verified_tiny, tmp_path, env={"SOURCE_DATE_EPOCH": "1700000000"})
    document = json.loads((made.folder / "bundle.json").read_text())
    assert document["created"] == "2023-11-14T22:13:20Z" and document["created_from"] == "SOURCE_DATE_EPOCH"
    with tarfile.open(made.tarball) as tar:
        assert {m.mtime for m in tar.getmembers()} == {1700000000}


def test_signed_rerun_keeps_the_signature_and_the_bytes(verified_tiny, keys, tmp_path):
    first = make_bundle(verified_tiny, tmp_path, "--sign-key", str(keys.private))
    again = make_bundle(verified_tiny, tmp_path, "--sign-key", str(keys.private))
    assert again.info["signature_reused"] is True
    assert first.info["tarball_sha256"] == again.info["tarball_sha256"]
    elsewhere = make_bundle(verified_tiny, tmp_path / "fresh", "--sign-key", str(keys.private))
    assert elsewhere.info["signature_reused"] is False

    def members(path: Path) -> dict[str, bytes]:
        with tarfile.open(path) as tar:
            return {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}

    one, two = members(first.tarball), members(elsewhere.tarball)
    assert one.keys() == two.keys()
    differing = [name for name in one if one[name] != two[name]]
    assert differing == ["tiny-1.0.0/bundle.sig"]  # ECDSA signatures are randomized; nothing else differs
    ok(run_zoo("bundle", "verify", str(elsewhere.tarball), "--public-key", str(keys.public)), "verify")


# -- verify -------------------------------------------------------------------------------------


def test_verify_passes_on_folder_and_tarball_and_checks_the_signature(signed, keys):
    for path in (signed.folder, signed.tarball):
        result = ok(
            run_zoo("bundle", "verify", str(path), "--public-key", str(keys.public), "--json"), "verify"
        )
        data = result.json()
        assert data["passed"] and data["signature_checked"] and data["models"] == ["tiny"]
        assert data["files"] == len((signed.folder / "SHA256SUMS").read_text().splitlines())
    plain = ok(run_zoo("bundle", "verify", str(signed.folder)), "verify")
    assert "NOT checked" in plain.stdout and plain.stdout.rstrip().endswith("OK")


@pytest.mark.parametrize(
    "target",
    [
        "models/tiny/onnx/tiny.onnx",
        "models/tiny/FP32/tiny.bin",
        "models/tiny/FP16/tiny.xml",
        "models/tiny/test_data/test_data_set_1/output_0.pb",
        "models/tiny/MODEL_CARD.md",
        "bundle.json",
    ],
)
def test_one_changed_byte_fails_verify_naming_the_file(signed, keys, tmp_path, target):
    folder = copy_of(signed, tmp_path)
    flip_byte(folder / target)
    result = run_zoo("bundle", "verify", str(folder), "--public-key", str(keys.public))
    assert result.returncode == 1, result.stderr
    assert target in result.stderr and "Traceback" not in result.stderr


def test_changed_file_with_forged_sums_is_caught_by_the_signature(signed, keys, tmp_path):
    """Rewrite an artifact and every checksum that describes it: only the signature can tell."""
    folder = copy_of(signed, tmp_path)
    target = "models/tiny/onnx/tiny.onnx"
    flip_byte(folder / target, where=0.9)
    digest = sha256(folder / target)
    document = json.loads((folder / "bundle.json").read_text())
    for artifact in document["models"][0]["artifacts"]:
        if artifact["path"] == target:
            artifact["sha256"] = digest
            for item in artifact["files"]:
                item["sha256"] = digest
    (folder / "bundle.json").write_text(json.dumps(document, indent=2) + "\n")
    lines = []
    for line in (folder / "SHA256SUMS").read_text().splitlines():
        old, rel = line.split("  ", 1)
        lines.append(f"{sha256(folder / rel) if rel in (target, 'bundle.json') else old}  {rel}\n")
    (folder / "SHA256SUMS").write_text("".join(lines))

    assert run_zoo("bundle", "verify", str(folder)).returncode == 0  # sums alone are consistent
    result = run_zoo("bundle", "verify", str(folder), "--public-key", str(keys.public))
    assert result.returncode == 1 and target in result.stderr and "bundle.sig" in result.stderr


def test_wrong_public_key_fails_the_signature_check(signed, keys):
    result = run_zoo("bundle", "verify", str(signed.tarball), "--public-key", str(keys.other_public))
    assert result.returncode == 1
    assert "bundle.sig" in result.stderr and "does not verify" in result.stderr
    assert str(signed.tarball) in result.stderr and "Traceback" not in result.stderr


def test_altered_missing_or_added_files_fail_verify(signed, keys, tmp_path):
    folder = copy_of(signed, tmp_path)
    signature = json.loads((folder / "bundle.sig").read_text())
    raw = signature["dsseEnvelope"]["signatures"][0]["sig"]
    signature["dsseEnvelope"]["signatures"][0]["sig"] = ("A" if raw[10] != "A" else "B").join(
        [raw[:10], raw[11:]]
    )
    (folder / "bundle.sig").write_text(json.dumps(signature))
    result = run_zoo("bundle", "verify", str(folder), "--public-key", str(keys.public))
    assert result.returncode == 1 and "bundle.sig" in result.stderr

    (folder / "bundle.sig").unlink()
    result = run_zoo("bundle", "verify", str(folder))
    assert result.returncode == 1 and "bundle.sig is missing" in result.stderr

    folder = copy_of(signed, tmp_path / "again")
    (folder / "models/tiny/extra.onnx").write_bytes(b"not in the sums")
    result = run_zoo("bundle", "verify", str(folder))
    assert result.returncode == 1 and "models/tiny/extra.onnx" in result.stderr

    folder = copy_of(signed, tmp_path / "third")
    (folder / "models/tiny/FP16/tiny.bin").unlink()
    result = run_zoo("bundle", "verify", str(folder))
    assert result.returncode == 1 and "models/tiny/FP16/tiny.bin" in result.stderr


def test_tarball_with_a_link_or_parent_path_is_refused(signed, tmp_path):
    evil = tmp_path / "evil.tar.gz"
    with tarfile.open(evil, "w:gz") as tar:
        tar.add(signed.folder, arcname=signed.folder.name)
        link = tarfile.TarInfo(f"{signed.folder.name}/models/link")
        link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
        tar.addfile(link)
    result = run_zoo("bundle", "verify", str(evil))
    assert result.returncode == 1 and "link" in result.stderr

    climb = tmp_path / "climb.tar.gz"
    with tarfile.open(climb, "w:gz") as tar:
        data = b"x"
        info = tarfile.TarInfo("../outside.txt")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    result = run_zoo("bundle", "verify", str(climb))
    assert result.returncode == 1 and "unsafe path" in result.stderr
    assert not (tmp_path.parent / "outside.txt").exists()


def rewrite_bundle_json(folder: Path, change) -> None:
    """Edit bundle.json and its line in SHA256SUMS (what a forger could do; only a signature tells)."""
    document = json.loads((folder / "bundle.json").read_text())
    change(document)
    (folder / "bundle.json").write_text(json.dumps(document, indent=2) + "\n")
    lines = []
    for line in (folder / "SHA256SUMS").read_text().splitlines():
        old, rel = line.split("  ", 1)
        lines.append(f"{sha256(folder / rel) if rel == 'bundle.json' else old}  {rel}\n")
    (folder / "SHA256SUMS").write_text("".join(lines))


def test_bundle_json_reads_back_as_the_record_it_was_written_from(signed):
    from zoo.bundle.record import dump_bundle, parse_bundle

    raw = (signed.folder / "bundle.json").read_bytes()
    record = parse_bundle(raw, str(signed.folder))
    assert dump_bundle(record).encode() == raw
    onnx = record.models[0].artifacts[0]
    # an optional fact the report did not have stays absent, not written as null
    assert onnx.parity.hint is None and "hint" not in json.loads(raw)["models"][0]["artifacts"][0]["parity"]
    assert record.models[0].artifacts[3].quantization


@pytest.mark.parametrize(
    ("change", "named"),
    [
        (lambda d: d["models"][0]["artifacts"][0].update(size="big"), "field models.0.artifacts.0.size"),
        (lambda d: d["models"][0].pop("golden_vectors"), "field models.0.golden_vectors is missing"),
        (lambda d: d["models"][0]["golden_vectors"]["files"][0].update(path="../x"), "unsafe path"),
        (lambda d: d.update(schema=2), "schema 1"),
    ],
)
def test_a_malformed_bundle_json_is_one_paragraph_naming_the_field(signed, tmp_path, change, named):
    folder = copy_of(signed, tmp_path)
    rewrite_bundle_json(folder, change)
    for command in (
        ("bundle", "verify", str(folder)),
        ("publish", str(folder), "--to", str(tmp_path / "shelf")),
    ):
        result = run_zoo(*command)
        assert result.returncode == 1, result.stderr
        assert "bundle.json" in result.stderr and named in result.stderr
        assert "Traceback" not in result.stderr and "internal error" not in result.stderr
    assert not (tmp_path / "shelf").exists()

    tarball = tmp_path / "bad.tar.gz"
    with tarfile.open(tarball, "w:gz") as tar:
        tar.add(folder, arcname=folder.name)
    pulled = run_zoo("pull", str(tarball), "-o", str(tmp_path / "got"))
    assert pulled.returncode == 1 and named in pulled.stderr and "Traceback" not in pulled.stderr
    assert not (tmp_path / "got" / folder.name).exists()


def test_damaged_tarball_is_reported_not_a_traceback(signed, tmp_path):
    broken = tmp_path / signed.tarball.name
    data = bytearray(signed.tarball.read_bytes())
    for offset in range(len(data) // 2, len(data) // 2 + 64):
        data[offset] ^= 0xFF
    broken.write_bytes(bytes(data))
    result = run_zoo("bundle", "verify", str(broken))
    assert result.returncode == 1 and "Traceback" not in result.stderr and str(broken) in result.stderr
    with gzip.open(signed.tarball) as intact:  # the original stays readable
        assert intact.read(10)


# -- what is refused ----------------------------------------------------------------------------


def test_precisions_choose_the_artifacts(verified_tiny, tmp_path):
    made = make_bundle(verified_tiny, tmp_path, "--precisions", "onnx,fp16")
    document = json.loads((made.folder / "bundle.json").read_text())
    assert [a["kind"] for a in document["models"][0]["artifacts"]] == ["onnx", "FP16"]
    assert not (made.folder / "models/tiny/FP32").exists()

    result = run_zoo(
        "bundle",
        "--manifests",
        str(verified_tiny.catalog),
        "--name",
        "tiny",
        "--version",
        "1.0.0",
        "-o",
        str(verified_tiny.out),
        "--dist",
        str(tmp_path / "x"),
        "--precisions",
        "fp64",
    )
    assert result.returncode == 2 and "unknown artifact" in result.stderr


def test_bad_input_is_one_paragraph_and_exit_2(verified_tiny, tmp_path):
    base = [
        "bundle",
        "--manifests",
        str(verified_tiny.catalog),
        "--name",
        "tiny",
        "--dist",
        str(tmp_path / "d"),
    ]
    result = run_zoo(*base, "--version", "1.0", "-o", str(verified_tiny.out))
    assert result.returncode == 2 and "--version" in result.stderr
    result = run_zoo(*base, "-o", str(verified_tiny.out))
    assert result.returncode == 2 and "--version" in result.stderr
    result = run_zoo(*base, "--version", "1.0.0", "-o", str(tmp_path / "empty"))
    assert result.returncode == 2 and "report.json" in result.stderr and "zoo verify" in result.stderr
    result = run_zoo(
        *base, "--version", "1.0.0", "-o", str(verified_tiny.out), "--sign-key", str(tmp_path / "nokey")
    )
    assert result.returncode == 2 and "--sign-key" in result.stderr
    for made in (result,):
        assert "Traceback" not in made.stderr
    assert not (tmp_path / "d").exists() or not any((tmp_path / "d").iterdir())


def test_stale_report_and_changed_artifact_are_refused(verified_tiny, tmp_path):
    catalog = tmp_path / "catalog"
    shutil.copytree(verified_tiny.catalog, catalog)
    manifest = catalog / "tiny.yaml"
    manifest.write_text(
        manifest.read_text().replace("A tiny test classifier", "An edited tiny test classifier")
    )
    result = run_zoo(
        "bundle",
        "--manifests",
        str(catalog),
        "--name",
        "tiny",
        "--version",
        "1.0.0",
        "-o",
        str(verified_tiny.out),
        "--dist",
        str(tmp_path / "d"),
    )
    assert result.returncode == 2 and "different manifest" in result.stderr

    out = tmp_path / "out"
    shutil.copytree(verified_tiny.out, out)
    flip_byte(out / "tiny" / "FP16" / "tiny.xml", where=0.3)
    result = run_zoo(
        "bundle",
        "--manifests",
        str(verified_tiny.catalog),
        "--name",
        "tiny",
        "--version",
        "1.0.0",
        "-o",
        str(out),
        "--dist",
        str(tmp_path / "d"),
    )
    assert (
        result.returncode == 1 and "changed since `zoo verify`" in result.stderr and "FP16" in result.stderr
    )
    assert not (tmp_path / "d" / "tiny-1.0.0").exists()


def test_a_model_that_failed_verification_is_refused(verified_tiny, tmp_path):
    """Tighten the FP16 tolerance beyond what FP16 can meet, verify for real, and bundle."""
    catalog, out = tmp_path / "catalog", tmp_path / "out"
    shutil.copytree(verified_tiny.catalog, catalog)
    shutil.copytree(verified_tiny.out, out)
    manifest = catalog / "tiny.yaml"
    manifest.write_text(manifest.read_text().replace("FP16: {atol: 5.0e-3", "FP16: {atol: 1.0e-9"))
    failed = run_zoo("verify", "--manifests", str(catalog), "--name", "tiny", "-o", str(out))
    assert failed.returncode == 1, failed.stderr
    assert json.loads((out / "tiny" / "report.json").read_text())["passed"] is False
    result = run_zoo(
        "bundle",
        "--manifests",
        str(catalog),
        "--name",
        "tiny",
        "--version",
        "1.0.0",
        "-o",
        str(out),
        "--dist",
        str(tmp_path / "d"),
    )
    assert result.returncode == 1 and "did not pass" in result.stderr and "FP16" in result.stderr
    assert not (tmp_path / "d" / "tiny-1.0.0").exists()


@pytest.fixture(scope="session")
def reference_outputs(tmp_path_factory) -> Path:
    """A catalog entry with no published weights, converted and verified from reference weights."""

    def build(root: Path) -> None:
        out = str(root / "out")
        ok(
            run_zoo(
                "convert",
                "--name",
                "audioset-attention-single",
                "--reference-weights",
                "--precisions",
                "FP32",
                "-o",
                out,
            ),
            "zoo convert --reference-weights",
        )
        ok(
            run_zoo("verify", "--name", "audioset-attention-single", "--reference-weights", "-o", out),
            "zoo verify --reference-weights",
        )

    return built_once(tmp_path_factory, "bundle-reference", build) / "out"


def test_reference_weights_are_refused_unless_allowed_and_then_marked(reference_outputs, tmp_path):
    args = [
        "bundle",
        "--name",
        "audioset-attention-single",
        "--version",
        "0.1.0",
        "-o",
        str(reference_outputs),
        "--dist",
        str(tmp_path),
    ]
    refused = run_zoo(*args)
    assert refused.returncode == 2 and "--allow-reference-weights" in refused.stderr
    missing = run_zoo(*args, "--allow-reference-weights", "--precisions", "FP16")
    assert missing.returncode == 2 and "no verified FP16" in missing.stderr
    made = ok(run_zoo(*args, "--allow-reference-weights", "--precisions", "onnx", "--json"), "bundle").json()
    assert made["reference_weights"] is True
    folder = Path(made["directory"])
    document = json.loads((folder / "bundle.json").read_text())
    assert document["reference_weights"] is True and document["models"][0]["reference_weights"] is True
    card = (folder / "models/audioset-attention-single/MODEL_CARD.md").read_text()
    assert yaml.safe_load(card.split("---\n")[1])["reference_weights"] is True
    assert "Reference weights" in card
    checked = ok(run_zoo("bundle", "verify", made["tarball"]), "verify")
    assert "REFERENCE WEIGHTS" in checked.stdout


# -- keys ---------------------------------------------------------------------------------------


def test_keygen_writes_a_private_key_only_its_owner_reads_and_never_overwrites(tmp_path):
    key = tmp_path / "k.pem"
    ok(run_zoo("bundle", "keygen", str(key)), "keygen")
    assert os.stat(key).st_mode & 0o777 == 0o600
    assert b"PRIVATE KEY" in key.read_bytes() and b"PUBLIC KEY" in (tmp_path / "k.pem.pub").read_bytes()
    before = key.read_bytes()
    again = run_zoo("bundle", "keygen", str(key))
    assert again.returncode == 2 and "--force" in again.stderr and key.read_bytes() == before


def test_an_encrypted_key_takes_its_password_from_the_environment(verified_tiny, tmp_path):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP384R1())
    path = tmp_path / "locked.pem"
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"open sesame"),
        )
    )
    public = tmp_path / "locked.pub"
    public.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    args = [
        "bundle",
        "--manifests",
        str(verified_tiny.catalog),
        "--name",
        "tiny",
        "--version",
        "1.0.0",
        "-o",
        str(verified_tiny.out),
        "--dist",
        str(tmp_path / "d"),
        "--sign-key",
        str(path),
    ]
    locked = run_zoo(*args)
    assert locked.returncode == 2 and "ZOO_SIGN_PASSWORD" in locked.stderr
    ok(run_zoo(*args, env={"ZOO_SIGN_PASSWORD": "open sesame"}), "bundle with an encrypted key")
    ok(run_zoo("bundle", "verify", str(tmp_path / "d" / "tiny-1.0.0"), "--public-key", str(public)), "verify")


# -- requiring a signature -----------------------------------------------------------------------


def test_require_signature_needs_a_key_to_check_it_with(signed, keys, tmp_path):
    """A forged signature passed `--require-signature` alone: requiring one now requires --public-key."""
    folder = copy_of(signed, tmp_path)
    signature = folder / "bundle.sig"
    assert signature.is_file()
    signature.write_bytes(b"garbage, not a signature")
    for path in (folder, signed.tarball):
        result = run_zoo("bundle", "verify", str(path), "--require-signature")
        assert result.returncode == 2, result.stdout + result.stderr
        assert "--require-signature needs --public-key" in result.stderr and "OK" not in result.stdout
    forged = run_zoo("bundle", "verify", str(folder), "--require-signature", "--public-key", str(keys.public))
    assert forged.returncode == 1, forged.stderr
    pulled = run_zoo("pull", str(signed.tarball), "-o", str(tmp_path / "pulled"), "--require-signature")
    assert pulled.returncode == 2 and "--public-key" in pulled.stderr, pulled.stderr
    assert not (tmp_path / "pulled").exists() or not any((tmp_path / "pulled").iterdir())


def test_output_options_that_name_a_file_and_keygen_on_a_folder_are_bad_input(
    signed, verified_tiny, tmp_path
):
    occupied = tmp_path / "occupied"
    occupied.write_text("a file, not a folder\n")
    pulled = run_zoo("pull", str(signed.tarball), "-o", str(occupied))
    assert pulled.returncode == 2 and "--output-dir" in pulled.stderr, pulled.stderr
    for option in ("--dist", "-o"):
        args = ["--dist", str(tmp_path / "dist"), "-o", str(verified_tiny.out)]
        args[args.index(option) + 1] = str(occupied)
        result = run_zoo(
            "bundle", "--manifests", str(verified_tiny.catalog), "--name", "tiny", "--version", "1.0.0", *args
        )
        assert result.returncode == 2 and "not a folder" in result.stderr, result.stderr
    keygen = run_zoo("bundle", "keygen", str(tmp_path))
    assert keygen.returncode == 2 and "is a folder" in keygen.stderr, keygen.stderr
    for result in (pulled, keygen):
        assert "internal error" not in result.stderr
    assert occupied.read_text() == "a file, not a folder\n"
