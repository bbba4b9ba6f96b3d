"""The source folder: `<out>/<name>/source/`, filled with verified files and described by SOURCES.json.

``obtain_sources`` places what zoo.fetch's Fetcher brought into the cache (a hard link or a copy),
a user's own weights file, or reference weights the source stage wrote, and writes SOURCES.json
last, so a folder with a SOURCES.json is always complete; ``read_source_set`` re-verifies such a
folder before anything uses it.
"""

from __future__ import annotations

import contextlib
import os
import random
import shutil
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from zoo import __version__
from zoo.cache import Cache
from zoo.errors import NoSpace, UsageError, ZooError, is_disk_full
from zoo.fetch import DEFAULT_TIMEOUT, Fetcher
from zoo.integrity import Digest, hash_file
from zoo.layout import ModelLayout
from zoo.manifest import Manifest
from zoo.progress import Progress
from zoo.records import SourceFileRecord, SourcesRecord, read_record

SOURCES_JSON = "SOURCES.json"


@dataclass
class SourceSet:
    directory: Path  # <out>/<name>/source/
    files: dict[str, Path]  # manifest file name (or "weights" for a user's/reference checkpoint) -> path
    reference_weights: bool  # True when made by write_reference_weights, not downloaded
    seed: int | None


def place(cache_object: Path, destination: Path) -> None:
    """Put a verified cache object at its output path: a hard link when possible, else a copy; atomic."""
    destination.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(FileNotFoundError):
        if os.path.samefile(cache_object, destination):
            return
    temporary = destination.with_name(f".{destination.name}.{os.getpid()}.{random.randrange(1 << 30)}.part")
    try:
        try:
            os.link(cache_object, temporary)
        except OSError:
            with open(cache_object, "rb") as source, open(temporary, "wb") as sink:
                shutil.copyfileobj(source, sink, length=1 << 20)
                sink.flush()
                os.fsync(sink.fileno())
        os.replace(temporary, destination)
    except BaseException as exc:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        if is_disk_full(exc):
            raise NoSpace(destination.parent, f" while writing {destination.name}") from None
        raise


def _record(
    path: Path,
    digest: Digest,
    origin: str,
    *,
    url: str | None = None,
    unpinned: bool | None = None,
    copied_from: str | None = None,
) -> SourceFileRecord:
    extra = dict(digest.other)  # checksums besides sha256, by algorithm
    if copied_from is not None:
        extra["from"] = copied_from
    return SourceFileRecord(
        sha256=digest.sha256,
        size=digest.size,
        path=path.name,
        origin=origin,
        url=url,
        unpinned=unpinned,
        **extra,
    )


def _copy_hashed(source: Path, destination: Path) -> Digest:
    """Copy a file atomically, hashing it on the way (a user's --weights file)."""
    from zoo.atomic import atomic_open
    from zoo.integrity import Hasher

    hasher = Hasher(threaded=False)
    with open(source, "rb") as handle, atomic_open(destination, "wb") as sink:
        while chunk := handle.read(1 << 20):
            hasher.update(chunk)
            sink.write(chunk)
    return hasher.result()


def _check_weights_file(weights: Path) -> Path:
    weights = Path(weights).expanduser()
    if not weights.is_file():
        raise UsageError(f"--weights: {weights} is not a file (expected your own checkpoint).")
    return weights


