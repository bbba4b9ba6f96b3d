"""`zoo publish`, `zoo bundle ls` and `zoo pull` against a folder and a real OCI registry on 127.0.0.1.

The registry is Debian's docker-registry, started by scripts/registry.sh with a temporary storage
folder (`make test` installs the package through scripts/system-deps.sh).
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import tarfile
from dataclasses import dataclass

import pytest
import requests

from tests import test_bundle as shared
from tests.conftest import ROOT, run_zoo
from tests.test_bundle import Made, flip_byte, make_bundle, ok, sha256

# session fixtures shared with the bundle tests (one tiny pipeline run, one key pair, one signed bundle)
verified_tiny = shared.verified_tiny
keys = shared.keys
signed = shared.signed

pytestmark = pytest.mark.xdist_group("bundle")

REGISTRY_SCRIPT = ROOT / "scripts" / "registry.sh"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass
class Registry:
    host: str

    def url(self, path: str) -> str:
        return f"http://{self.host}{path}"

    def ref(self, repository: str, tag: str | None = None) -> str:
        return f"oci://{self.host}/{repository}" + (f":{tag}" if tag else "")


@pytest.fixture(scope="session")
def registry(tmp_path_factory):
    state = tmp_path_factory.mktemp("registry")
    port = free_port()
    started = subprocess.run(
        ["bash", str(REGISTRY_SCRIPT), "start", str(port), str(state)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    if started.returncode == 3:
        pytest.skip(f"docker-registry is not installed ({started.stderr.strip()}); `make test` installs it")
    assert started.returncode == 0, f"registry did not start:\n{started.stdout}\n{started.stderr}"
    try:
        yield Registry(f"127.0.0.1:{port}")
    finally:
        subprocess.run(["bash", str(REGISTRY_SCRIPT), "stop", str(state)], capture_output=True, timeout=60)


@pytest.fixture(scope="session")
def second_version(verified_tiny, keys, tmp_path_factory) -> Made:
    return make_bundle(
        verified_tiny, tmp_path_factory.mktemp("v110"), "--sign-key", str(keys.private), version="1.1.0"
    )


# -- folder target ------------------------------------------------------------------------------


def test_folder_round_trip_refuses_overwrite_and_lists_versions(signed, second_version, keys, tmp_path):
    target = tmp_path / "shelf"
    published = ok(run_zoo("publish", str(signed.folder), "--to", str(target), "--json"), "publish").json()
    assert published["replaced"] is False and published["sha256"] == sha256(signed.tarball)
    # publishing the folder re-tars it to the very same bytes
    assert sha256(target / "tiny-1.0.0.tar.gz") == sha256(signed.tarball)

    again = run_zoo("publish", str(signed.tarball), "--to", target.as_uri())
    assert again.returncode == 2 and "already published" in again.stderr and "--force" in again.stderr
    forced = ok(
        run_zoo("publish", str(signed.tarball), "--to", target.as_uri(), "--force", "--json"), "publish"
    )
    assert forced.json()["replaced"] is True
    ok(run_zoo("publish", str(second_version.tarball), "--to", str(target)), "publish 1.1.0")

    listed = ok(run_zoo("bundle", "ls", str(target), "--json"), "ls").json()
    assert [(r["name"], r["version"]) for r in listed] == [("tiny", "1.0.0"), ("tiny", "1.1.0")]
    assert all(r["signed"] and r["models"] == ["tiny@1.0.0"] for r in listed)
    table = ok(run_zoo("bundle", "ls", target.as_uri()), "ls")
    assert "1.1.0" in table.stdout and "tiny@1.0.0" in table.stdout

    choose = run_zoo("pull", str(target), "-o", str(tmp_path / "nowhere"))
    assert choose.returncode == 2 and "--version" in choose.stderr
    pulled = ok(
        run_zoo(
            "pull",
            str(target),
            "--version",
            "1.0.0",
            "-o",
            str(tmp_path / "got"),
            "--public-key",
            str(keys.public),
            "--json",
        ),
        "pull",
    ).json()
    assert pulled["signature_checked"] and pulled["version"] == "1.0.0"
    assert sha256(tmp_path / "got" / "tiny-1.0.0.tar.gz") == sha256(signed.tarball)
    assert (tmp_path / "got" / "tiny-1.0.0" / "bundle.json").read_bytes() == (
        signed.folder / "bundle.json"
    ).read_bytes()

    exists = run_zoo("pull", str(target / "tiny-1.0.0.tar.gz"), "-o", str(tmp_path / "got"))
    assert exists.returncode == 2 and "--force" in exists.stderr


def test_pull_from_a_folder_detects_a_changed_published_tarball(signed, tmp_path):
    target = tmp_path / "shelf"
    ok(run_zoo("publish", str(signed.tarball), "--to", str(target)), "publish")
    flip_byte(target / "tiny-1.0.0.tar.gz", where=0.6)
    result = run_zoo("pull", str(target), "--version", "1.0.0", "-o", str(tmp_path / "got"))
    assert result.returncode == 1 and "tiny-1.0.0.tar.gz" in result.stderr
    assert not (tmp_path / "got" / "tiny-1.0.0").exists()


def test_publish_refuses_a_tampered_bundle(signed, tmp_path):
    folder = tmp_path / signed.folder.name
    shutil.copytree(signed.folder, folder)
    flip_byte(folder / "models/tiny/FP32/tiny.bin")
    result = run_zoo("publish", str(folder), "--to", str(tmp_path / "shelf"))
    assert result.returncode == 1 and "models/tiny/FP32/tiny.bin" in result.stderr
    assert not (tmp_path / "shelf").exists()


# -- OCI registry -------------------------------------------------------------------------------


def test_oci_round_trip_with_our_media_types_and_annotations(
    registry, signed, second_version, keys, tmp_path
):
    ref = registry.ref("zoo/tiny", "1.0.0")
    pushed = ok(run_zoo("publish", str(signed.tarball), "--to", ref, "--json"), "publish oci").json()
    assert pushed["digest"].startswith("sha256:") and pushed["replaced"] is False

    manifest = requests.get(
        registry.url("/v2/zoo/tiny/manifests/1.0.0"),
        headers={"Accept": "application/vnd.oci.image.manifest.v1+json"},
        timeout=10,
    ).json()
    assert manifest["config"]["mediaType"] == "application/vnd.zoo.bundle.config.v1+json"
    [layer] = manifest["layers"]
    assert layer["mediaType"] == "application/vnd.zoo.bundle.layer.v1.tar+gzip"
    assert (
        layer["digest"] == f"sha256:{sha256(signed.tarball)}"
        and layer["size"] == signed.tarball.stat().st_size
    )
    notes = manifest["annotations"]
    assert notes["org.opencontainers.image.version"] == "1.0.0"
    assert notes["org.opencontainers.image.title"] == "tiny"
    assert notes["dev.zoo.bundle.models"] == "tiny@1.0.0" and notes["dev.zoo.bundle.signed"] == "true"
    config = requests.get(registry.url(f"/v2/zoo/tiny/blobs/{manifest['config']['digest']}"), timeout=10)
    assert config.content == (signed.folder / "bundle.json").read_bytes()

    refused = run_zoo("publish", str(signed.folder), "--to", ref)
    assert refused.returncode == 2 and "already exists" in refused.stderr
    ok(run_zoo("publish", str(signed.folder), "--to", ref, "--force"), "publish --force")
    # no tag: the bundle's version is the tag
    ok(run_zoo("publish", str(second_version.folder), "--to", registry.ref("zoo/tiny")), "publish 1.1.0")

    listed = ok(run_zoo("bundle", "ls", registry.ref("zoo/tiny"), "--json"), "ls oci").json()
    assert [(r["tag"], r["version"], r["signed"]) for r in listed] == [
        ("1.0.0", "1.0.0", True),
        ("1.1.0", "1.1.0", True),
    ]
    assert listed[0]["models"] == ["tiny@1.0.0"] and listed[0]["sha256"] == sha256(signed.tarball)

    pulled = ok(
        run_zoo("pull", ref, "-o", str(tmp_path), "--public-key", str(keys.public), "--json"), "pull"
    ).json()
    assert pulled["signature_checked"] and pulled["files"] > 10
    assert sha256(tmp_path / "tiny-1.0.0.tar.gz") == sha256(signed.tarball)
    ok(
        run_zoo("bundle", "verify", str(tmp_path / "tiny-1.0.0"), "--public-key", str(keys.public)),
        "verify pulled",
    )
    by_version = ok(
        run_zoo("pull", registry.ref("zoo/tiny"), "--version", "1.1.0", "-o", str(tmp_path / "v")), "pull"
    )
    assert "1.1.0" in by_version.stdout and (tmp_path / "v" / "tiny-1.1.0" / "SHA256SUMS").is_file()


def test_oci_pull_with_the_wrong_key_keeps_nothing(registry, signed, keys, tmp_path):
    ref = registry.ref("zoo/keys", "1.0.0")
    ok(run_zoo("publish", str(signed.tarball), "--to", ref), "publish")
    result = run_zoo("pull", ref, "-o", str(tmp_path), "--public-key", str(keys.other_public))
    assert result.returncode == 1 and "bundle.sig" in result.stderr and "does not verify" in result.stderr
    assert not any(tmp_path.iterdir())


def test_oci_errors_are_clear(registry, signed, tmp_path):
    missing = run_zoo("pull", registry.ref("zoo/tiny", "9.9.9"), "-o", str(tmp_path))
    assert missing.returncode == 2 and "no such tag" in missing.stderr
    empty = ok(run_zoo("bundle", "ls", registry.ref("zoo/never-pushed")), "ls")
    assert "no zoo bundles" in empty.stdout
    dead = run_zoo(
        "publish", str(signed.tarball), "--to", f"oci://127.0.0.1:{free_port()}/zoo:1.0.0", timeout=60
    )
    assert dead.returncode == 1 and "cannot reach the registry" in dead.stderr
    bad = run_zoo("publish", str(signed.tarball), "--to", "oci://127.0.0.1/Zoo:1.0.0")
    assert bad.returncode == 2 and "repository" in bad.stderr
    for result in (missing, dead, bad):
        assert "Traceback" not in result.stderr


def test_a_foreign_artifact_is_not_pulled_as_a_bundle(registry, tmp_path):
    """Something else in the registry (pushed with plain ORAS) is listed as nothing and refused by pull."""
    import oras.client

    other = tmp_path / "notes.txt"
    other.write_text("not a bundle\n")
    client = oras.client.OrasClient(hostname=registry.host, insecure=True)
    client.push(
        f"{registry.host}/zoo/other:1.0.0", files=[str(other)], disable_path_validation=True, quiet=True
    )
    listed = ok(run_zoo("bundle", "ls", registry.ref("zoo/other"), "--json"), "ls").json()
    assert listed == []
    result = run_zoo("pull", registry.ref("zoo/other", "1.0.0"), "-o", str(tmp_path / "got"))
    assert result.returncode == 2 and "not a zoo bundle" in result.stderr


def test_pulled_tarball_is_the_reproducible_one(registry, signed, tmp_path):
    ref = registry.ref("zoo/repro", "1.0.0")
    ok(run_zoo("publish", str(signed.folder), "--to", ref), "publish")
    ok(run_zoo("pull", ref, "-o", str(tmp_path)), "pull")
    with tarfile.open(tmp_path / "tiny-1.0.0.tar.gz") as tar:
        names = [m.name for m in tar.getmembers()]
    assert names == sorted(names)
    assert json.loads((tmp_path / "tiny-1.0.0" / "bundle.json").read_text())["version"] == "1.0.0"
