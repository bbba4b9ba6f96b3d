"""Bundle tarballs: written so the bytes depend only on the content, read back refusing anything unsafe.

Writing: entries sorted, one fixed mtime (the bundle's creation time), uid/gid 0, no user
names, a gzip header without name or time. Reading: regular files and folders under one
top folder only; links, devices, absolute paths and '..' are refused before anything is written.
"""

from __future__ import annotations

import contextlib
import gzip
import shutil
import tarfile
import tempfile
import zlib
from collections.abc import Iterator
from pathlib import Path, PurePosixPath

from zoo.atomic import atomic_open
from zoo.bundle.names import CHUNK, BundleCheckError, relative_files, safe_relative
from zoo.errors import UsageError


def write_tarball(folder: Path, target: Path, mtime: int) -> None:
    """A .tar.gz of folder whose bytes depend only on the files' names and contents and on mtime."""
    top = folder.name
    with atomic_open(target, "wb") as raw:
        with gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=6) as zipped:
            with tarfile.open(fileobj=zipped, mode="w", format=tarfile.PAX_FORMAT) as tar:
                tar.addfile(_tar_info(top, mtime, directory=True))
                for rel in _tar_entries(folder):
                    path = folder / rel
                    if path.is_dir():
                        tar.addfile(_tar_info(f"{top}/{rel}", mtime, directory=True))
                    else:
                        info = _tar_info(f"{top}/{rel}", mtime, size=path.stat().st_size)
                        with open(path, "rb") as handle:
                            tar.addfile(info, handle)


def _tar_entries(folder: Path) -> list[str]:
    files = relative_files(folder)
    dirs = {str(PurePosixPath(f).parents[i]) for f in files for i in range(len(PurePosixPath(f).parts) - 1)}
    return sorted(dirs | set(files))


def _tar_info(name: str, mtime: int, *, directory: bool = False, size: int = 0) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.mtime = int(mtime)
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    if directory:
        info.type = tarfile.DIRTYPE
        info.mode = 0o755
    else:
        info.type = tarfile.REGTYPE
        info.mode = 0o644
        info.size = size
    return info


@contextlib.contextmanager
def opened_bundle(path: Path) -> Iterator[Path]:
    """The bundle folder for a folder or a .tar.gz (extracted safely into a temporary folder)."""
    path = Path(path)
    if path.is_dir():
        yield path
        return
    if not path.is_file():
        raise UsageError(f"{path}: no such bundle (expected a bundle folder or its .tar.gz).")
    with tempfile.TemporaryDirectory(prefix="zoo-bundle-") as scratch:
        yield extract_tarball(path, Path(scratch))


def extract_tarball(tarball: Path, dest: Path) -> Path:
    """Extract a bundle tarball into dest; refuse links, devices, absolute paths, '..' and stray tops."""
    try:
        tar = tarfile.open(tarball, "r:gz")
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise BundleCheckError(
            f"{tarball}: not a readable .tar.gz bundle ({exc}).", Path(tarball).name
        ) from exc
    with tar:
        try:
            members = tar.getmembers()
        except (tarfile.TarError, OSError, EOFError, zlib.error) as exc:
            raise BundleCheckError(f"{tarball}: the archive is damaged ({exc}).", Path(tarball).name) from exc
        tops, entries = set(), []
        for member in members:
            rel = safe_relative(member.name.rstrip("/"), f"{tarball}: member")
            if not (member.isfile() or member.isdir()):
                raise BundleCheckError(
                    f"{tarball}: member {member.name!r} is a link or special file; bundles hold regular files only.",
                    member.name,
                )
            tops.add(PurePosixPath(rel).parts[0])
            entries.append((rel, member))
        if len(tops) != 1:
            raise BundleCheckError(
                f"{tarball}: expected one top folder <bundle>-<version>/, found {sorted(tops)}."
            )
        top = tops.pop()
        for rel, member in entries:
            target = dest / rel
            try:
                if member.isdir():
                    target.mkdir(parents=True, exist_ok=True)
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                source = tar.extractfile(member)
                if source is None:  # pragma: no cover - isfile() members always have data
                    raise tarfile.TarError(f"no data for {member.name}")
                with source, open(target, "wb") as handle:
                    shutil.copyfileobj(source, handle, CHUNK)
            except (tarfile.TarError, OSError, EOFError, zlib.error) as exc:
                raise BundleCheckError(
                    f"{tarball}: cannot extract {member.name} (a damaged archive, or a file where a folder "
                    f"belongs): {exc}.",
                    member.name,
                ) from exc
    return dest / top
