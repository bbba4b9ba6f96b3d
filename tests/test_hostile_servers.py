"""Hostile sources: local files a catalog points at, servers that lie, loop, drip or never stop.

Real sockets on 127.0.0.1 (the test file server, and a raw one for answers no sane server sends);
every case ends in exit 1 naming model and file, or a verified file, never `internal error`.
"""

from __future__ import annotations

import hashlib
import io
import json
import socket
import threading
import time
import zipfile
from pathlib import Path

import pytest

from tests.support.catalogs import catalog_with_files, file_entry
from tests.support.cli import download_aclnet, zoo_on
from tests.support.httpserver import Slow, Status

SECRET = "root:$6$secret-hash-of-the-admin:19000:0:99999:7:::"
NO_LOCAL = {"ZOO_ALLOW_LOCAL": ""}


def _download(tmp_path: Path, catalog: Path, *extra: str, env: dict | None = None):
    return download_aclnet(catalog, *extra, out=tmp_path / "out", cache=tmp_path / "cache", env=env)


def _no_internal_error(result) -> None:
    assert "internal error" not in result.stderr and "Traceback" not in result.stderr, result.stderr


def _nothing_kept(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    assert not [p for p in (cache / "objects").rglob("*") if p.is_file()]
    assert not list((cache / "partial").glob("*.part"))


# -- local files ------------------------------------------------------------------------------------


@pytest.fixture
def secret(tmp_path: Path) -> Path:
    path = tmp_path / "private" / "shadow"
    path.parent.mkdir()
    path.write_text(SECRET + "\n")
    return path


@pytest.mark.parametrize("command", ["download", "pin"])
def test_file_source_outside_allowed_folders_is_never_read(tmp_path, secret, command):
    entry = {"name": "model.onnx", "unpinned": True, "sources": [{"url": secret.as_uri()}]}
    catalog = catalog_with_files(tmp_path, "aclnet", [entry])
    if command == "download":
        result = _download(tmp_path, catalog, "--allow-unpinned", env=NO_LOCAL)
    else:
        result = zoo_on("pin", "aclnet", catalog, cache=tmp_path / "cache", env=NO_LOCAL)
    assert result.returncode == 1, result.stderr
    assert "--allow-local" in result.stderr and "model.onnx" in result.stderr
    assert SECRET not in result.stdout + result.stderr
    _no_internal_error(result)
    _nothing_kept(tmp_path)
    assert not (tmp_path / "out" / "aclnet" / "source" / "model.onnx").exists()
    assert "sha256:" not in (catalog / "aclnet.yaml").read_text()  # nothing pinned


def test_allow_local_folder_is_read_and_links_out_of_it_are_not(tmp_path, secret):
    allowed = tmp_path / "allowed"
    allowed.mkdir()
    data = b"\x00weights" * 1000
    (allowed / "model.onnx").write_bytes(data)
    (allowed / "sneaky.onnx").symlink_to(secret)
    good = file_entry("model.onnx", data, (allowed / "model.onnx").as_uri())
    catalog = catalog_with_files(tmp_path, "aclnet", [good])
    result = _download(tmp_path, catalog, "--allow-local", str(allowed), env=NO_LOCAL)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "out" / "aclnet" / "source" / "model.onnx").read_bytes() == data

    sneaky = {
        "name": "model.onnx",
        "unpinned": True,
        "sources": [{"url": (allowed / "sneaky.onnx").as_uri()}],
    }
    catalog = catalog_with_files(tmp_path, "aclnet", [sneaky], folder="catalog2")
    result = _download(tmp_path, catalog, "--allow-unpinned", "--allow-local", str(allowed), env=NO_LOCAL)
    assert result.returncode == 1 and "is not inside one" in result.stderr, result.stderr
    assert SECRET not in result.stdout + result.stderr


def test_wrong_checksum_of_a_local_file_does_not_echo_it(tmp_path, secret):
    entry = {"name": "model.onnx", "sha256": "0" * 64, "sources": [{"url": secret.as_uri()}]}
    catalog = catalog_with_files(tmp_path, "aclnet", [entry])
    result = _download(tmp_path, catalog, "--allow-local", str(secret.parent), env=NO_LOCAL)
    assert result.returncode == 1 and "sha256 is" in result.stderr, result.stderr
    assert "root:" not in result.stdout + result.stderr


