"""`zoo download` and `zoo cache` as a user runs them: real processes, a real server on 127.0.0.1."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.conftest import ROOT, run_zoo
from tests.support.catalogs import catalog_with_files, file_entry, served_catalog
from tests.support.httpserver import Slow, Status
from zoo.manifest import load_manifest
from zoo.source_folder import read_source_set
from zoo.stages.source import obtain

FILE = "aclnet_des_53.onnx"


def _catalog(tmp_path: Path, server, data: bytes, name: str = "model.bin") -> tuple[Path, str]:
    relpath = f"{tmp_path.name}/{name}"
    url = server.add(relpath, data)
    return catalog_with_files(tmp_path, "aclnet", [file_entry(FILE, data, url)]), relpath


def _env(tmp_path: Path, **extra) -> dict:
    return {"ZOO_CACHE": str(tmp_path / "cache"), "ZOO_RETRY_BASE": "0.01", **extra}


def _spawn(*args: str, env: dict) -> subprocess.Popen:
    full = dict(os.environ)
    full.pop("ZOO_MANIFESTS", None)
    full.update(env)
    return subprocess.Popen(
        [sys.executable, "-m", "zoo.cli", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=full,
        cwd=ROOT,
    )


def test_download_json_progress_then_nothing_to_transfer(tmp_path, http_server):
    data = os.urandom(2_000_000)
    catalog, relpath = _catalog(tmp_path, http_server, data)
    http_server.fault(relpath, Status(503))
    args = ("download", "--name", "aclnet", "--manifests", str(catalog), "-o", str(tmp_path / "out"))
    result = run_zoo(*args, "--progress", "json", env=_env(tmp_path))
    assert result.returncode == 0, result.stderr
    events = [json.loads(line) for line in result.stdout.splitlines()]
    kinds = [e["event"] for e in events]
    assert {"total", "retry", "start", "done"} <= set(kinds)
    done = next(e for e in events if e["event"] == "done")
    assert done["how"] == "downloaded" and done["sha256"] == hashlib.sha256(data).hexdigest()
    assert (tmp_path / "out" / "aclnet" / "source" / FILE).read_bytes() == data
    again = run_zoo(*args, "--progress", "text", env=_env(tmp_path))
    assert again.returncode == 0, again.stderr
    assert "in cache" in again.stdout and "verified" in again.stdout
    assert http_server.requests(relpath) == 2  # the 503 and the one transfer


def test_error_names_model_file_url_and_exits_1(tmp_path, http_server):
    catalog, relpath = _catalog(tmp_path, http_server, b"x" * 1000)
    http_server.fault(relpath, Status(404), times=None)
    result = run_zoo(
        "download",
        "--name",
        "aclnet",
        "--manifests",
        str(catalog),
        "-o",
        str(tmp_path / "out"),
        env=_env(tmp_path),
    )
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    message = result.stderr
    assert (
        "aclnet" in message
        and FILE in message
        and http_server.url(relpath) in message
        and "HTTP 404" in message
    )


def test_unreachable_host_suggests_a_mirror_or_reference_weights(tmp_path):
    data = b"x" * 1000
    catalog = catalog_with_files(tmp_path, "aclnet", [file_entry(FILE, data, "http://127.0.0.1:9/gone.onnx")])
    result = run_zoo(
        "download",
        "--name",
        "aclnet",
        "--manifests",
        str(catalog),
        "-o",
        str(tmp_path / "out"),
        "--num-attempts",
        "1",
        env=_env(tmp_path),
    )
    assert result.returncode == 1 and "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert lines[-1] == "zoo: error: 1 of 1 models failed."
    assert lines[-2].startswith("zoo: aclnet: source: file aclnet_des_53.onnx")
    assert "cannot connect" in lines[-2] and "http://127.0.0.1:9/gone.onnx" in lines[-2]
    assert "--mirror DIR_OR_URL" in lines[-2] and "--reference-weights" in lines[-2]


def test_unpublished_weights_are_skipped_under_a_pattern(tmp_path):
    result = run_zoo("download", "--name", "dcase2018-*", "-o", str(tmp_path / "out"), env=_env(tmp_path))
    assert result.returncode == 0, result.stderr
    for name in ("dcase2018-task2-baseline-cnn", "dcase2018-task2-vggish"):
        assert f"zoo: {name}: skipped: upstream publishes no weights; to run it give --weights PATH (" in (
            result.stderr
        )
        assert not (tmp_path / "out" / name / "source" / "SOURCES.json").exists()


def test_unpinned_and_missing_weights_are_usage_errors(tmp_path):
    result = run_zoo("download", "--name", "kahl-aed", "-o", str(tmp_path / "out"), env=_env(tmp_path))
    assert result.returncode == 2, result.stderr
    assert "zoo pin --name kahl-aed" in result.stderr and "--allow-unpinned" in result.stderr
    result = run_zoo(
        "download", "--name", "dcase2018-task2-vggish", "-o", str(tmp_path / "out"), env=_env(tmp_path)
    )
    assert result.returncode == 2
    assert "--weights PATH" in result.stderr and "--reference-weights" in result.stderr


def test_four_processes_make_one_transfer(tmp_path, http_server):
    data = os.urandom(3_000_000)
    catalog, relpath = _catalog(tmp_path, http_server, data)
    http_server.fault(relpath, Slow(rate=2_000_000), times=None)  # long enough for all four to meet
    procs = [
        _spawn(
            "download",
            "--name",
            "aclnet",
            "--manifests",
            str(catalog),
            "-o",
            str(tmp_path / f"out{i}"),
            "--progress",
            "json",
            env=_env(tmp_path),
        )
        for i in range(4)
    ]
    outputs = [p.communicate(timeout=120) for p in procs]
    for proc, (_, stderr) in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, stderr
    stats = http_server.path_stats(relpath)
    assert stats.requests == 1 and stats.bytes_sent == len(data)
    for i in range(4):
        assert (tmp_path / f"out{i}" / "aclnet" / "source" / FILE).read_bytes() == data
    assert sum("another process is fetching" in out for out, _ in outputs) >= 1


def test_killed_download_resumes_in_the_next_run(tmp_path, http_server):
    data = os.urandom(4_000_000)
    catalog, relpath = _catalog(tmp_path, http_server, data)
    http_server.fault(relpath, Slow(rate=1_000_000))
    args = ("download", "--name", "aclnet", "--manifests", str(catalog), "-o", str(tmp_path / "out"))
    proc = _spawn(*args, env=_env(tmp_path))
    partial_dir = tmp_path / "cache" / "partial"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        parts = list(partial_dir.glob("*.part")) if partial_dir.exists() else []
        if parts and parts[0].stat().st_size > 1_000_000:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    kept = parts[0].stat().st_size
    assert 1_000_000 < kept < len(data)
    time.sleep(0.3)  # the server notices the hang-up
    first_sent = http_server.bytes_sent(relpath)
    result = run_zoo(*args, env=_env(tmp_path))
    assert result.returncode == 0, result.stderr
    stats = http_server.path_stats(relpath)
    assert stats.ranges == [None, f"bytes={kept}-"] and stats.statuses[-1] == 206
    assert stats.bytes_sent - first_sent == len(data) - kept  # only the missing bytes crossed the wire
    assert (tmp_path / "out" / "aclnet" / "source" / FILE).read_bytes() == data


def test_jobs_and_cache_info_and_clean(tmp_path, http_server):
    first, second = os.urandom(500_000), os.urandom(700_000)
    url1 = http_server.add(f"{tmp_path.name}/a.bin", first)
    url2 = http_server.add(f"{tmp_path.name}/b.bin", second)
    catalog_with_files(tmp_path, "aclnet", [file_entry(FILE, first, url1)])
    catalog = catalog_with_files(
        tmp_path, "aclnet-int8", [file_entry("aclnet_des_53_int8.onnx", second, url2)]
    )
    result = run_zoo(
        "download",
        "--name",
        "aclnet*",
        "--manifests",
        str(catalog),
        "-o",
        str(tmp_path / "out"),
        "-j",
        "2",
        env=_env(tmp_path),
    )
    assert result.returncode == 0, result.stderr
    info = run_zoo("cache", "info", "--json", env=_env(tmp_path)).json()
    assert info["entries"] == 2 and info["bytes"] == 1_200_000 and info["partial_downloads"] == 0
    assert "verified files: 2" in run_zoo("cache", "info", env=_env(tmp_path)).stdout
    cleaned = run_zoo("cache", "clean", "--json", env=_env(tmp_path)).json()
    assert cleaned["entries"] == 2 and cleaned["bytes"] == 1_200_000
    assert run_zoo("cache", "info", "--json", env=_env(tmp_path)).json()["entries"] == 0
    # the outputs keep their (hard-linked) files; a new run fetches again and verifies
    assert (tmp_path / "out" / "aclnet-int8" / "source" / "aclnet_des_53_int8.onnx").read_bytes() == second


def test_offline_flag_and_bad_options(tmp_path):
    result = run_zoo(
        "download", "--name", "aclnet", "--offline", "-o", str(tmp_path / "out"), env=_env(tmp_path)
    )
    assert result.returncode == 1
    assert "--offline forbids downloading" in result.stderr and "storage.openvinotoolkit.org" in result.stderr
    result = run_zoo("download", "--name", "aclnet", "--progress", "xml", env=_env(tmp_path))
    assert result.returncode == 2 and "--progress" in result.stderr
    result = run_zoo("download", "--name", "aclnet*", "--weights", str(tmp_path), env=_env(tmp_path))
    assert result.returncode == 2 and "exactly one model" in result.stderr


def test_reference_weights_and_served_catalog(tmp_path, http_server):
    """The converter writes seeded weights; served from a local server they download like real ones."""
    name = "audioset-attention-single"
    manifest = load_manifest(ROOT / "manifests" / f"{name}.yaml")
    made = obtain(manifest, tmp_path / "ref", reference_weights=True, seed=3, cache_dir=tmp_path / "cache")
    assert made.reference_weights is True and made.seed == 3 and set(made.files) == {"weights"}
    record = json.loads((made.directory / "SOURCES.json").read_text())
    assert record["reference_weights"] is True and record["seed"] == 3
    again = read_source_set(manifest, tmp_path / "ref")
    assert again is not None and again.reference_weights and again.files == made.files

    catalog = served_catalog(tmp_path, [name], http_server, seed=0)
    result = run_zoo(
        "download",
        "--name",
        name,
        "--manifests",
        str(catalog),
        "-o",
        str(tmp_path / "out"),
        env=_env(tmp_path),
    )
    assert result.returncode == 0, result.stderr
    record = json.loads((tmp_path / "out" / name / "source" / "SOURCES.json").read_text())
    assert record["reference_weights"] is False
    ((file_name, entry),) = record["files"].items()
    served = next(http_server.root.rglob(file_name))
    assert entry["sha256"] == hashlib.sha256(served.read_bytes()).hexdigest()
    assert http_server.requests(served.relative_to(http_server.root).as_posix()) == 1


def test_real_wheel_from_the_package_index(tmp_path):
    """silero-vad's weights come out of its wheel (pip download through the user's pip config)."""
    args = ("download", "--name", "silero-vad", "-o", str(tmp_path / "out"))
    result = run_zoo(*args, env=_env(tmp_path))
    assert result.returncode == 0, result.stderr
    path = tmp_path / "out" / "silero-vad" / "source" / "silero_vad.jit"
    assert hashlib.sha256(path.read_bytes()).hexdigest() == (
        "e1122837f4154c511485fe0b9c64455f7b929c96fbb8d79fbdb336383ebd3720"
    )
    wheel = (
        tmp_path
        / "cache"
        / "objects"
        / "sha256"
        / "7b"
        / ("7b7f5436cfcb02fae583a05b512ea96467fd449fe54cb49a5e4f06c51a1e43b8")
    )
    assert wheel.is_file()  # the checked wheel is cached too
    path.unlink()
    offline = run_zoo(*args, "--offline", env=_env(tmp_path))
    assert offline.returncode == 0, offline.stderr
    assert path.is_file()


def test_proxy_from_the_environment(tmp_path, http_server):
    """HTTP_PROXY is honoured: the request for an unreachable host goes through the (local) proxy."""
    data = os.urandom(100_000)
    http_server.add("weights/model.bin", data)  # the proxy answers absolute-URI requests by path
    url = "http://models.example.invalid/weights/model.bin"
    catalog = catalog_with_files(tmp_path, "aclnet", [file_entry(FILE, data, url)])
    env = _env(
        tmp_path, HTTP_PROXY=http_server.base_url, http_proxy=http_server.base_url, NO_PROXY="", no_proxy=""
    )
    result = run_zoo(
        "download", "--name", "aclnet", "--manifests", str(catalog), "-o", str(tmp_path / "out"), env=env
    )
    assert result.returncode == 0, result.stderr
    assert http_server.requests("weights/model.bin") == 1
    assert (tmp_path / "out" / "aclnet" / "source" / FILE).read_bytes() == data
