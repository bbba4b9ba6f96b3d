"""Broken disks: a full file system and a read-only cache, on real mounts.

A 1 MiB tmpfs is a disk that fills up; a read-only bind mount is a shared, prebuilt cache. Both
need mount rights (root in a container): without them the tests skip and say why.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.catalogs import catalog_with_files, file_entry
from tests.support.cli import download_aclnet, zoo_on


@contextlib.contextmanager
def _mounted(target: Path, *args: str) -> Iterator[Path]:
    target.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run(["mount", *args, str(target)], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        pytest.skip(
            f"cannot mount here ({proc.stderr.strip() or 'no mount rights'}); a real disk fault needs it"
        )
    try:
        yield target
    finally:
        subprocess.run(["umount", "-l", str(target)], capture_output=True, check=False)


def _tmpfs(target: Path, size: str = "1m"):
    return _mounted(target, "-t", "tmpfs", "-o", f"size={size}", "tmpfs")


def _download(tmp_path: Path, catalog: Path, out: Path, cache: Path, *extra: str):
    return download_aclnet(catalog, *extra, out=out, cache=cache)


def _served(tmp_path: Path, server, size: int):
    data = os.urandom(size)
    relpath = f"{tmp_path.name}/model.bin"
    url = server.add(relpath, data)
    return catalog_with_files(tmp_path, "aclnet", [file_entry("model.onnx", data, url)]), relpath, data


def test_a_full_cache_disk_stops_at_once_and_leaves_nothing_behind(tmp_path, http_server):
    catalog, relpath, _ = _served(tmp_path, http_server, 3 << 20)
    with _tmpfs(tmp_path / "small") as cache:
        result = _download(tmp_path, catalog, tmp_path / "out", cache)
        assert result.returncode == 1, result.stderr
        assert f"no space left on {cache}" in result.stderr
        assert "connection lost" not in result.stderr and "internal error" not in result.stderr
        assert http_server.requests(relpath) == 1  # stopped, not retried
        assert not [p for p in (cache / "partial").iterdir()], "a partial download was left behind"
        assert not [p for p in (cache / "objects").rglob("*") if p.is_file()]
    # with room again, the next run completes
    result = _download(tmp_path, catalog, tmp_path / "out", tmp_path / "cache")
    assert result.returncode == 0, result.stderr


def test_a_full_output_disk_is_named_and_nothing_half_written_stays(tmp_path, http_server):
    catalog, _, _ = _served(tmp_path, http_server, 3 << 20)
    with _tmpfs(tmp_path / "small") as out:
        result = _download(tmp_path, catalog, out, tmp_path / "cache")
        assert result.returncode == 1, result.stderr
        assert "no space left on" in result.stderr and str(out) in result.stderr
        assert "internal error" not in result.stderr
        leftovers = [p for p in out.rglob("*") if p.is_file()]
        assert not leftovers, leftovers


def test_a_read_only_cache_serves_what_it_holds(tmp_path, http_server):
    catalog, relpath, data = _served(tmp_path, http_server, 200_000)
    prebuilt = tmp_path / "prebuilt"
    assert _download(tmp_path, catalog, tmp_path / "first", prebuilt).returncode == 0
    with _mounted(tmp_path / "shared", "--bind", "-o", "ro", str(prebuilt)) as shared:
        with pytest.raises(OSError):
            (shared / "locks" / "probe").write_text("x")
        for extra in ((), ("--offline",)):
            out = tmp_path / f"out{len(extra)}"
            result = _download(tmp_path, catalog, out, shared, *extra)
            assert result.returncode == 0, result.stderr
            assert (out / "aclnet" / "source" / "model.onnx").read_bytes() == data
        assert http_server.requests(relpath) == 1  # only the first run downloaded

        (tmp_path / "other").mkdir()
        other, _, _ = _served(tmp_path / "other", http_server, 1000)
        result = _download(tmp_path, other, tmp_path / "out-missing", shared)
        assert result.returncode == 1 and "read-only" in result.stderr, result.stderr
        assert "internal error" not in result.stderr


def test_a_full_mirror_disk_is_an_error_not_a_crash(tmp_path, http_server):
    catalog, _, _ = _served(tmp_path, http_server, 3 << 20)
    with _tmpfs(tmp_path / "small") as mirror:
        result = zoo_on("mirror", "aclnet", catalog, out=mirror, cache=tmp_path / "cache")
        assert result.returncode == 1, result.stderr
        assert "no space left on" in result.stderr and str(mirror) in result.stderr
        assert "internal error" not in result.stderr


@pytest.mark.parametrize("mask", [0o022, 0o077])
def test_published_files_follow_the_umask(tmp_path, http_server, mask):
    from zoo.atomic import atomic_dir

    catalog, _, _ = _served(tmp_path, http_server, 1000)
    saved = os.umask(mask)
    try:
        result = zoo_on("mirror", "aclnet", catalog, out=tmp_path / "m", cache=tmp_path / "c")
        with atomic_dir(tmp_path / "dist") as folder:
            (folder / "x").write_text("x")
    finally:
        os.umask(saved)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "m" / "index.json").stat().st_mode & 0o777 == 0o666 & ~mask
    assert (tmp_path / "dist").stat().st_mode & 0o777 == 0o777 & ~mask


def test_a_conversion_on_a_full_disk_names_it(tmp_path):
    from tests.tinymodel import make_tiny_onnx, write_tiny_entry

    model = make_tiny_onnx(tmp_path / "upstream" / "tiny.onnx")
    catalog = tmp_path / "catalog"
    write_tiny_entry(catalog, model)
    with _tmpfs(tmp_path / "small", "256k") as out:
        filler = out / "filler"
        with open(filler, "wb") as handle:  # leave a little more room than the source file needs
            handle.write(b"\0" * (256 * 1024 - model.stat().st_size - 32 * 1024))
        result = zoo_on("convert", "tiny", catalog, out=out, cache=tmp_path / "cache")
        assert result.returncode == 1, result.stdout + result.stderr
        assert "no space left on" in result.stdout + result.stderr
        assert "internal error" not in result.stdout + result.stderr


def test_a_damaged_entry_in_a_read_only_cache_is_not_handed_out(tmp_path, http_server):
    catalog, _, data = _served(tmp_path, http_server, 200_000)
    prebuilt = tmp_path / "prebuilt"
    assert _download(tmp_path, catalog, tmp_path / "first", prebuilt).returncode == 0
    entry = next(p for p in (prebuilt / "objects").rglob("*") if p.is_file())
    entry.chmod(0o644)
    entry.write_bytes(b"\xff" + data[1:])
    with _mounted(tmp_path / "shared", "--bind", "-o", "ro", str(prebuilt)) as shared:
        result = _download(tmp_path, catalog, tmp_path / "out", shared)
        assert result.returncode == 1 and "read-only" in result.stderr, result.stderr
        assert "internal error" not in result.stderr
        assert not (tmp_path / "out" / "aclnet" / "source" / "model.onnx").exists()


def test_a_read_only_output_folder_is_an_error_not_a_crash(tmp_path, http_server):
    catalog, _, _ = _served(tmp_path, http_server, 1000)
    (tmp_path / "ro-src").mkdir()
    with _mounted(tmp_path / "ro", "--bind", "-o", "ro", str(tmp_path / "ro-src")) as out:
        result = zoo_on("mirror", "aclnet", catalog, out=out, cache=tmp_path / "c")
        assert result.returncode == 1, result.stderr
        assert "Read-only file system" in result.stderr and "internal error" not in result.stderr