def test_wrong_checksum_from_a_server_still_quotes_its_text(tmp_path, http_server):
    url = http_server.add(f"{tmp_path.name}/model.bin", b"Rate limit exceeded, try later\n")
    entry = {"name": "model.onnx", "sha256": "0" * 64, "binary": False, "sources": [{"url": url}]}
    catalog = catalog_with_files(tmp_path, "aclnet", [entry])
    result = _download(tmp_path, catalog)
    assert result.returncode == 1 and "Rate limit exceeded" in result.stderr, result.stderr


# -- servers ----------------------------------------------------------------------------------------


def _served(tmp_path: Path, http_server, data: bytes = b"\x01" * 5000, **extra):
    relpath = f"{tmp_path.name}/model.bin"
    url = http_server.add(relpath, data)
    catalog = catalog_with_files(tmp_path, "aclnet", [file_entry("model.onnx", data, url, **extra)])
    return catalog, relpath, url


@pytest.mark.parametrize("target", ["self", "pair", "file", "ftp"])
def test_redirects_that_loop_or_leave_http_fail_clearly(tmp_path, http_server, target):
    catalog, relpath, url = _served(tmp_path, http_server)
    other = f"{tmp_path.name}/other.bin"
    location = {
        "self": url,
        "pair": http_server.url(other),
        "file": "file:///etc/passwd",
        "ftp": "ftp://127.0.0.1/model.bin",
    }[target]
    http_server.fault(relpath, Status(302, {"Location": location}), times=None)
    http_server.fault(other, Status(302, {"Location": url}), times=None)
    result = _download(tmp_path, catalog, "--num-attempts", "1")
    assert result.returncode == 1, result.stderr
    assert "aclnet" in result.stderr and "model.onnx" in result.stderr
    assert ("redirects in a loop" if target in ("self", "pair") else "only http and https") in result.stderr
    _no_internal_error(result)
    _nothing_kept(tmp_path)


class RawServer:
    """Answers every connection with fixed header bytes, then ``body`` (bytes, or an endless stream)."""

    def __init__(self, head: bytes, body: bytes | None = None, endless: bool = False):
        self.head, self.body, self.endless = head, body or b"", endless
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}/model.bin"
        self.sent = 0
        self._stop = False
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while not self._stop:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._answer, args=(conn,), daemon=True).start()

    def _answer(self, conn: socket.socket) -> None:
        with conn:
            try:
                conn.recv(65536)
                conn.sendall(self.head + self.body)
                block = b"\x00" * 65536
                while self.endless and not self._stop:
                    conn.sendall(block)
                    self.sent += len(block)
            except OSError:
                return

    def close(self) -> None:
        self._stop = True
        self.sock.close()


def test_conflicting_content_length_headers(tmp_path):
    data = b"\x02" * 100
    server = RawServer(
        b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: 100\r\n"
        b"Content-Length: 50\r\nConnection: close\r\n\r\n",
        data,
    )
    try:
        catalog = catalog_with_files(tmp_path, "aclnet", [file_entry("model.onnx", data, server.url)])
        result = _download(tmp_path, catalog, "--num-attempts", "1")
    finally:
        server.close()
    assert result.returncode == 1 and "Content-Length" in result.stderr, result.stderr
    _no_internal_error(result)


def test_a_server_that_drips_bytes_is_abandoned(tmp_path, http_server):
    catalog, relpath, _ = _served(tmp_path, http_server)
    http_server.fault(relpath, Slow(rate=2), times=None)
    started = time.monotonic()
    result = _download(tmp_path, catalog, "--num-attempts", "1", "--timeout", "1")
    assert result.returncode == 1 and "slower than" in result.stderr, result.stderr
    assert time.monotonic() - started < 30


def test_an_endless_archive_body_is_capped(tmp_path):
    server = RawServer(
        b"HTTP/1.1 200 OK\r\nContent-Type: application/zip\r\nConnection: close\r\n\r\n", endless=True
    )
    try:
        entry = {
            "name": "model.onnx",
            "sha256": "1" * 64,
            "sources": [{"url": server.url, "member": "m.onnx"}],
        }
        catalog = catalog_with_files(tmp_path, "aclnet", [entry])
        result = _download(
            tmp_path, catalog, "--num-attempts", "1", env={"ZOO_MAX_DOWNLOAD_BYTES": "3000000"}
        )
    finally:
        server.close()
    assert result.returncode == 1 and "grew past 3,000,000 bytes" in result.stderr, result.stderr
    assert server.sent < 50_000_000
    _nothing_kept(tmp_path)