def obtain_sources(
    manifest: Manifest,
    out: Path,
    *,
    reference: dict[str, Path] | None = None,
    weights: Path | None = None,
    seed: int = 0,
    cache_dir: str | os.PathLike[str] | None = None,
    mirrors: Iterable[str] = (),
    allow_local: Iterable[str | os.PathLike[str]] = (),
    allow_unpinned: bool = False,
    offline: bool = False,
    num_attempts: int = 3,
    progress: Progress | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    retry_base: float | None = None,
) -> SourceSet:
    """Fill <out>/<name>/source/ with verified files and write SOURCES.json; see the module docstring.

    *reference* holds seeded reference weights already written (by the source stage, through the
    model's converter), keyed like `files`: they are moved into place and recorded as such.
    """
    progress = progress or Progress()
    name = manifest.name
    if reference is not None and weights is not None:
        raise UsageError("--weights and --reference-weights exclude each other: give one.")
    if not manifest.weights.published and weights is None and reference is None:
        raise UsageError(
            f"{name}: upstream publishes no weights. Pass --weights PATH with your own file "
            f"({manifest.weights.format}), or --reference-weights for seeded weights in that format."
        )
    if weights is not None:
        weights = _check_weights_file(weights)
    directory = ModelLayout(Path(out), name).source_dir
    directory.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(directory / SOURCES_JSON)  # written again last: its presence means "complete"

    files: dict[str, Path] = {}
    records: dict[str, SourceFileRecord] = {}
    pending = list(manifest.files)

    if reference is not None:
        for key, written in reference.items():
            path = directory / (key if key != "weights" else Path(written).name)
            os.replace(written, path)
            digest = hash_file(path)
            files[key] = path
            records[key] = _record(path, digest, "reference")
            progress.finish(
                name,
                key,
                digest.size,
                "reference weights (seeded, not the upstream weights)",
                sha256=digest.sha256,
            )
        missing = [f.name for f in pending if f.role == "weights" and f.name not in reference]
        if missing:
            raise ZooError(
                f"{name}: the {manifest.framework} converter's reference weights lack "
                f"{', '.join(missing)} (it wrote {', '.join(reference) or 'nothing'})."
            )
        pending = [f for f in pending if f.name not in reference]
    elif weights is not None:
        target = directory / weights.name
        if weights.resolve() != target.resolve():
            digest = _copy_hashed(weights, target)
        else:
            digest = hash_file(target)
        files["weights"] = target
        records["weights"] = _record(target, digest, "user", copied_from=str(weights))
        progress.finish(name, "weights", digest.size, f"your own file {weights}", sha256=digest.sha256)
        pending = [f for f in pending if f.role != "weights"]

    if pending:
        fetcher = Fetcher(
            Cache(cache_dir),
            mirrors=mirrors,
            allow_local=allow_local,
            allow_unpinned=allow_unpinned,
            offline=offline,
            num_attempts=num_attempts,
            progress=progress,
            timeout=timeout,
            retry_base=retry_base,
        )
        for sf in pending:
            fetched = fetcher.fetch(name, sf)
            destination = directory / sf.name
            place(fetched.path, destination)
            files[sf.name] = destination
            records[sf.name] = _record(
                destination,
                fetched.digest,
                fetched.how,
                url=fetched.url or None,
                unpinned=True if not sf.pinned else None,
            )
            progress.finish(name, sf.name, fetched.digest.size, fetched.how, sha256=fetched.digest.sha256)

    keep = {p.name for p in files.values()} | {SOURCES_JSON}
    for stale in directory.iterdir():
        if stale.name not in keep and stale.is_file() and not stale.name.startswith("."):
            stale.unlink()
    made_from_reference = reference is not None
    SourcesRecord(
        files=records,
        reference_weights=made_from_reference,
        seed=seed if made_from_reference else None,
        zoo=__version__,
        model=name,
        manifest_version=manifest.version,
        manifest_sha256=manifest.digest,
    ).write(directory / SOURCES_JSON)
    os.chmod(directory / SOURCES_JSON, 0o644)
    return SourceSet(directory, files, made_from_reference, seed if made_from_reference else None)


def read_source_set(manifest: Manifest, out: Path) -> SourceSet | None:
    """What a previous obtain_sources left in <out>/<name>/source/, re-verified; None if absent or stale."""
    directory = ModelLayout(Path(out), manifest.name).source_dir
    record = read_record(SourcesRecord, directory / SOURCES_JSON)
    if record is None:
        return None
    files: dict[str, Path] = {}
    for key, entry in record.files.items():
        path = directory / entry.path
        try:
            if path.stat().st_size != entry.size:
                return None
        except OSError:
            return None
        if hash_file(path).sha256 != entry.sha256:
            return None
        files[key] = path
    if not record.reference_weights:
        for sf in manifest.files:
            if sf.role == "weights" and "weights" in files:
                continue
            found = record.files.get(sf.name)
            if found is None:
                return None
            if sf.checksum is not None:
                algo, hexdigest = sf.checksum
                if (found.model_extra or {}).get(
                    algo, found.sha256 if algo == "sha256" else None
                ) != hexdigest:
                    return None
        if not manifest.weights.published and "weights" not in files:
            return None
    return SourceSet(directory, files, record.reference_weights, record.seed)


# -- many models at once ---------------------------------------------------------------------------


def bytes_to_fetch(manifests: list[Manifest], cache: Cache) -> int | None:
    """Declared bytes of the pinned files that are not in the cache yet (for the total bar)."""
    total = 0
    for manifest in manifests:
        for sf in manifest.files:
            if sf.checksum is None or sf.size is None:
                continue
            if cache.lookup(*sf.checksum) is None:
                total += sf.size
    return total or None
