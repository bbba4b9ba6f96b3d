"""Executors, shards and merged reports: `--shard I/N`, `zoo report merge`, `--executor ray`.

The shard and merge tests run the local executor on tiny ONNX entries (seconds). The Ray tests start
real Ray instances (a local one, and a two-node cluster with `ray start`), so they share one xdist
group and are marked slow; they use two cheap catalog entries (silero-vad and
audioset-attention-single, from reference weights) as the whole catalog (`--all` over a catalog
folder holding just those two), since the full catalog takes minutes to convert.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import MANIFESTS, run_in_subprocess, run_zoo
from tests.tinymodel import make_tiny_onnx, write_tiny_entry
from zoo.shards import parse_shard, shard_of

CHEAP = ("silero-vad", "audioset-attention-single")


# -- shards ------------------------------------------------------------------------------------


def test_shards_partition_the_selection_by_name_alone():
    names = [f"model-{i}" for i in range(40)]
    parts = [[n for n in names if shard_of(n, 4) == i] for i in range(1, 5)]
    assert sorted(sum(parts, [])) == sorted(names)  # every model in exactly one shard
    assert all(parts)  # 40 names over 4 shards: none empty
    # a model's shard does not depend on what else is selected (the catalog may grow)
    assert [shard_of(n, 4) for n in names[:5]] == [shard_of(n, 4) for n in reversed(names)][::-1][:5]
    # and is the same in another process (no per-process hash seed)
    code = "from zoo.shards import shard_of; print([shard_of(f'model-{i}', 4) for i in range(40)])"
    other = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert other.stdout.strip() == str([shard_of(n, 4) for n in names])
    assert parse_shard("2/4") == (2, 4) and parse_shard(None) is None


@pytest.mark.parametrize("spec", ["0/2", "3/2", "1", "a/b", "1/0"])
def test_a_bad_shard_is_bad_input(spec, tmp_path):
    result = run_zoo("convert", "--all", "--shard", spec, "-o", str(tmp_path / "out"))
    assert result.returncode == 2, result.stderr
    assert "--shard" in result.stderr and "I/N" in result.stderr


@pytest.fixture
def tiny_catalog(tmp_path):
    """tiny-a and tiny-b in shard 1 of 2, tiny-d in shard 2; tiny-b's checksum is wrong (it fails)."""
    catalog = tmp_path / "catalog"
    for seed, name in enumerate(("tiny-a", "tiny-b", "tiny-d")):
        model = make_tiny_onnx(tmp_path / "upstream" / name / "tiny.onnx", seed=seed)
        write_tiny_entry(catalog, model, name=name)
    entry = catalog / "tiny-b.yaml"
    text = entry.read_text()
    good = next(line.split(":")[1].strip() for line in text.splitlines() if "sha256:" in line)
    entry.write_text(text.replace(good, "f" * 64))
    assert [shard_of(n, 2) for n in ("tiny-a", "tiny-b", "tiny-d")] == [1, 1, 2]
    return catalog


def _run(command: str, catalog: Path, out: Path, *args: str):
    return run_zoo(
        command, "--manifests", str(catalog), "-o", str(out), *args, "--json",
        *(("--cache-dir", str(out.parent / "cache")) if command == "convert" else ()),
    )  # fmt: skip


def _without_timings(value):
    """Rows with the measured seconds and creation times taken out (they differ between runs)."""
    if isinstance(value, dict):
        return {k: _without_timings(v) for k, v in value.items() if k not in ("seconds", "created")}
    if isinstance(value, list):
        return [_without_timings(v) for v in value]
    return value


