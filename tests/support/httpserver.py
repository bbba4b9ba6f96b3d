"""A real threaded HTTP/1.1 file server on 127.0.0.1 with fault injection, for download tests.

It serves files from a folder (Range, If-Range, ETag, Last-Modified, keep-alive) and counts
what it sent, per path, so tests can prove resume and single transfers by the bytes on the wire.
Faults are queued per path and each applies to one request (or to every request with
``times=None``)::

    server.add("m/model.bin", data)
    server.fault("m/model.bin", Status(503), Status(503))      # two 503s, then the file
    server.fault("m/model.bin", Drop(after=1000))              # cut the body after 1000 bytes
    server.fault("m/model.bin", Slow(rate=200_000), times=None)

Fixtures: ``http_server`` (a fresh server per test) and ``shared_http_server`` (one per session).
"""

from __future__ import annotations

import email.utils
import os
import re
import socket
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import quote, unquote, urlparse

import pytest

CHUNK = 256 * 1024


# -- faults -------------------------------------------------------------------------------------


@dataclass
class Fault:
    """Base of all faults."""


@dataclass
class Status(Fault):
    """Answer with this status (500, 503, 404, 429 ...), optional headers (Retry-After) and body."""

    code: int
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""


@dataclass
class Drop(Fault):
    """Send the headers of a full answer, then ``after`` bytes of body, then close the connection."""

    after: int


@dataclass
class Slow(Fault):
    """Send the body at ``rate`` bytes per second (on average, as a link of that bandwidth would)."""

    rate: int


@dataclass
class Stall(Fault):
    """Send the headers, then wait ``seconds`` before the body (trips a client's read timeout)."""

    seconds: float


@dataclass
class IgnoreRange(Fault):
    """Answer 200 with the whole file even when a Range was asked for."""


@dataclass
class IgnoreIfRange(Fault):
    """Serve a Range without checking If-Range (servers that do not implement it)."""


@dataclass
class Html(Fault):
    """Answer 200 with an HTML page (a login wall, a 'file moved' page) instead of the file."""

    body: bytes = (
        b"<!DOCTYPE html>\n<html><head><title>Sign in to continue</title></head>"
        b"<body><p>Please sign in to download this file.</p></body></html>\n"
    )


@dataclass
class WrongBytes(Fault):
    """Answer 200 with as many bytes as the file has, but different ones."""


@dataclass
class Oversize(Fault):
    """Answer with the file plus ``extra`` bytes; ``announce``: Content-Length says so, else the
    body is delimited by closing the connection."""

    extra: int
    announce: bool = True


@dataclass
class PathStats:
    requests: int = 0
    bytes_sent: int = 0
    statuses: list[int] = field(default_factory=list)
    ranges: list[str | None] = field(default_factory=list)


