"""obtain_sources against a real HTTP server on 127.0.0.1 that misbehaves in every way the issue lists.

Each case ends in a verified file or a clear error naming model, file and URL, and never leaves
an unverified file in the cache or the output folder. Resume is proven by the bytes the server sent.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path

import pytest

from tests.support.catalogs import catalog_with_files, file_entry
from tests.support.httpserver import (
    Drop,
    Html,
    IgnoreIfRange,
    IgnoreRange,
    Oversize,
    Slow,
    Stall,
    Status,
    WrongBytes,
)
from zoo.cache import Cache, entry_key
from zoo.errors import UsageError, ZooError
from zoo.manifest import load_manifest
from zoo.source_folder import SOURCES_JSON, obtain_sources, read_source_set
from zoo.stages.source import download_all

FILE = "aclnet_des_53.onnx"
SIZE = 3_000_000


@pytest.fixture(scope="module")
def payload() -> bytes:
    return os.urandom(SIZE)


def _manifest(tmp_path: Path, server, data: bytes, *, algo="sha256", path="model.bin", **extra):
    relpath = f"{tmp_path.name}/{path}"
    url = server.add(relpath, data)
    catalog = catalog_with_files(tmp_path, "aclnet", [file_entry(FILE, data, url, algo=algo, **extra)])
    return load_manifest(catalog / "aclnet.yaml"), relpath, url


def _obtain(manifest, tmp_path: Path, **options):
    options.setdefault("retry_base", 0.01)
    return obtain_sources(manifest, tmp_path / "out", cache_dir=tmp_path / "cache", **options)


def _assert_nothing_unverified(tmp_path: Path) -> None:
    """No object in the cache, no partial left, nothing in the output folder."""
    cache = tmp_path / "cache"
    assert not [p for p in (cache / "objects").rglob("*") if p.is_file()]
    assert not list((cache / "partial").glob("*.part"))
    source = tmp_path / "out" / "aclnet" / "source"
    assert not (source / FILE).exists() and not (source / SOURCES_JSON).exists()


def _assert_verified(result, data: bytes) -> None:
    path = result.files[FILE]
    assert path.read_bytes() == data
    record = json.loads((result.directory / SOURCES_JSON).read_text())["files"][FILE]
    assert record["sha256"] == hashlib.sha256(data).hexdigest() and record["size"] == len(data)


def test_drop_mid_body_resumes_with_range(tmp_path, http_server, payload):
    manifest, relpath, _ = _manifest(tmp_path, http_server, payload)
    http_server.fault(relpath, Drop(after=1_200_000))
    result = _obtain(manifest, tmp_path)
    _assert_verified(result, payload)
    stats = http_server.path_stats(relpath)
    assert stats.statuses == [200, 206]
    assert stats.ranges == [None, "bytes=1200000-"]
    assert stats.bytes_sent == SIZE  # the first 1.2 MB were not sent twice


def test_server_errors_then_success_with_sha384(tmp_path, http_server, payload):
    manifest, relpath, _ = _manifest(tmp_path, http_server, payload, algo="sha384")
    http_server.fault(relpath, Status(500), Status(503))
    result = _obtain(manifest, tmp_path)
    _assert_verified(result, payload)
    assert http_server.path_stats(relpath).statuses == [500, 503, 200]
    record = json.loads((result.directory / SOURCES_JSON).read_text())["files"][FILE]
    assert record["sha384"] == hashlib.sha384(payload).hexdigest()
    assert read_source_set(manifest, tmp_path / "out").files == result.files


@pytest.mark.parametrize("code", [404, 403, 410])
def test_no_retry_on_final_client_errors(tmp_path, http_server, payload, code):
    manifest, relpath, url = _manifest(tmp_path, http_server, payload)
    http_server.fault(relpath, Status(code), times=None)
    with pytest.raises(ZooError) as error:
        _obtain(manifest, tmp_path, num_attempts=5)
    message = error.value.message
    assert http_server.requests(relpath) == 1
    assert "aclnet" in message and FILE in message and url in message and f"HTTP {code}" in message
    assert error.value.exit_code == 1
    _assert_nothing_unverified(tmp_path)


def test_gives_up_after_num_attempts(tmp_path, http_server, payload):
    manifest, relpath, url = _manifest(tmp_path, http_server, payload)
    http_server.fault(relpath, Status(503), times=None)
    with pytest.raises(ZooError, match="gave up after 3 attempts"):
        _obtain(manifest, tmp_path, num_attempts=3)
    assert http_server.requests(relpath) == 3
    _assert_nothing_unverified(tmp_path)


def test_429_honours_retry_after(tmp_path, http_server, payload):
    manifest, relpath, _ = _manifest(tmp_path, http_server, payload)
    http_server.fault(relpath, Status(429, headers={"Retry-After": "1"}))
    started = time.monotonic()
    result = _obtain(manifest, tmp_path, retry_base=0.01)
    assert time.monotonic() - started >= 1.0
    _assert_verified(result, payload)
    assert http_server.path_stats(relpath).statuses == [429, 200]


def test_slow_server_and_read_timeout(tmp_path, http_server, payload):
    manifest, relpath, _ = _manifest(tmp_path, http_server, payload)
    # headers, then silence longer than the read timeout: the retry resumes and finishes slowly
    http_server.fault(relpath, Stall(seconds=3))
    http_server.fault(relpath, Slow(rate=6_000_000))
    result = _obtain(manifest, tmp_path, timeout=1)
    _assert_verified(result, payload)
    assert http_server.requests(relpath) == 2  # the stalled answer timed out and was retried


def test_server_ignoring_range_restarts_from_zero(tmp_path, http_server, payload):
    manifest, relpath, _ = _manifest(tmp_path, http_server, payload)
    http_server.fault(relpath, Drop(after=1_000_000), IgnoreRange())
    result = _obtain(manifest, tmp_path)
    _assert_verified(result, payload)
    stats = http_server.path_stats(relpath)
    assert stats.ranges[1] == "bytes=1000000-" and stats.statuses == [200, 200]
    assert stats.bytes_sent == 1_000_000 + SIZE


def test_html_page_is_refused_with_first_bytes(tmp_path, http_server, payload):
    manifest, relpath, url = _manifest(tmp_path, http_server, payload)
    http_server.fault(relpath, Html(), times=None)
    with pytest.raises(ZooError) as error:
        _obtain(manifest, tmp_path)
    message = error.value.message
    assert "HTML page" in message and "Sign in to continue" in message and url in message
    assert http_server.requests(relpath) == 1
    _assert_nothing_unverified(tmp_path)


def test_wrong_bytes_are_discarded(tmp_path, http_server, payload):
    manifest, relpath, url = _manifest(tmp_path, http_server, payload)
    http_server.fault(relpath, WrongBytes(), times=None)
    with pytest.raises(ZooError) as error:
        _obtain(manifest, tmp_path)
    message = error.value.message
    assert "wrong bytes" in message and hashlib.sha256(payload).hexdigest() in message and url in message
    _assert_nothing_unverified(tmp_path)


def test_announced_oversize_is_refused_before_the_body(tmp_path, http_server, payload):
    manifest, relpath, _ = _manifest(tmp_path, http_server, payload)
    http_server.fault(relpath, Oversize(extra=10), times=None)
    with pytest.raises(
        ZooError, match="announces 3,000,010 bytes, more than the 3,000,000 the manifest declares"
    ):
        _obtain(manifest, tmp_path)
    _assert_nothing_unverified(tmp_path)


def test_unannounced_oversize_aborts_as_soon_as_the_body_exceeds(tmp_path, http_server, payload):
    manifest, relpath, _ = _manifest(tmp_path, http_server, payload)
    http_server.fault(relpath, Oversize(extra=64_000_000, announce=False), times=None)
    with pytest.raises(ZooError, match="grew past the 3,000,000 bytes"):
        _obtain(manifest, tmp_path)
    time.sleep(0.2)
    assert http_server.bytes_sent(relpath) < SIZE + 64_000_000  # we hung up long before the end
    _assert_nothing_unverified(tmp_path)


def test_second_run_transfers_nothing_and_cache_is_shared(tmp_path, http_server, payload):
    manifest, relpath, _ = _manifest(tmp_path, http_server, payload)
    _obtain(manifest, tmp_path)
    assert http_server.requests(relpath) == 1
    again = _obtain(manifest, tmp_path)
    other = obtain_sources(manifest, tmp_path / "other-out", cache_dir=tmp_path / "cache")
    assert http_server.requests(relpath) == 1
    _assert_verified(again, payload)
    _assert_verified(other, payload)


def test_corrupted_cache_entry_is_detected_and_replaced(tmp_path, http_server, payload):
    manifest, relpath, _ = _manifest(tmp_path, http_server, payload)
    result = _obtain(manifest, tmp_path)
    obj = Cache(tmp_path / "cache").lookup("sha256", hashlib.sha256(payload).hexdigest())
    os.chmod(obj, 0o644)
    with open(obj, "r+b") as handle:  # bit rot in the cache (the output is a hard link of it)
        handle.seek(100)
        handle.write(b"\x00\x01\x02")
    assert read_source_set(manifest, tmp_path / "out") is None
    again = _obtain(manifest, tmp_path)
    assert http_server.requests(relpath) == 2
    _assert_verified(again, payload)
    _assert_verified(result, payload)


def test_resume_across_runs_after_a_killed_download(tmp_path, http_server, payload):
    """A partial file left by an earlier run is continued with a Range request."""
    manifest, relpath, _ = _manifest(tmp_path, http_server, payload)
    http_server.fault(relpath, Drop(after=2_000_000))
    with pytest.raises(ZooError, match="connection lost after 2,000,000 bytes"):
        _obtain(manifest, tmp_path, num_attempts=1)  # the run ends; its bytes stay for the next run
    partial = list((tmp_path / "cache" / "partial").glob("*.part"))
    assert len(partial) == 1 and partial[0].stat().st_size == 2_000_000
    _assert_verified(_obtain(manifest, tmp_path), payload)
    stats = http_server.path_stats(relpath)
    assert stats.ranges == [None, "bytes=2000000-"] and stats.bytes_sent == SIZE


def test_offline_uses_only_the_cache(tmp_path, http_server, payload):
    manifest, relpath, _ = _manifest(tmp_path, http_server, payload)
    with pytest.raises(ZooError, match="--offline forbids downloading"):
        _obtain(manifest, tmp_path, offline=True)
    assert http_server.requests(relpath) == 0
    _obtain(manifest, tmp_path)
    _assert_verified(_obtain(manifest, tmp_path, offline=True), payload)
    assert http_server.requests(relpath) == 1


def test_unpinned_needs_allow_unpinned(tmp_path, http_server, payload):
    relpath = f"{tmp_path.name}/unpinned.bin"
    url = http_server.add(relpath, payload)
    catalog = catalog_with_files(
        tmp_path, "aclnet", [{"name": FILE, "unpinned": True, "sources": [{"url": url}]}]
    )
    manifest = load_manifest(catalog / "aclnet.yaml")
    with pytest.raises(UsageError, match="zoo pin --name aclnet"):
        _obtain(manifest, tmp_path)
    assert http_server.requests(relpath) == 0
    result = _obtain(manifest, tmp_path, allow_unpinned=True)
    _assert_verified(result, payload)
    record = json.loads((result.directory / SOURCES_JSON).read_text())["files"][FILE]
    assert record["unpinned"] is True
    _obtain(manifest, tmp_path, allow_unpinned=True)
    assert http_server.requests(relpath) == 1  # trust on first use: the recorded copy is reused


def test_416_when_the_file_shrank_since_the_partial_download(tmp_path, http_server, payload):
    relpath = f"{tmp_path.name}/changing.bin"
    url = http_server.add(relpath, payload)
    catalog = catalog_with_files(
        tmp_path, "aclnet", [{"name": FILE, "unpinned": True, "sources": [{"url": url}]}]
    )
    manifest = load_manifest(catalog / "aclnet.yaml")
    http_server.fault(relpath, Drop(after=2_000_000))
    with pytest.raises(ZooError, match="connection lost"):
        _obtain(manifest, tmp_path, allow_unpinned=True, num_attempts=1)
    smaller = payload[:1_000_000]
    http_server.add(relpath, smaller)  # upstream replaced the file in between
    http_server.fault(relpath, IgnoreIfRange())  # and its server does not check If-Range
    result = _obtain(manifest, tmp_path, allow_unpinned=True)
    assert result.files[FILE].read_bytes() == smaller
    stats = http_server.path_stats(relpath)
    assert stats.statuses == [200, 416, 200] and stats.ranges[1] == "bytes=2000000-"


def test_if_range_restarts_when_the_file_changed(tmp_path, http_server, payload):
    relpath = f"{tmp_path.name}/changed.bin"
    url = http_server.add(relpath, payload)
    catalog = catalog_with_files(
        tmp_path, "aclnet", [{"name": FILE, "unpinned": True, "sources": [{"url": url}]}]
    )
    manifest = load_manifest(catalog / "aclnet.yaml")
    http_server.fault(relpath, Drop(after=2_000_000))
    with pytest.raises(ZooError, match="connection lost"):
        _obtain(manifest, tmp_path, allow_unpinned=True, num_attempts=1)
    changed = os.urandom(SIZE)
    time.sleep(0.01)
    http_server.add(relpath, changed)
    result = _obtain(manifest, tmp_path, allow_unpinned=True)
    assert result.files[FILE].read_bytes() == changed  # not old bytes glued to new ones
    stats = http_server.path_stats(relpath)
    assert stats.statuses == [200, 200] and stats.ranges[1] == "bytes=2000000-"


def test_complete_partial_is_finished_without_a_request(tmp_path, http_server, payload):
    """A run killed after the last byte but before the move into the cache costs nothing to finish."""
    manifest, relpath, _ = _manifest(tmp_path, http_server, payload)
    cache = Cache(tmp_path / "cache")
    cache.partial_path(entry_key("sha256", hashlib.sha256(payload).hexdigest())).write_bytes(payload)
    _assert_verified(_obtain(manifest, tmp_path), payload)
    assert http_server.requests(relpath) == 0


def test_mirror_first_then_original(tmp_path, http_server, payload):
    manifest, relpath, _ = _manifest(tmp_path, http_server, payload)
    digest = hashlib.sha256(payload).hexdigest()
    mirror = tmp_path / "mirror"
    (mirror / "sha256").mkdir(parents=True)
    (mirror / "sha256" / digest).write_bytes(payload)
    result = _obtain(manifest, tmp_path, mirrors=[str(mirror)])
    _assert_verified(result, payload)
    assert http_server.requests(relpath) == 0
    # a mirror without the file (404) falls through to the original source
    empty = http_server.url(f"{tmp_path.name}/empty-mirror")
    result = obtain_sources(manifest, tmp_path / "out2", cache_dir=tmp_path / "cache2", mirrors=[empty])
    _assert_verified(result, payload)
    assert http_server.requests(relpath) == 1
    assert http_server.path_stats(f"{tmp_path.name}/empty-mirror/sha256/{digest}").statuses == [404]


def test_weights_file_and_missing_weights(tmp_path):
    catalog = tmp_path / "catalog"
    catalog_with_files(tmp_path, "aclnet", [])  # just the copy
    manifest = load_manifest(catalog / "dcase2018-task2-vggish.yaml")
    with pytest.raises(UsageError) as error:
        _obtain(manifest, tmp_path)
    assert "--weights PATH" in error.value.message and "--reference-weights" in error.value.message
    assert "iteration" in error.value.message  # the manifest's weights.format
    mine = tmp_path / "my-checkpoint.pth"
    mine.write_bytes(b"\x80\x02not really a checkpoint, the converter judges that")
    result = _obtain(manifest, tmp_path, weights=mine)
    assert result.files["weights"].read_bytes() == mine.read_bytes()
    assert result.reference_weights is False
    again = read_source_set(manifest, tmp_path / "out")
    assert again is not None and again.files["weights"] == result.files["weights"]
    with pytest.raises(UsageError, match="is not a file"):
        _obtain(manifest, tmp_path, weights=tmp_path / "nope.pth")


def test_two_models_sharing_a_file_in_parallel_make_one_transfer(tmp_path, http_server, payload):
    relpath = f"{tmp_path.name}/shared.bin"
    url = http_server.add(relpath, payload)
    http_server.fault(relpath, Slow(rate=10_000_000), times=None)
    catalog_with_files(tmp_path, "aclnet", [file_entry(FILE, payload, url)])
    catalog = catalog_with_files(
        tmp_path, "aclnet-int8", [file_entry("aclnet_des_53_int8.onnx", payload, url)]
    )
    manifests = [load_manifest(catalog / f"{name}.yaml") for name in ("aclnet", "aclnet-int8")]
    outcomes = download_all(manifests, tmp_path / "out", jobs=2, cache_dir=tmp_path / "cache")
    assert [o.error for o in outcomes] == [None, None]
    assert http_server.requests(relpath) == 1
    assert outcomes[1].sources.files["aclnet_des_53_int8.onnx"].read_bytes() == payload
