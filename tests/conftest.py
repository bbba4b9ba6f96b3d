"""Shared test helpers: run the real `zoo` command in a subprocess, copy the catalog."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

# fixtures http_server / shared_http_server for every test file
pytest_plugins = ["tests.support.httpserver"]

ROOT = Path(__file__).resolve().parent.parent
MANIFESTS = ROOT / "manifests"


@dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str

    def json(self):
        return json.loads(self.stdout)


def run_zoo(*args: str, env: dict | None = None, cwd: Path | None = None, timeout: float = 1800) -> Result:
    """Run `python -m zoo.cli ARGS` as a user would, in a fresh process."""
    full_env = dict(os.environ)
    full_env.pop("ZOO_MANIFESTS", None)
    full_env.update(env or {})
    proc = subprocess.run(
        [sys.executable, "-m", "zoo.cli", *args],
        capture_output=True,
        text=True,
        env=full_env,
        cwd=cwd,
        timeout=timeout,
    )
    return Result(proc.returncode, proc.stdout, proc.stderr)


@pytest.fixture
def zoo():
    return run_zoo


@pytest.fixture
def catalog_copy(tmp_path: Path) -> Path:
    """A writable copy of the catalog (manifests and labels)."""
    target = tmp_path / "manifests"
    shutil.copytree(MANIFESTS, target)
    return target
