"""Size and checksum checks, computed while the bytes stream past.

A download is hashed as it is written, so verification costs no second read of the file.
Hashing runs in a helper thread (hashlib releases the GIL on large buffers), so receiving
the next chunk and hashing the last one overlap.
"""

from __future__ import annotations

import hashlib
import queue
import threading
from dataclasses import dataclass
from pathlib import Path

READ_CHUNK = 1 << 20
HTML_MARKERS = (b"<!doctype html", b"<html", b"<head", b"<body", b"<?xml", b"<title")


@dataclass(frozen=True)
class Expected:
    """What a file must be: its size and checksum, when known."""

    size: int | None = None
    algo: str | None = None  # sha256 | sha384
    hexdigest: str | None = None

    @property
    def key(self) -> str | None:
        return f"{self.algo}-{self.hexdigest}" if self.hexdigest else None

    def describe(self) -> str:
        parts = []
        if self.size is not None:
            parts.append(f"{self.size:,} bytes")
        if self.hexdigest:
            parts.append(f"{self.algo} {self.hexdigest[:16]}...")
        return ", ".join(parts) or "no size or checksum"


@dataclass(frozen=True)
class Digest:
    """What a file turned out to be."""

    size: int
    sha256: str
    other: dict[str, str]

    def hexdigest(self, algo: str) -> str:
        return self.sha256 if algo == "sha256" else self.other[algo]


class SizeOverrun(Exception):
    """More bytes arrived than the manifest declares."""


class Hasher:
    """sha256 (always, it names things in SOURCES.json) plus the manifest's algorithm.

    ``update`` hands buffers to a worker thread; ``result`` waits for it. Buffers must not be
    reused by the caller after ``update`` (we pass fresh ``bytes`` objects).
    """

    def __init__(
        self, algos: tuple[str, ...] = ("sha256",), limit: int | None = None, threaded: bool = True
    ) -> None:
        names = ["sha256"] + [a for a in algos if a != "sha256"]
        self._hashes = {a: hashlib.new(a) for a in names}
        self.size = 0
        self.limit = limit
        self._queue: queue.Queue[bytes | None] | None = None
        self._error: BaseException | None = None
        if threaded:
            self._queue = queue.Queue(maxsize=8)
            self._thread = threading.Thread(target=self._work, name="zoo-hash", daemon=True)
            self._thread.start()

    def _work(self) -> None:
        assert self._queue is not None
        while True:
            data = self._queue.get()
            if data is None:
                return
            try:
                for h in self._hashes.values():
                    h.update(data)
            except BaseException as exc:  # pragma: no cover - hashlib does not fail on bytes
                self._error = exc

    def update(self, data: bytes) -> None:
        self.size += len(data)
        if self.limit is not None and self.size > self.limit:
            raise SizeOverrun(self.size)
        if self._queue is not None:
            self._queue.put(data)
        else:
            for h in self._hashes.values():
                h.update(data)

    def close(self) -> None:
        if self._queue is not None:
            self._queue.put(None)
            self._thread.join()
            self._queue = None

    def result(self) -> Digest:
        self.close()
        if self._error is not None:  # pragma: no cover
            raise self._error
        return Digest(
            size=self.size,
            sha256=self._hashes["sha256"].hexdigest(),
            other={a: h.hexdigest() for a, h in self._hashes.items() if a != "sha256"},
        )

    def feed_file(self, path: Path) -> None:
        """Hash bytes already on disk (a partial download being resumed)."""
        with open(path, "rb") as handle:
            while chunk := handle.read(READ_CHUNK):
                self.update(chunk)


def hash_file(path: Path, algos: tuple[str, ...] = ("sha256",)) -> Digest:
    hasher = Hasher(algos, threaded=False)
    with open(path, "rb") as handle:
        while chunk := handle.read(READ_CHUNK):
            hasher.update(chunk)
    return hasher.result()


def sha256_file(path: str | Path) -> str:
    """Hex sha256 of a file on disk."""
    return hash_file(Path(path)).sha256


def mismatch(expected: Expected, digest: Digest) -> str | None:
    """Why a digest does not satisfy what was expected, or None when it does."""
    if expected.size is not None and digest.size != expected.size:
        return f"size is {digest.size:,} bytes, the manifest declares {expected.size:,}"
    if expected.hexdigest:
        assert expected.algo is not None, "a checksum always comes with its algorithm"
        if digest.hexdigest(expected.algo) != expected.hexdigest:
            return f"{expected.algo} is {digest.hexdigest(expected.algo)}, the manifest declares {expected.hexdigest}"
    return None


def looks_like_html(first_bytes: bytes) -> bool:
    head = first_bytes[:512].lstrip().lower()
    return head.startswith(HTML_MARKERS)


def looks_like_text(first_bytes: bytes) -> bool:
    """No NUL bytes and mostly printable: an error page or message, not a model file."""
    sample = first_bytes[:512]
    if not sample or b"\x00" in sample:
        return False
    printable = sum(32 <= b < 127 or b in (9, 10, 13) for b in sample)
    return printable / len(sample) > 0.95


def show_bytes(first_bytes: bytes, limit: int = 120) -> str:
    text = first_bytes[:limit].decode("utf-8", errors="replace")
    text = " ".join(text.split())
    return repr(text + ("..." if len(first_bytes) > limit else ""))
