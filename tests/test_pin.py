"""`zoo pin`: trust on first use, written back into the manifest without disturbing anything else."""

from __future__ import annotations

import difflib
import hashlib
import os
import shutil
from pathlib import Path

import pytest

from tests.conftest import MANIFESTS, run_zoo
from zoo.errors import ManifestError
from zoo.manifest import load_manifest
from zoo.pin import apply_pins

NAME = "kahl-aed"
FILE = "AED_Example_Run_model.pkl"


def _unpinned_catalog(tmp_path: Path, url: str) -> Path:
    """The real kahl-aed manifest (unpinned, with its comments), its URL pointed at the test server."""
    catalog = tmp_path / "catalog"
    shutil.copytree(MANIFESTS, catalog)
    path = catalog / f"{NAME}.yaml"
    text = path.read_text(encoding="utf-8")
    upstream = "https://box.tu-chemnitz.de/index.php/s/8vkQqXbUjVWlt5m/download"
    assert upstream in text and "unpinned: true" in text
    path.write_text(text.replace(upstream, url) + "# a trailing comment stays\n", encoding="utf-8")
    return catalog


def test_pin_writes_checksum_and_keeps_the_rest(tmp_path, http_server):
    data = os.urandom(300_000)
    relpath = f"{tmp_path.name}/aed.pkl"
    url = http_server.add(relpath, data)
    catalog = _unpinned_catalog(tmp_path, url)
    path = catalog / f"{NAME}.yaml"
    before = path.read_text(encoding="utf-8")
    env = {"ZOO_CACHE": str(tmp_path / "cache")}

    refused = run_zoo(
        "download", "--name", NAME, "--manifests", str(catalog), "-o", str(tmp_path / "out"), env=env
    )
    assert refused.returncode == 2 and "zoo pin" in refused.stderr

    result = run_zoo("pin", "--name", NAME, "--manifests", str(catalog), env=env)
    assert result.returncode == 0, result.stderr
    digest = hashlib.sha256(data).hexdigest()
    assert f"pinned: sha256 {digest}" in result.stdout
    after = path.read_text(encoding="utf-8")
    changed = [
        line
        for line in difflib.unified_diff(before.splitlines(), after.splitlines(), lineterm="", n=0)
        if line[:1] in "+-" and not line.startswith(("+++", "---"))
    ]
    assert sorted(changed) == sorted(
        ["-    unpinned: true", f"+    size: {len(data)}", f"+    sha256: {digest}"]
    )
    assert after.startswith("# Kahl et al.") and after.endswith("# a trailing comment stays\n")
    manifest = load_manifest(path)
    assert manifest.files[0].sha256 == digest and manifest.files[0].size == len(data)

    # now a plain download works and costs no transfer: pin put the file in the cache
    result = run_zoo(
        "download", "--name", NAME, "--manifests", str(catalog), "-o", str(tmp_path / "out"), env=env
    )
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "out" / NAME / "source" / FILE).read_bytes() == data
    assert http_server.requests(relpath) == 1

    again = run_zoo("pin", "--name", NAME, "--manifests", str(catalog), env=env)
    assert again.returncode == 0 and "already pinned" in again.stdout
    assert path.read_text(encoding="utf-8") == after


def test_pin_failure_leaves_the_manifest_alone(tmp_path, http_server):
    url = http_server.url(f"{tmp_path.name}/missing.pkl")
    catalog = _unpinned_catalog(tmp_path, url)
    before = (catalog / f"{NAME}.yaml").read_bytes()
    result = run_zoo(
        "pin", "--name", NAME, "--manifests", str(catalog), env={"ZOO_CACHE": str(tmp_path / "cache")}
    )
    assert result.returncode == 1
    assert "HTTP 404" in result.stderr and url in result.stderr and NAME in result.stderr
    assert (catalog / f"{NAME}.yaml").read_bytes() == before


def test_apply_pins_flow_style_and_size_conflict():
    flow = "name: x\nfiles:\n  - {name: a.bin, unpinned: true, sources: [{url: 'http://h/a'}]}  # keep\n"
    out = apply_pins(flow, {"a.bin": ("ab" * 32, 5)}, "x.yaml")
    assert "unpinned" not in out and "ab" * 32 in out and "size: 5" in out
    block = (
        "files:\n  - name: a.bin\n    size: 7\n    unpinned: true\n    sources:\n      - url: http://h/a\n"
    )
    with pytest.raises(ManifestError, match="size says 7"):
        apply_pins(block, {"a.bin": ("ab" * 32, 5)}, "x.yaml")
