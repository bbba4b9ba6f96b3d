"""`zoo mirror` and `--mirror`: an air-gapped site gets every verified source from a folder or a web server.

The pypi source here resolves through a package index served on 127.0.0.1, given to pip the way
a user would (PIP_INDEX_URL), so the user's own pip configuration is what zoo goes through.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import zipfile
from pathlib import Path

from tests.conftest import run_zoo
from tests.support.catalogs import catalog_with_files, file_entry
from tests.support.httpserver import FileServer, Status

MEMBER = "tinyweights/data/model.bin"


def _wheel(payload: bytes) -> tuple[str, bytes]:
    """A minimal valid wheel carrying ``payload`` as a package data file."""
    name = "tinyweights-1.0.0-py3-none-any.whl"
    files = {
        "tinyweights/__init__.py": b"",
        MEMBER: payload,
        "tinyweights-1.0.0.dist-info/METADATA": b"Metadata-Version: 2.1\nName: tinyweights\nVersion: 1.0.0\n",
        "tinyweights-1.0.0.dist-info/WHEEL": b"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\n"
        b"Tag: py3-none-any\n",
    }
    record = []
    for path, data in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record.append(f"{path},sha256={digest},{len(data)}")
    record.append("tinyweights-1.0.0.dist-info/RECORD,,")
    files["tinyweights-1.0.0.dist-info/RECORD"] = ("\n".join(record) + "\n").encode()
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        for path, data in files.items():
            zf.writestr(path, data)
    return name, buffer.getvalue()


def _index(server: FileServer, prefix: str, wheel_name: str, wheel: bytes) -> str:
    """A PEP 503 simple index with one project; its URL."""
    server.add(f"{prefix}/simple/tinyweights/{wheel_name}", wheel)
    digest = hashlib.sha256(wheel).hexdigest()
    page = f'<html><body><a href="{wheel_name}#sha256={digest}">{wheel_name}</a></body></html>'
    server.add(f"{prefix}/simple/tinyweights/index.html", page.encode())
    server.add(
        f"{prefix}/simple/index.html", b'<html><body><a href="tinyweights/">tinyweights</a></body></html>'
    )
    return server.url(f"{prefix}/simple/")


def test_mirror_serves_http_and_pypi_sources_when_upstream_is_gone(tmp_path, http_server):
    onnx_bytes, weights = os.urandom(400_000), os.urandom(250_000)
    wheel_name, wheel = _wheel(weights)
    index = _index(http_server, tmp_path.name, wheel_name, wheel)
    url = http_server.add(f"{tmp_path.name}/aclnet.onnx", onnx_bytes)
    catalog_with_files(tmp_path, "aclnet", [file_entry("aclnet_des_53.onnx", onnx_bytes, url, algo="sha384")])
    pypi = {
        "package": "tinyweights",
        "version": "1.0.0",
        "member": MEMBER,
        "filename": wheel_name,
        "sha256": hashlib.sha256(wheel).hexdigest(),
    }
    catalog = catalog_with_files(
        tmp_path,
        "silero-vad",
        [
            {
                "name": "silero_vad.jit",
                "size": len(weights),
                "sha256": hashlib.sha256(weights).hexdigest(),
                "sources": [{"pypi": pypi}],
            },
        ],
    )
    env = {
        "ZOO_CACHE": str(tmp_path / "cache"),
        "PIP_INDEX_URL": index,
        "PIP_NO_CACHE_DIR": "1",
        "ZOO_RETRY_BASE": "0.01",
    }
    mirror = tmp_path / "mirror"
    result = run_zoo(
        "mirror", "--name", "aclnet,silero-vad", "--manifests", str(catalog), "-o", str(mirror), env=env
    )
    assert result.returncode == 0, result.stderr
    sha384 = hashlib.sha384(onnx_bytes).hexdigest()
    sha256 = hashlib.sha256(weights).hexdigest()
    assert (mirror / "sha384" / sha384).read_bytes() == onnx_bytes
    assert (mirror / "sha256" / sha256).read_bytes() == weights
    index_json = json.loads((mirror / "index.json").read_text())
    assert index_json["models"]["silero-vad"]["files"]["silero_vad.jit"] == f"sha256/{sha256}"

    # upstream and the package index vanish; a fresh machine (empty cache) downloads from the mirror
    http_server.fault(f"{tmp_path.name}/aclnet.onnx", Status(404), times=None)
    offline_env = {
        "ZOO_CACHE": str(tmp_path / "cache2"),
        "PIP_INDEX_URL": "http://127.0.0.1:9/nothing/",
        "ZOO_MIRROR": str(mirror),
    }
    result = run_zoo(
        "download",
        "--name",
        "aclnet,silero-vad",
        "--manifests",
        str(catalog),
        "-o",
        str(tmp_path / "out"),
        env=offline_env,
    )
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "out" / "silero-vad" / "source" / "silero_vad.jit").read_bytes() == weights
    assert (tmp_path / "out" / "aclnet" / "source" / "aclnet_des_53.onnx").read_bytes() == onnx_bytes

    # any static web server over the folder is a mirror too
    with FileServer(mirror) as web:
        result = run_zoo(
            "download",
            "--name",
            "aclnet",
            "--manifests",
            str(catalog),
            "-o",
            str(tmp_path / "out3"),
            "--mirror",
            web.base_url,
            env={"ZOO_CACHE": str(tmp_path / "cache3")},
        )
        assert result.returncode == 0, result.stderr
        assert web.requests(f"sha384/{sha384}") == 1


def test_mirror_skips_unpinned_and_reports_failures(tmp_path, http_server):
    missing = http_server.url(f"{tmp_path.name}/gone.onnx")
    catalog = catalog_with_files(
        tmp_path, "aclnet", [file_entry("aclnet_des_53.onnx", b"abc" * 100, missing)]
    )
    result = run_zoo(
        "mirror",
        "--name",
        "aclnet,kahl-aed",
        "--manifests",
        str(catalog),
        "-o",
        str(tmp_path / "m"),
        "--progress",
        "text",
        env={"ZOO_CACHE": str(tmp_path / "cache"), "ZOO_RETRY_BASE": "0.01"},
    )
    assert result.returncode == 1
    assert "skipped (unpinned)" in result.stdout and "zoo pin --name kahl-aed" in result.stdout
    assert "HTTP 404" in result.stderr and missing in result.stderr
    assert not [p for p in (tmp_path / "m").rglob("*") if p.is_file() and p.name != "index.json"]


def test_pypi_wheel_with_wrong_checksum_is_refused(tmp_path, http_server):
    weights = os.urandom(1000)
    wheel_name, wheel = _wheel(weights)
    index = _index(http_server, tmp_path.name, wheel_name, wheel)
    pypi = {"package": "tinyweights", "version": "1.0.0", "member": MEMBER, "sha256": "0" * 64}
    catalog = catalog_with_files(
        tmp_path,
        "silero-vad",
        [
            {
                "name": "silero_vad.jit",
                "size": len(weights),
                "sha256": hashlib.sha256(weights).hexdigest(),
                "sources": [{"pypi": pypi}],
            },
        ],
    )
    result = run_zoo(
        "download",
        "--name",
        "silero-vad",
        "--manifests",
        str(catalog),
        "-o",
        str(tmp_path / "out"),
        env={"ZOO_CACHE": str(tmp_path / "cache"), "PIP_INDEX_URL": index, "PIP_NO_CACHE_DIR": "1"},
    )
    assert result.returncode == 1
    assert (
        "wheel tinyweights-1.0.0-py3-none-any.whl has sha256" in result.stderr and "0" * 64 in result.stderr
    )
    assert not [p for p in Path(tmp_path / "cache" / "objects").rglob("*") if p.is_file()]
