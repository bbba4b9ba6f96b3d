"""Run the real `zoo` command: in this process (fast) or in a fresh one (when a test needs a process).

In-process runs call `zoo.cli.main` with sys.argv, the environment and the working folder set
for the call and restored after it, and capture stdout and stderr at the file-descriptor level
(temporary files dup2'ed over fd 1 and 2): `zoo.pipeline.stdout_to_stderr` moves fd 1 onto fd 2
while frameworks run, and native code writes to the descriptors, not to sys.stdout. The frameworks
are imported once per test process instead of once per command, which is where the time went.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, TextIO

# one in-process run at a time: argv, environment, cwd and fds 1/2 are process-wide
_LOCK = threading.Lock()


@dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str

    def json(self):
        return json.loads(self.stdout)


def _environment(env: dict | None) -> dict[str, str]:
    full = dict(os.environ)
    full.pop("ZOO_MANIFESTS", None)
    full.update(env or {})
    return full


def run_in_subprocess(
    *args: str, env: dict | None = None, cwd: Path | None = None, timeout: float = 1800
) -> Result:
    """`python -m zoo.cli ARGS` in a fresh process, as a user would run it."""
    proc = subprocess.run(
        [sys.executable, "-m", "zoo.cli", *args],
        capture_output=True,
        text=True,
        env=_environment(env),
        cwd=cwd,
        timeout=timeout,
    )
    return Result(proc.returncode, proc.stdout, proc.stderr)


@contextlib.contextmanager
def _applied(env: dict[str, str], cwd: Path | None, argv: list[str]) -> Iterator[None]:
    saved_env, saved_cwd, saved_argv = dict(os.environ), os.getcwd(), sys.argv
    os.environ.clear()
    os.environ.update(env)
    sys.argv = argv
    try:
        if cwd is not None:
            os.chdir(cwd)
        yield
    finally:
        os.chdir(saved_cwd)
        sys.argv = saved_argv
        os.environ.clear()
        os.environ.update(saved_env)


# The Python streams of in-process runs: written straight to fds 1 and 2, like a real process's,
# and never closed. Libraries keep the sys.stdout/sys.stderr they saw at import (logging handlers,
# NNCF's logger): with these they keep writing to whatever fd 1 and 2 are at the time.
_STREAMS: dict[int, TextIO] = {}


def _stream(fd: int) -> TextIO:
    if fd not in _STREAMS:
        _STREAMS[fd] = open(fd, "w", encoding="utf-8", errors="backslashreplace", closefd=False, buffering=1)  # noqa: SIM115
    return _STREAMS[fd]


@contextlib.contextmanager
def _captured_fds() -> Iterator[tuple[BinaryIO, BinaryIO]]:
    """fd 1 and 2 (and sys.stdout/sys.stderr on them) go to two temporary files."""
    out = tempfile.TemporaryFile()
    err = tempfile.TemporaryFile()
    saved_streams = (sys.stdout, sys.stderr)
    for stream in saved_streams:
        with contextlib.suppress(Exception):
            stream.flush()
    saved_fds = (os.dup(1), os.dup(2))
    os.dup2(out.fileno(), 1)
    os.dup2(err.fileno(), 2)
    sys.stdout, sys.stderr = _stream(1), _stream(2)
    try:
        yield out, err
    finally:
        for stream in (sys.stdout, sys.stderr, *_STREAMS.values()):
            with contextlib.suppress(Exception):
                stream.flush()
        sys.stdout, sys.stderr = saved_streams
        os.dup2(saved_fds[0], 1)
        os.dup2(saved_fds[1], 2)
        os.close(saved_fds[0])
        os.close(saved_fds[1])


def _read(handle: BinaryIO) -> str:
    handle.seek(0)
    text = handle.read().decode("utf-8", errors="replace")
    handle.close()
    return text


def run_in_process(
    *args: str, env: dict | None = None, cwd: Path | None = None, timeout: float = 1800
) -> Result:
    """`zoo ARGS` through `zoo.cli.main` in this process; same Result as run_in_subprocess.

    ``timeout`` is accepted for the same signature; pytest-timeout bounds an in-process run.
    """
    from zoo.cli import main

    code: int = 0
    with _LOCK, _applied(_environment(env), cwd, ["zoo", *args]), _captured_fds() as (out, err):
        try:
            main()
        except SystemExit as exc:
            if exc.code is None:
                code = 0
            elif isinstance(exc.code, int):
                code = exc.code
            else:
                sys.stderr.write(f"{exc.code}\n")
                code = 1
        except Exception:  # main() lets none through; if one does, it is a traceback and exit 1
            import traceback

            traceback.print_exc()
            code = 1
    return Result(code, _read(out), _read(err))


def run_zoo(*args: str, env: dict | None = None, cwd: Path | None = None, timeout: float = 1800) -> Result:
    """Run the `zoo` command: in-process by default; ZOO_TEST_CLI=subprocess runs every call in a fresh process."""
    if os.environ.get("ZOO_TEST_CLI") == "subprocess":
        return run_in_subprocess(*args, env=env, cwd=cwd, timeout=timeout)
    return run_in_process(*args, env=env, cwd=cwd, timeout=timeout)


__all__ = ["Result", "run_in_process", "run_in_subprocess", "run_zoo"]


def zoo_on(
    command: str,
    name: str,
    catalog: Path,
    *args: str,
    out: Path | None = None,
    cache: Path | None = None,
    env: dict | None = None,
):
    """`zoo COMMAND -n NAME --manifests CATALOG [-o OUT] [--cache-dir CACHE] ARGS`, in process."""
    where = (["-o", str(out)] if out is not None else []) + (
        ["--cache-dir", str(cache)] if cache is not None else []
    )
    return run_zoo(command, "-n", name, "--manifests", str(catalog), *where, *args, env=env)


def download_aclnet(catalog: Path, *extra: str, out: Path, cache: Path, env: dict | None = None):
    """`zoo download -n aclnet` from *catalog* with text progress and quick retries (the fault tests)."""
    return zoo_on(
        "download",
        "aclnet",
        catalog,
        "--progress",
        "text",
        *extra,
        out=out,
        cache=cache,
        env={"ZOO_RETRY_BASE": "0.01", **(env or {})},
    )
