"""Taking files out of downloaded archives (zip, wheel, tar) without trusting their names.

Members with absolute paths, ``..`` components, links and devices are refused: an archive
must never write outside the folder it is unpacked into, or plant a link that does later.
"""

from __future__ import annotations

import os
import stat
import tarfile
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path, PurePosixPath
from typing import IO

from zoo.errors import ZooError

#: a member without a declared size may expand to at most this many times its archive's size
MAX_EXPANSION = 100


class UnsafeArchive(ZooError):
    """An archive member that could escape the target folder or is not a plain file."""


def check_member_name(name: str, archive: str) -> PurePosixPath:
    """The member's path if it stays inside the target folder; refuse it otherwise."""
    normal = name.replace("\\", "/")
    path = PurePosixPath(normal)
    if normal.startswith("/") or (len(normal) > 1 and normal[1] == ":") or path.is_absolute():
        raise UnsafeArchive(f"{archive}: member {name!r} has an absolute path; refusing to extract it.")
    if any(part == ".." for part in path.parts):
        raise UnsafeArchive(f"{archive}: member {name!r} contains '..'; refusing to extract it.")
    return path


def _zip_kind(info: zipfile.ZipInfo) -> str:
    mode = info.external_attr >> 16
    if info.is_dir():
        return "dir"
    if mode and stat.S_ISLNK(mode):
        return "symlink"
    if mode and (stat.S_ISCHR(mode) or stat.S_ISBLK(mode) or stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode)):
        return "device"
    return "file"


def _tar_kind(info: tarfile.TarInfo) -> str:
    if info.isdir():
        return "dir"
    if info.issym():
        return "symlink"
    if info.islnk():
        return "hard link"
    if info.ischr() or info.isblk() or info.isfifo() or info.isdev():
        return "device"
    return "file" if info.isfile() else "special file"


def is_archive(path: Path) -> bool:
    return zipfile.is_zipfile(path) or tarfile.is_tarfile(path)


@contextmanager
def open_member(archive: Path, member: str, label: str | None = None) -> Iterator[tuple[IO[bytes], int]]:
    """Open one regular-file member for reading: (stream, size)."""
    label = label or str(archive)
    check_member_name(member, label)
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as zf:
            try:
                zinfo = zf.getinfo(member)
            except KeyError:
                raise ZooError(f"{label}: has no member {member!r}.") from None
            kind = _zip_kind(zinfo)
            if kind != "file":
                raise UnsafeArchive(
                    f"{label}: member {member!r} is a {kind}, not a regular file; refusing it."
                )
            with zf.open(zinfo) as stream:
                yield stream, zinfo.file_size
        return
    if tarfile.is_tarfile(archive):
        with tarfile.open(archive, "r:*") as tf:
            try:
                tinfo = tf.getmember(member)
            except KeyError:
                raise ZooError(f"{label}: has no member {member!r}.") from None
            kind = _tar_kind(tinfo)
            if kind != "file":
                raise UnsafeArchive(
                    f"{label}: member {member!r} is a {kind}, not a regular file; refusing it."
                )
            tar_stream = tf.extractfile(tinfo)
            assert tar_stream is not None
            with tar_stream:
                yield tar_stream, tinfo.size
        return
    raise ZooError(
        f"{label}: is neither a zip nor a tar archive, so member {member!r} cannot be taken out of it."
    )


def _open_file(
    handle: zipfile.ZipFile | tarfile.TarFile, info: zipfile.ZipInfo | tarfile.TarInfo
) -> IO[bytes]:
    """The bytes of a member ``unpack`` listed from *handle* and found to be a regular file."""
    if isinstance(handle, zipfile.ZipFile):
        assert isinstance(info, zipfile.ZipInfo)
        return handle.open(info)
    assert isinstance(info, tarfile.TarInfo)
    stream = handle.extractfile(info)
    assert stream is not None, "a regular file member always has a stream"
    return stream


def unpack(
    archive: Path,
    target: Path,
    label: str | None = None,
    on_file: Callable[[PurePosixPath, int], None] | None = None,
) -> list[Path]:
    """Unpack every member into ``target`` after checking all of them; return the files written."""
    label = label or str(archive)
    handle: zipfile.ZipFile | tarfile.TarFile
    entries: list[tuple[PurePosixPath, str, zipfile.ZipInfo | tarfile.TarInfo]] = []
    if zipfile.is_zipfile(archive):
        handle = zipfile.ZipFile(archive)
        for zinfo in handle.infolist():
            entries.append((check_member_name(zinfo.filename, label), _zip_kind(zinfo), zinfo))
    elif tarfile.is_tarfile(archive):
        handle = tarfile.open(archive, "r:*")
        for tinfo in handle.getmembers():
            entries.append((check_member_name(tinfo.name, label), _tar_kind(tinfo), tinfo))
    else:
        raise ZooError(f"{label}: is neither a zip nor a tar archive.")
    written: list[Path] = []
    root = target.resolve()
    try:
        for path, kind, _ in entries:
            if kind not in ("file", "dir"):
                raise UnsafeArchive(
                    f"{label}: member {str(path)!r} is a {kind}; archives with links or devices are refused."
                )
        for path, kind, info in entries:
            destination = (root / path).resolve()
            if root not in destination.parents and destination != root:
                raise UnsafeArchive(f"{label}: member {str(path)!r} resolves outside the target folder.")
            if kind == "dir":
                destination.mkdir(parents=True, exist_ok=True)
                continue
            destination.parent.mkdir(parents=True, exist_ok=True)
            with _open_file(handle, info) as source, open(destination, "xb") as sink:
                size = 0
                while chunk := source.read(1 << 20):
                    sink.write(chunk)
                    size += len(chunk)
            os.chmod(destination, 0o644)
            if on_file is not None:
                on_file(path, size)
            written.append(destination)
    finally:
        handle.close()
    return written
