"""Download throughput: zoo (size + sha256 verified while streaming) against curl, from a local server.

Serves a random file (200 MB by default) on 127.0.0.1 and downloads it several times with each
tool, each run into a fresh cache and output folder. Times are measured the same way for both:
curl reports its own transfer time (``-w %{time_total}``, process start excluded), and zoo's is
the wall time of ``obtain_sources`` (request, streaming, hashing, verification, the move into the
cache and the link into the output folder). The end-to-end wall time of both commands, process
start included, is printed as well. A third column runs ``curl`` and then ``sha256sum``: what a
user who verifies by hand pays.

    .venv/bin/python bench/download.py [--size-mb 200] [--runs 5] [--server sendfile|stdlib] [--rate-mb R]

``--server sendfile`` answers with sendfile(2) (like nginx); ``--server stdlib`` is Python's
http.server (64 KB writes). ``--rate-mb R`` caps the server at R MB/s, a network link instead of
loopback. The script also measures sha256 alone on this CPU: verification cannot run faster than
that, so on loopback without a cap the ratio to an unverified curl is bounded by it.
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def _stdlib_server(directory: Path) -> tuple[ThreadingHTTPServer, str]:
    class Quiet(SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(directory)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


def _catalog(work: Path, url: str, size: int, sha256: str) -> Path:
    from tests.support.catalogs import catalog_with_files

    entry = {"name": "aclnet_des_53.onnx", "size": size, "sha256": sha256, "sources": [{"url": url}]}
    return catalog_with_files(work, "aclnet", [entry])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=200)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--server", choices=("sendfile", "stdlib"), default="sendfile")
    parser.add_argument("--rate-mb", type=float, default=0, help="cap the server at this many MB/s (0: none)")
    args = parser.parse_args()
    curl = shutil.which("curl")
    if curl is None:
        sys.exit("bench/download.py needs curl (scripts/system-deps.sh installs it)")

    from zoo.manifest import load_manifest
    from zoo.source_folder import obtain_sources

    work = Path(tempfile.mkdtemp(prefix="zoo-bench-download-"))
    try:
        served = work / "served"
        served.mkdir()
        size = args.size_mb * 1_000_000
        blob = served / "big.bin"
        digest = hashlib.sha256()
        with open(blob, "wb") as handle:
            for _ in range(args.size_mb):
                block = os.urandom(1_000_000)
                digest.update(block)
                handle.write(block)
        if args.server == "sendfile" or args.rate_mb:
            from tests.support.httpserver import FileServer, Slow

            file_server = FileServer(served, use_sendfile=True)
            if args.rate_mb:
                file_server.fault("big.bin", Slow(rate=int(args.rate_mb * 1e6)), times=None)
            base, stop = file_server.base_url, file_server.close
        else:
            http, base = _stdlib_server(served)
            stop = http.shutdown
        url = f"{base}/big.bin"
        manifest = load_manifest(_catalog(work, url, size, digest.hexdigest()) / "aclnet.yaml")

        results: dict[str, list[float]] = {
            "curl": [],
            "zoo": [],
            "curl+sha256sum": [],
            "curl wall": [],
            "zoo wall": [],
            "sha256 alone": [],
        }
        for run in range(args.runs):
            data = blob.read_bytes()
            start = time.perf_counter()
            ceiling = hashlib.sha256()
            for offset in range(0, len(data), 1 << 20):
                ceiling.update(data[offset : offset + (1 << 20)])
            results["sha256 alone"].append(time.perf_counter() - start)
            del data

            target = work / f"curl-{run}.bin"
            start = time.perf_counter()
            out = subprocess.run(
                [curl, "-s", "-S", "-o", str(target), "-w", "%{time_total}", url],
                capture_output=True,
                text=True,
                check=True,
            )
            results["curl wall"].append(time.perf_counter() - start)
            results["curl"].append(float(out.stdout))
            start = time.perf_counter()
            subprocess.run(["sha256sum", str(target)], capture_output=True, check=True)
            results["curl+sha256sum"].append(float(out.stdout) + time.perf_counter() - start)
            target.unlink()

            start = time.perf_counter()
            obtain_sources(manifest, work / f"out-{run}", cache_dir=work / f"cache-{run}")
            results["zoo"].append(time.perf_counter() - start)
            shutil.rmtree(work / f"out-{run}")
            shutil.rmtree(work / f"cache-{run}")

            env = dict(os.environ, ZOO_CACHE=str(work / f"cache-wall-{run}"))
            start = time.perf_counter()
            subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "zoo.cli",
                    "download",
                    "--name",
                    "aclnet",
                    "--manifests",
                    str(work / "catalog"),
                    "-o",
                    str(work / f"wall-{run}"),
                    "--progress",
                    "text",
                ],
                capture_output=True,
                check=True,
                env=env,
                cwd=ROOT,
            )
            results["zoo wall"].append(time.perf_counter() - start)
            shutil.rmtree(work / f"wall-{run}")
            shutil.rmtree(work / f"cache-wall-{run}")
        stop()

        mb = size / 1e6
        cap = f", capped at {args.rate_mb:g} MB/s" if args.rate_mb else ""
        print(
            f"{args.size_mb} MB from a local {args.server} server{cap}, {args.runs} runs each (median, best)"
        )
        speeds = {}
        for name, times in results.items():
            speeds[name] = mb / statistics.median(times)
            print(
                f"  {name:16} {mb / statistics.median(times):8.0f} MB/s  {mb / min(times):8.0f} MB/s  "
                f"({statistics.median(times):.2f} s)"
            )
        print(f"ratio zoo / curl (transfer time):        {speeds['zoo'] / speeds['curl']:.2f}")
        print(f"ratio zoo / curl+sha256sum:              {speeds['zoo'] / speeds['curl+sha256sum']:.2f}")
        print(f"ratio zoo / curl (end to end, processes): {speeds['zoo wall'] / speeds['curl wall']:.2f}")
        print(f"zoo / sha256 alone (the hashing ceiling): {speeds['zoo'] / speeds['sha256 alone']:.2f}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