# -- server ---------------------------------------------------------------------------------------


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format, *args):  # noqa: A002 - quiet
        pass

    def do_HEAD(self):
        self._serve(head=True)

    def do_GET(self):
        self._serve(head=False)

    # -- helpers ------------------------------------------------------------------------------
    def _send(self, data: bytes, stats: PathStats) -> None:
        self.wfile.write(data)
        with self.server.owner.lock:
            stats.bytes_sent += len(data)

    def _simple(
        self,
        code: int,
        body: bytes,
        stats: PathStats,
        headers: dict | None = None,
        content_type: str = "text/plain",
        head: bool = False,
    ) -> None:
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        if not head:
            self._send(body, stats)

    def _serve(self, head: bool) -> None:
        owner = self.server.owner
        relpath = unquote(urlparse(self.path).path).lstrip("/")
        with owner.lock:
            stats = owner.stats.setdefault(relpath, PathStats())
            stats.requests += 1
            stats.ranges.append(self.headers.get("Range"))
            fault = owner._next_fault(relpath)
        code = self._answer(relpath, fault, stats, head)
        with owner.lock:
            stats.statuses.append(code)

    def _answer(self, relpath: str, fault: Fault | None, stats: PathStats, head: bool) -> int:
        owner = self.server.owner
        if isinstance(fault, Status):
            self._simple(fault.code, fault.body, stats, fault.headers, head=head)
            return fault.code
        root = owner.root.resolve()
        path = (root / relpath).resolve()
        inside = path == root or root in path.parents
        if inside and path.is_dir() and (path / "index.html").is_file():  # a static site (a PEP 503 index)
            self._simple(200, (path / "index.html").read_bytes(), stats, content_type="text/html", head=head)
            return 200
        if not inside or not path.is_file():
            self._simple(404, b"not found\n", stats, head=head)
            return 404
        if isinstance(fault, Html):
            self._simple(200, fault.body, stats, content_type="text/html; charset=utf-8", head=head)
            return 200
        info = path.stat()
        size = info.st_size
        etag = f'"{size:x}-{info.st_mtime_ns:x}"'
        modified = email.utils.formatdate(info.st_mtime, usegmt=True)
        if isinstance(fault, WrongBytes):
            data = bytes(b ^ 0x5A for b in path.read_bytes())
            self._simple(200, data, stats, content_type="application/octet-stream", head=head)
            return 200
        if isinstance(fault, Oversize):
            data = path.read_bytes() + os.urandom(fault.extra)
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            if fault.announce:
                self.send_header("Content-Length", str(len(data)))
            else:
                self.send_header("Connection", "close")
                self.close_connection = True
            self.end_headers()
            if not head:
                self._send(data, stats)
            return 200

        first, last, status = 0, size - 1, 200
        wanted = self.headers.get("Range")
        if_range = self.headers.get("If-Range")
        if (
            wanted
            and not isinstance(fault, IgnoreRange)
            and (if_range is None or if_range in (etag, modified) or isinstance(fault, IgnoreIfRange))
        ):
            match = re.fullmatch(r"bytes=(\d+)-(\d*)", wanted.strip())
            if match:
                first = int(match.group(1))
                last = min(int(match.group(2)), size - 1) if match.group(2) else size - 1
                if first >= size or first > last:
                    self._simple(416, b"", stats, {"Content-Range": f"bytes */{size}"}, head=head)
                    return 416
                status = 206
        length = last - first + 1
        self.send_response(status)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(length))
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("ETag", etag)
        self.send_header("Last-Modified", modified)
        if status == 206:
            self.send_header("Content-Range", f"bytes {first}-{last}/{size}")
        self.end_headers()
        if head:
            return status
        with open(path, "rb") as handle:
            handle.seek(first)
            if isinstance(fault, Stall):
                time.sleep(fault.seconds)
            if isinstance(fault, Drop):
                self._send(handle.read(min(fault.after, length)), stats)
                self.wfile.flush()
                self.close_connection = True
                try:
                    self.connection.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                return status
            if isinstance(fault, Slow):  # a link of this bandwidth: a client that fell behind may catch up
                step = max(1, min(CHUNK, fault.rate // 50))
                started, sent = time.monotonic(), 0
                while sent < length:
                    block = handle.read(min(step, length - sent))
                    if not block:
                        break
                    self._send(block, stats)
                    sent += len(block)
                    delay = started + sent / fault.rate - time.monotonic()
                    if delay > 0:
                        time.sleep(delay)
                return status
            if owner.use_sendfile:
                sent = 0
                while sent < length:
                    count = self.connection.sendfile(handle, first + sent, length - sent)
                    if not count:
                        break
                    sent += count
                    with owner.lock:
                        stats.bytes_sent += count
                return status
            remaining = length
            while remaining > 0:
                block = handle.read(min(CHUNK, remaining))
                if not block:
                    break
                self._send(block, stats)
                remaining -= len(block)
        return status


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    owner: FileServer

    def handle_error(self, request, client_address):
        """A client that hangs up (it gave up, or aborted an oversized body) is not a server error."""
        import sys

        if not isinstance(sys.exc_info()[1], ConnectionError | TimeoutError):
            super().handle_error(request, client_address)


class FileServer:
    """Serves ``root`` on 127.0.0.1:<free port> from a background thread until ``close()``."""

    def __init__(self, root: Path, use_sendfile: bool = True):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.use_sendfile = use_sendfile
        self.lock = threading.Lock()
        self.stats: dict[str, PathStats] = {}
        self._faults: dict[str, list[list]] = {}
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.owner = self
        self.port = self._server.server_address[1]
        self.base_url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="test-http-server",
            daemon=True,
        )
        self._thread.start()

    def url(self, relpath: str) -> str:
        return f"{self.base_url}/{quote(relpath)}"

    def add(self, relpath: str, data: bytes) -> str:
        """Write a file to serve (a new file: never through a hard link to someone else's); its URL."""
        path = self.root / relpath
        path.parent.mkdir(parents=True, exist_ok=True)
        path.unlink(missing_ok=True)
        path.write_bytes(data)
        return self.url(relpath)

    def add_file(self, relpath: str, source: Path) -> str:
        """Serve an existing file (hard-linked when possible, else copied); its URL."""
        path = self.root / relpath
        path.parent.mkdir(parents=True, exist_ok=True)
        path.unlink(missing_ok=True)
        try:
            os.link(source, path)
        except OSError:
            with open(source, "rb") as src, open(path, "wb") as dst:
                while block := src.read(1 << 20):
                    dst.write(block)
        return self.url(relpath)

    def fault(self, relpath: str, *faults: Fault, times: int | None = 1) -> None:
        """Queue faults for a path; each one applies to ``times`` requests (None: every request)."""
        with self.lock:
            self._faults.setdefault(relpath, []).extend([f, times] for f in faults)

    def clear_faults(self, relpath: str | None = None) -> None:
        with self.lock:
            if relpath is None:
                self._faults.clear()
            else:
                self._faults.pop(relpath, None)

    def _next_fault(self, relpath: str) -> Fault | None:
        queue = self._faults.get(relpath)
        while queue:
            fault, times = queue[0]
            if times is None:
                return fault
            if times > 0:
                queue[0][1] -= 1
                if queue[0][1] == 0:
                    queue.pop(0)
                return fault
            queue.pop(0)
        return None

    def path_stats(self, relpath: str) -> PathStats:
        with self.lock:
            found = self.stats.get(relpath, PathStats())
            return PathStats(found.requests, found.bytes_sent, list(found.statuses), list(found.ranges))

    def bytes_sent(self, relpath: str) -> int:
        return self.path_stats(relpath).bytes_sent

    def requests(self, relpath: str) -> int:
        return self.path_stats(relpath).requests

    def reset_stats(self) -> None:
        with self.lock:
            self.stats.clear()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> FileServer:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


@pytest.fixture
def http_server(tmp_path_factory):
    """A fresh file server for one test."""
    server = FileServer(tmp_path_factory.mktemp("served"))
    yield server
    server.close()


@pytest.fixture(scope="session")
def shared_http_server(tmp_path_factory):
    """One file server for the whole session (use distinct paths per test)."""
    server = FileServer(tmp_path_factory.mktemp("served-shared"))
    yield server
    server.close()