def _zip_bytes(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buffer.getvalue()


def test_a_zip_bomb_without_a_declared_size_stops_at_the_ratio(tmp_path, http_server):
    inflated = b"\x00" * (40 << 20)
    archive = _zip_bytes({"m.onnx": inflated})
    assert len(archive) * 100 < len(inflated)
    url = http_server.add(f"{tmp_path.name}/bomb.zip", archive)
    entry = {
        "name": "model.onnx",
        "sha256": hashlib.sha256(inflated).hexdigest(),
        "sources": [{"url": url, "member": "m.onnx"}],
    }
    catalog = catalog_with_files(tmp_path, "aclnet", [entry])
    result = _download(tmp_path, catalog, "--num-attempts", "1")
    assert result.returncode == 1 and "without a declared size" in result.stderr, result.stderr
    _no_internal_error(result)
    _nothing_kept(tmp_path)


def test_a_zip_whose_header_lies_is_refused(tmp_path, http_server):
    real = b"\x07" * 4000
    archive = bytearray(_zip_bytes({"m.onnx": real}))
    central = archive.rfind(b"PK\x01\x02")
    # the central directory's uncompressed size: claim fewer bytes than the member holds
    archive[central + 24 : central + 28] = (1000).to_bytes(4, "little")
    url = http_server.add(f"{tmp_path.name}/liar.zip", bytes(archive))
    entry = {
        "name": "model.onnx",
        "sha256": hashlib.sha256(real).hexdigest(),
        "sources": [{"url": url, "member": "m.onnx"}],
    }
    catalog = catalog_with_files(tmp_path, "aclnet", [entry])
    result = _download(tmp_path, catalog, "--num-attempts", "1")
    assert result.returncode == 1, result.stderr
    assert "m.onnx" in result.stderr
    _no_internal_error(result)
    _nothing_kept(tmp_path)


def test_a_password_in_a_source_url_is_not_printed_or_recorded(tmp_path, http_server):
    data = b"\x03" * 3000
    relpath = f"{tmp_path.name}/model.bin"
    url = http_server.add(relpath, data).replace("http://", "http://alice:hunter2@")
    catalog = catalog_with_files(tmp_path, "aclnet", [file_entry("model.onnx", data, url)])
    result = _download(tmp_path, catalog)
    assert result.returncode == 0, result.stderr
    assert "hunter2" not in result.stdout + result.stderr
    record = (tmp_path / "out" / "aclnet" / "source" / "SOURCES.json").read_text()
    assert "hunter2" not in record and "alice:***@" in json.loads(record)["files"]["model.onnx"]["url"]
    assert not list((tmp_path / "cache" / "partial").glob("*.json"))
    http_server.fault(relpath, Status(404), times=None)
    result = _download(tmp_path, catalog, "--cache-dir", str(tmp_path / "cache2"))
    assert result.returncode == 1 and "hunter2" not in result.stdout + result.stderr


def test_unpinned_files_are_never_called_verified(tmp_path, http_server):
    data = b"\x04" * 3000
    url = http_server.add(f"{tmp_path.name}/model.bin", data)
    catalog = catalog_with_files(
        tmp_path, "aclnet", [{"name": "model.onnx", "unpinned": True, "sources": [{"url": url}]}]
    )
    result = _download(tmp_path, catalog, "--allow-unpinned")
    assert result.returncode == 0, result.stderr
    output = result.stdout + result.stderr
    assert "NOT verified" in output
    assert " verified in " not in output


def test_a_mirror_folder_is_read_without_allow_local(tmp_path, http_server):
    data = b"\x05" * 4000
    catalog, relpath, _ = _served(tmp_path, http_server, data)
    mirror = tmp_path / "mirror"
    made = zoo_on("mirror", "aclnet", catalog, out=mirror, cache=tmp_path / "c0")
    assert made.returncode == 0, made.stderr
    http_server.fault(relpath, Status(404), times=None)
    result = _download(tmp_path, catalog, "--mirror", str(mirror), env=NO_LOCAL)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "out" / "aclnet" / "source" / "model.onnx").read_bytes() == data