def test_shards_merged_equal_one_run_over_all(tiny_catalog, tmp_path):
    whole = _run("convert", tiny_catalog, tmp_path / "whole", "--all")
    assert whole.returncode == 1  # tiny-b fails: exit 1
    assert not (tmp_path / "whole" / "runs").exists()  # an unsharded local run writes no run report
    shards = [_run("convert", tiny_catalog, tmp_path / f"s{i}", "--all", "--shard", f"{i}/2") for i in (1, 2)]
    assert [s.returncode for s in shards] == [1, 0]
    assert {r["model"] for r in shards[0].json()} == {"tiny-a", "tiny-b"}
    assert {r["model"] for r in shards[1].json()} == {"tiny-d"}
    assert (tmp_path / "s1" / "runs" / "convert-shard-1-of-2.json").is_file()

    merged = run_zoo("report", "merge", str(tmp_path / "s1"), str(tmp_path / "s2"), "--json")
    assert merged.returncode == whole.returncode == 1, merged.stderr
    assert _without_timings(merged.json()["results"]) == _without_timings(whole.json())
    assert "tiny-b: source:" in merged.stderr and "1 of 3 models failed" in merged.stderr
    table = run_zoo("report", "merge", str(tmp_path / "s1"), str(tmp_path / "s2"))
    assert table.returncode == 1 and "tiny-d" in table.stdout and "FP16" in table.stdout

    # verify, over the models that converted: the same reports from the shards as from one run
    pick = ("--name", "tiny-a,tiny-d")
    one = _run("verify", tiny_catalog, tmp_path / "whole", *pick)
    assert one.returncode == 0, one.stderr
    parts = [_run("verify", tiny_catalog, tmp_path / f"s{i}", *pick, "--shard", f"{i}/2") for i in (1, 2)]
    assert [p.returncode for p in parts] == [0, 0], parts[0].stderr
    merged = run_zoo(
        "report", "merge", "--command", "verify", str(tmp_path / "s1"), str(tmp_path / "s2"), "--json"
    )
    assert merged.returncode == 0, merged.stderr
    mine = {
        r["model"]: (r["passed"], {k: a["passed"] for k, a in r["artifacts"].items()}) for r in one.json()
    }
    theirs = {
        r["model"]: (r["passed"], {k: a["passed"] for k, a in r["artifacts"].items()})
        for r in merged.json()["results"]
    }
    assert mine == theirs and set(mine) == {"tiny-a", "tiny-d"}


def test_merge_refuses_conflicts_and_unreadable_reports(tiny_catalog, tmp_path):
    first = _run("convert", tiny_catalog, tmp_path / "a", "--name", "tiny-a", "--shard", "1/1")
    assert first.returncode == 0, first.stderr
    report = tmp_path / "a" / "runs" / "convert-shard-1-of-1.json"
    # the same model, the same outcome, twice (an overlapping shard): merged once
    twice = run_zoo("report", "merge", str(report), str(report), "--json")
    assert twice.returncode == 0 and len(twice.json()["results"]) == 1
    # a report that says otherwise about the same model
    data = json.loads(report.read_text())
    data["results"][0]["stages"][-1]["status"] = "failed"
    other = tmp_path / "other.json"
    other.write_text(json.dumps(data))
    conflict = run_zoo("report", "merge", str(report), str(other))
    assert conflict.returncode == 2 and "tiny-a" in conflict.stderr and "disagree" in conflict.stderr
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    unreadable = run_zoo("report", "merge", str(report), str(broken))
    assert unreadable.returncode == 2 and str(broken) in unreadable.stderr
    empty = tmp_path / "empty"
    empty.mkdir()
    nothing = run_zoo("report", "merge", str(empty))
    assert nothing.returncode == 2 and "--shard" in nothing.stderr


# -- choosing the executor ---------------------------------------------------------------------


def test_executor_ray_without_ray_installed_says_how_to_install_it(tmp_path):
    code = (
        "import sys\nsys.modules['ray'] = None  # as in an environment without the extra\n"
        "from zoo.cli import main\n"
        f"sys.argv = ['zoo', 'convert', '--name', 'silero-vad', '-o', {str(tmp_path)!r}, '--executor', 'ray']\n"
        "main()\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 2, proc.stderr
    assert "pip install '.[ray]'" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "silero-vad").exists()  # refused before any work


def test_an_unknown_executor_is_bad_input(tmp_path):
    result = run_zoo("verify", "--all", "--executor", "slurm", "-o", str(tmp_path))
    assert result.returncode == 2 and "--executor" in result.stderr and "local, ray" in result.stderr


