"""The content-addressed download cache, shared by every output folder.

Layout under the cache root (``ZOO_CACHE``, default the user cache folder)::

    objects/<algo>/<hex[:2]>/<hex>   verified files, named by their checksum, read-only
    partial/<key>.part               bytes of an unfinished download (kept for resume)
    partial/<key>.json               where those bytes came from (URL, ETag, Last-Modified)
    locks/<key>.lock                 one lock per entry: concurrent runs make one transfer
    unpinned/<key>.json              sha256 recorded for a file whose manifest has no checksum
    tmp/                             scratch space (pip downloads, archive extraction)

Nothing reaches ``objects/`` before its size and checksum were checked; a file is moved
there with an atomic rename and re-verified whenever it is used.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import stat
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypedDict

from zoo.errors import UsageError

ENV_CACHE = "ZOO_CACHE"
LOCK_POLL_SECONDS = 1.0

# what a cache folder's JSON side files hold: read back unvalidated, so values are not narrowed
JsonRecord = dict[str, Any]


class CacheInfo(TypedDict):
    """What ``zoo cache info`` reports."""

    path: str
    entries: int
    bytes: int
    by_algorithm: dict[str, int]
    partial_downloads: int
    partial_bytes: int


def default_cache_dir() -> Path:
    """ZOO_CACHE, else $XDG_CACHE_HOME/zoo, else ~/.cache/zoo (Windows: %LOCALAPPDATA%\\zoo)."""
    env = os.environ.get(ENV_CACHE)
    if env:
        return Path(env).expanduser()
    if os.name == "nt" and os.environ.get("LOCALAPPDATA"):
        return Path(os.environ["LOCALAPPDATA"]) / "zoo" / "cache"
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "zoo"


def _json_object(text: str) -> JsonRecord:
    """The JSON object *text* holds (the cache writes only objects there)."""
    record: JsonRecord = json.loads(text)
    return record


def entry_key(algo: str, hexdigest: str) -> str:
    return f"{algo}-{hexdigest}"


class Cache:
    """A folder of verified files addressed by checksum, plus partial downloads and locks."""

    def __init__(self, root: str | os.PathLike[str] | None = None) -> None:
        self.root = Path(root).expanduser() if root is not None else default_cache_dir()
        try:
            for sub in ("objects", "partial", "locks", "tmp", "unpinned"):
                (self.root / sub).mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            if not (self.root / "objects").is_dir():
                raise UsageError(
                    f"{self.root}: --cache-dir/{ENV_CACHE}: cannot create the cache folder: "
                    f"{exc.strerror or exc}."
                ) from exc
            # a read-only cache (shared, prebuilt): verified files can still be read from it

    @property
    def writable(self) -> bool:
        """Whether new entries, partial downloads and locks can be written (a shared cache may be read-only)."""
        return os.access(self.root / "locks", os.W_OK) and os.access(self.root / "partial", os.W_OK)

    # -- paths ------------------------------------------------------------------------------
    def object_path(self, algo: str, hexdigest: str) -> Path:
        return self.root / "objects" / algo / hexdigest[:2] / hexdigest

    def partial_path(self, key: str) -> Path:
        return self.root / "partial" / f"{key}.part"

    def partial_meta_path(self, key: str) -> Path:
        return self.root / "partial" / f"{key}.json"

    def lock_path(self, key: str) -> Path:
        return self.root / "locks" / f"{key}.lock"

    def tmp_dir(self, prefix: str) -> Path:
        """A fresh scratch folder inside the cache (same file system as the objects)."""
        return Path(tempfile.mkdtemp(prefix=prefix, dir=self.root / "tmp"))

    # -- entries -----------------------------------------------------------------------------
    def lookup(self, algo: str, hexdigest: str) -> Path | None:
        path = self.object_path(algo, hexdigest)
        return path if path.is_file() else None

    def insert(self, verified_file: Path, algo: str, hexdigest: str) -> Path:
        """Move an already verified file into place (atomic rename) and make it read-only."""
        target = self.object_path(algo, hexdigest)
        target.parent.mkdir(parents=True, exist_ok=True)
        os.chmod(verified_file, stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH)
        os.replace(verified_file, target)
        return target

    def evict(self, algo: str, hexdigest: str) -> None:
        """Drop an entry that failed re-verification (a read-only cache keeps it; it is never handed out)."""
        with contextlib.suppress(OSError):
            os.unlink(self.object_path(algo, hexdigest))

    def read_partial_meta(self, key: str) -> JsonRecord:
        try:
            return _json_object(self.partial_meta_path(key).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}

    def write_partial_meta(self, key: str, meta: JsonRecord) -> None:
        from zoo.atomic import write_json

        write_json(self.partial_meta_path(key), meta)

    def drop_partial(self, key: str) -> None:
        for path in (self.partial_path(key), self.partial_meta_path(key)):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)

    def unpinned_record(self, key: str) -> JsonRecord:
        try:
            return _json_object((self.root / "unpinned" / f"{key}.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}

    def write_unpinned_record(self, key: str, record: JsonRecord) -> None:
        from zoo.atomic import write_json

        write_json(self.root / "unpinned" / f"{key}.json", record)

    @contextlib.contextmanager
    def locked(self, key: str, on_wait: Callable[[], None] | None = None) -> Iterator[None]:
        """Hold the entry's lock; another process holding it means it is fetching the same file."""
        from filelock import FileLock, Timeout

        lock = FileLock(str(self.lock_path(key)))
        waited = False
        while True:
            try:
                lock.acquire(timeout=LOCK_POLL_SECONDS)
                break
            except Timeout:
                if not waited and on_wait is not None:
                    on_wait()
                waited = True
            except OSError as exc:
                if exc.errno not in (errno.EROFS, errno.EACCES, errno.EPERM):
                    raise
                # a read-only cache: nobody can add to it through this folder, so reading needs no lock
                yield
                return
        try:
            yield
        finally:
            lock.release()

    # -- zoo cache info / clean -------------------------------------------------------------
    def info(self) -> CacheInfo:
        objects = [p for p in (self.root / "objects").rglob("*") if p.is_file()]
        partial = [p for p in (self.root / "partial").glob("*.part") if p.is_file()]
        by_algo: dict[str, int] = {}
        for path in objects:
            algo = path.parent.parent.name
            by_algo[algo] = by_algo.get(algo, 0) + 1
        return {
            "path": str(self.root),
            "entries": len(objects),
            "bytes": sum(p.stat().st_size for p in objects),
            "by_algorithm": by_algo,
            "partial_downloads": len(partial),
            "partial_bytes": sum(p.stat().st_size for p in partial),
        }

    def clean(self, partial_only: bool = False, older_than_days: float | None = None) -> dict[str, int]:
        """Delete entries (or only partial downloads); skip any entry another process holds."""
        from filelock import FileLock, Timeout

        cutoff = time.time() - older_than_days * 86400 if older_than_days is not None else None
        removed = {"entries": 0, "partial_downloads": 0, "bytes": 0, "skipped_busy": 0}
        candidates: list[tuple[str, Path, list[Path]]] = []
        for part in (self.root / "partial").glob("*.part"):
            key = part.name[: -len(".part")]
            candidates.append(("partial_downloads", part, [part, self.partial_meta_path(key)]))
        if not partial_only:
            for obj in (self.root / "objects").glob("*/*/*"):
                if obj.is_file():
                    candidates.append(("entries", obj, [obj]))
        for kind, main, paths in candidates:
            try:
                info = main.stat()
            except FileNotFoundError:
                continue
            if cutoff is not None and info.st_mtime > cutoff:
                continue
            key = (
                main.name[: -len(".part")]
                if kind == "partial_downloads"
                else entry_key(main.parent.parent.name, main.name)
            )
            lock = FileLock(str(self.lock_path(key)))
            try:
                lock.acquire(timeout=0)
            except Timeout:
                removed["skipped_busy"] += 1
                continue
            try:
                for path in paths:
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(path)
                removed[kind] += 1
                removed["bytes"] += info.st_size
            finally:
                lock.release()
        if not partial_only:
            for record in (self.root / "unpinned").glob("*.json"):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(record)
            # scratch folders of runs that were killed; a live run's folder is younger than a day
            for scratch in (self.root / "tmp").iterdir():
                with contextlib.suppress(FileNotFoundError):
                    if scratch.stat().st_mtime < time.time() - 86400:
                        shutil.rmtree(scratch, ignore_errors=True)
        return removed
