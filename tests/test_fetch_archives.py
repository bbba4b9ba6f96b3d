"""Archive members: taken out safely, and refused when they could escape or are not plain files."""

from __future__ import annotations

import hashlib
import io
import os
import tarfile
import zipfile

import pytest

from tests.support.catalogs import catalog_with_files
from zoo.archives import UnsafeArchive, open_member, unpack
from zoo.errors import ZooError
from zoo.manifest import load_manifest
from zoo.source_folder import obtain_sources


def _zip(path, members: dict[str, bytes], symlink: str | None = None):
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
        if symlink:
            info = zipfile.ZipInfo(symlink)
            info.external_attr = 0o120777 << 16  # S_IFLNK
            zf.writestr(info, "/etc/passwd")
    return path


def _tar(path, members: dict[str, bytes], extra: list[tarfile.TarInfo] = ()):
    with tarfile.open(path, "w:gz") as tf:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
        for info in extra:
            tf.addfile(info)
    return path


def test_member_from_an_archive_served_over_http(tmp_path, http_server):
    weights = os.urandom(200_000)
    archive = _zip(tmp_path / "release.zip", {"release/model.onnx": weights, "README": b"hello"})
    url = http_server.add(f"{tmp_path.name}/release.zip", archive.read_bytes())
    entry = {
        "name": "aclnet_des_53.onnx",
        "size": len(weights),
        "sha256": hashlib.sha256(weights).hexdigest(),
        "sources": [{"url": url, "member": "release/model.onnx"}],
    }
    manifest = load_manifest(catalog_with_files(tmp_path, "aclnet", [entry]) / "aclnet.yaml")
    result = obtain_sources(manifest, tmp_path / "out", cache_dir=tmp_path / "cache")
    assert result.files["aclnet_des_53.onnx"].read_bytes() == weights
    assert not list((tmp_path / "cache" / "partial").iterdir())  # the unverified archive is gone


def test_member_with_dotdot_in_the_manifest_is_refused(tmp_path, http_server):
    archive = _zip(tmp_path / "a.zip", {"x": b"1"})
    url = http_server.add(f"{tmp_path.name}/a.zip", archive.read_bytes())
    entry = {"name": "aclnet_des_53.onnx", "sha256": "0" * 64, "sources": [{"url": url, "member": "../x"}]}
    manifest = load_manifest(catalog_with_files(tmp_path, "aclnet", [entry]) / "aclnet.yaml")
    with pytest.raises(ZooError, match=r"contains '\.\.'"):
        obtain_sources(manifest, tmp_path / "out", cache_dir=tmp_path / "cache")


@pytest.mark.parametrize("bad", ["../escape.txt", "/etc/evil", "a/../../b"])
def test_unpack_refuses_escaping_names_and_writes_nothing(tmp_path, bad):
    target = tmp_path / "target"
    for archive in (
        _zip(tmp_path / "bad.zip", {"ok.txt": b"ok", bad: b"evil"}),
        _tar(tmp_path / "bad.tar.gz", {"ok.txt": b"ok", bad: b"evil"}),
    ):
        with pytest.raises(UnsafeArchive):
            unpack(archive, target)
        assert not target.exists() or not any(target.iterdir())
    assert not (tmp_path / "escape.txt").exists()


def test_links_and_devices_are_refused(tmp_path):
    link = tarfile.TarInfo("link")
    link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
    hard = tarfile.TarInfo("hard")
    hard.type, hard.linkname = tarfile.LNKTYPE, "ok.txt"
    device = tarfile.TarInfo("dev")
    device.type = tarfile.CHRTYPE
    for info, kind in ((link, "symlink"), (hard, "hard link"), (device, "device")):
        archive = _tar(tmp_path / f"{kind}.tar.gz", {"ok.txt": b"ok"}, [info])
        with pytest.raises(UnsafeArchive, match=kind):
            unpack(archive, tmp_path / kind)
        with pytest.raises(UnsafeArchive, match=kind), open_member(archive, info.name):
            pass
    archive = _zip(tmp_path / "link.zip", {"ok.txt": b"ok"}, symlink="link")
    with pytest.raises(UnsafeArchive, match="symlink"):
        unpack(archive, tmp_path / "zip-target")


def test_unpack_good_archive(tmp_path):
    archive = _tar(tmp_path / "good.tar.gz", {"a/b.txt": b"bee", "c.txt": b"sea"})
    written = unpack(archive, tmp_path / "out")
    assert sorted(p.relative_to(tmp_path / "out").as_posix() for p in written) == ["a/b.txt", "c.txt"]
    with open_member(archive, "a/b.txt") as (stream, size):
        assert stream.read() == b"bee" and size == 3