def test_a_node_that_cannot_see_the_output_folder_is_named(tmp_path):
    from zoo.executors.ray import shared_folder_error

    run_dir = tmp_path / "out" / ".zoo-run" / "abc"
    run_dir.mkdir(parents=True)
    message = shared_folder_error(run_dir, "abc", tmp_path / "out", "10.0.0.7/1a2b3c")
    assert message is not None and str(tmp_path / "out") in message and "10.0.0.7/1a2b3c" in message
    assert "shares" in message
    (run_dir / "driver").write_text("abc")
    assert shared_folder_error(run_dir, "abc", tmp_path / "out", "n") is None
    assert "another run" in (shared_folder_error(run_dir, "xyz", tmp_path / "out", "n") or "")


# -- Ray ---------------------------------------------------------------------------------------


@pytest.fixture
def cheap_catalog(tmp_path):
    """A catalog folder holding only the two cheap entries, so `--all` means those two."""
    catalog = tmp_path / "catalog"
    (catalog / "labels").mkdir(parents=True)
    for name in CHEAP:
        shutil.copy(MANIFESTS / f"{name}.yaml", catalog / f"{name}.yaml")
    for label in (MANIFESTS / "labels").iterdir():
        shutil.copy(label, catalog / "labels" / label.name)
    return catalog


def _ray_env(tmp_path: Path) -> dict[str, str]:
    """A local instance for this run (never a cluster someone else started), with its own temp folder."""
    return {"RAY_DISABLE_USAGE_STATS": "1", "RAY_ADDRESS": ""}


def _verdicts(reports: list[dict]) -> dict:
    return {
        r["model"]: (r["passed"], sorted(r["failures"]), {k: a["passed"] for k, a in r["artifacts"].items()})
        for r in reports
    }


@pytest.mark.slow
@pytest.mark.xdist_group("ray")
def test_ray_gives_the_local_executors_results(cheap_catalog, tmp_path):
    args = ("--manifests", str(cheap_catalog), "--all", "--reference-weights", "--json")
    local, remote = tmp_path / "local", tmp_path / "ray"
    convert_local = run_zoo("convert", *args, "-o", str(local))
    assert convert_local.returncode == 0, convert_local.stderr
    convert_ray = run_in_subprocess(
        "convert", *args, "-o", str(remote), "--executor", "ray", env=_ray_env(tmp_path)
    )
    assert convert_ray.returncode == 0, convert_ray.stderr
    assert _without_timings(convert_ray.json()) == _without_timings(convert_local.json())
    assert "2/2 models done, 0 failed" in convert_ray.stderr  # the live view's last line
    assert not (remote / ".zoo-run").exists()  # the run's marks are cleared

    verify_local = run_zoo("verify", *args, "-o", str(local))
    verify_ray = run_in_subprocess(
        "verify", *args, "-o", str(remote), "--executor", "ray", env=_ray_env(tmp_path)
    )
    assert verify_local.returncode == verify_ray.returncode == 0, verify_ray.stderr
    assert _verdicts(verify_ray.json()) == _verdicts(verify_local.json())
    for mine, theirs in zip(verify_local.json(), verify_ray.json(), strict=True):
        for kind, artifact in mine["artifacts"].items():  # threads differ: the last bits may too
            other = theirs["artifacts"][kind]["metrics"]
            assert other["max_abs"] == pytest.approx(artifact["metrics"]["max_abs"], rel=0.05, abs=1e-6), kind
    run = json.loads((remote / "runs" / "verify.json").read_text())
    assert run["executor"] == "ray" and {t["model"] for t in run["tasks"]} == set(CHEAP)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _started_under(pid: str, needle: str) -> bool:
    """The process names *needle* on its command line or holds a file under it open (Ray's agents
    rename themselves, but keep their logs in the node's session folder)."""
    proc = Path("/proc") / pid
    try:
        if needle in (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace"):
            return True
        return any(os.readlink(fd).startswith(needle) for fd in (proc / "fd").iterdir())
    except OSError:
        return False


def _stop_processes_under(folder: Path) -> None:
    """SIGKILL this test's Ray nodes: the processes started under *folder*, by pid."""
    mine = [p.name for p in Path("/proc").iterdir() if p.name.isdigit() and int(p.name) != os.getpid()]
    for pid in [p for p in mine if _started_under(p, str(folder))]:
        with contextlib.suppress(OSError):
            os.kill(int(pid), signal.SIGKILL)


def _ray_start(temp: Path, env: dict[str, str], *args: str) -> None:
    ray = Path(sys.executable).with_name("ray")
    ports = [
        "--dashboard-agent-listen-port", str(_free_port()), "--dashboard-agent-grpc-port", str(_free_port()),
        "--metrics-export-port", str(_free_port()), "--runtime-env-agent-port", str(_free_port()),
    ]  # fmt: skip
    command = [str(ray), "start", *args, "--num-cpus", "1", "--temp-dir", str(temp), *ports]
    command += ["--object-store-memory", str(100 * 1024 * 1024), "--disable-usage-stats"]
    proc = subprocess.run(command, capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.fixture
def two_nodes(tmp_path):
    """A head and a worker node on this machine, one CPU each, each with its own temp folder."""
    base = Path("/tmp") / f"zoo-ray-{os.getpid()}-{tmp_path.name[-12:]}"  # short: Ray's socket paths
    head_temp, worker_temp = base / "head", base / "worker"
    # a test cluster on one host, reached by this test only: no token to share between its nodes
    env = {**os.environ, "RAY_DISABLE_USAGE_STATS": "1", "RAY_AUTH_MODE": "disabled"}
    env.pop("RAY_ADDRESS", None)
    port = _free_port()
    try:
        _ray_start(head_temp, env, "--head", "--port", str(port), "--include-dashboard", "false",
                   "--ray-client-server-port", str(_free_port()))  # fmt: skip
        _ray_start(worker_temp, env, "--address", f"127.0.0.1:{port}")
        yield f"127.0.0.1:{port}"
    finally:
        _stop_processes_under(base)
        shutil.rmtree(base, ignore_errors=True)


@pytest.mark.slow
@pytest.mark.xdist_group("ray")
def test_a_two_node_cluster_retries_a_killed_worker_and_completes(cheap_catalog, tmp_path, two_nodes):
    out = tmp_path / "out"
    command = [sys.executable, "-m", "zoo.cli", "convert", "--manifests", str(cheap_catalog), "--all",
               "--reference-weights", "-o", str(out), "--executor", "ray", "--ray-address", two_nodes, "--json"]  # fmt: skip
    env = {**os.environ, "RAY_AUTH_MODE": "disabled"}
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    # kill the worker process running audioset-attention-single's source stage once it has started
    # (the stage loads torch and makes the reference weights: seconds, so the kill lands inside it)
    victim = "audioset-attention-single"
    deadline = time.monotonic() + 180
    killed = None
    while killed is None and time.monotonic() < deadline and proc.poll() is None:
        for mark in out.glob(f".zoo-run/*/tasks/{victim}.source.1.start"):
            with contextlib.suppress(OSError, ValueError):
                killed = json.loads(mark.read_text())
                os.kill(killed["pid"], signal.SIGKILL)
        time.sleep(0.02)
    stdout, stderr = proc.communicate(timeout=300)
    assert killed is not None, stderr
    assert proc.returncode == 0, stderr

    rows = {r["model"]: r for r in json.loads(stdout)}
    source = next(s for s in rows[victim]["stages"] if s["stage"] == "source")
    assert source["status"] == "done" and "attempt 2" in source["detail"], source
    run = json.loads((out / "runs" / "convert.json").read_text())
    task = next(t for t in run["tasks"] if t["model"] == victim and t["stage"] == "source")
    assert task["attempts"] >= 2 and task["nodes"][0] == killed["node"]
    assert len({node for t in run["tasks"] for node in t["nodes"]}) == 2  # tasks ran on both nodes

    verified = run_zoo("verify", "--manifests", str(cheap_catalog), "--all", "--reference-weights",
                       "-o", str(out), "--json")  # fmt: skip
    assert verified.returncode == 0, verified.stderr
    assert all(r["passed"] for r in verified.json()) and {r["model"] for r in verified.json()} == set(CHEAP)
