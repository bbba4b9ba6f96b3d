"""`zoo list` and `zoo info` as a user runs them: output, errors, exit codes, start-up imports."""

from __future__ import annotations

import subprocess
import sys

import yaml

from .conftest import MANIFESTS, run_zoo

HEAVY = ("torch", "tensorflow", "openvino", "onnxruntime", "nncf", "onnx", "keras", "ray")


def test_list_json_has_all_entries():
    result = run_zoo("list", "--json")
    assert result.returncode == 0, result.stderr
    rows = result.json()
    assert len(rows) == 16
    birdnet = next(r for r in rows if r["name"] == "birdnet-v2.4")
    assert birdnet["commercial_use"] is False and birdnet["classes"] == 6522
    musicnn = [r for r in rows if r["name"].startswith("musicnn-")]
    assert len(musicnn) == 4
    assert {r["framework"] for r in musicnn} == {"tf1-checkpoint"}
    assert {r["license"] for r in musicnn} == {"ISC"} and {r["classes"] for r in musicnn} == {50}


def test_list_table_and_tag_filter():
    result = run_zoo("list", "--tag", "offline")
    assert result.returncode == 0
    assert "silero-vad" in result.stdout and "birdnet-v2.4" in result.stdout
    assert "musicnn-vgg-msd" in result.stdout
    assert "aclnet" not in result.stdout


def test_info_json_shows_checksum():
    result = run_zoo("info", "aclnet", "--json")
    assert result.returncode == 0, result.stderr
    info = result.json()
    assert info["files"][0]["sha384"].startswith("966d8b3e0eb46d7946b7b52baae2e38795a8b892")
    assert info["labels"]["count"] == 53
    assert info["precisions"] == ["FP32", "FP16", "INT8"]
    assert info["audio"]["normalize"] == "zscore"


def test_info_table_shows_licence_warning():
    result = run_zoo("info", "--name", "birdnet-*")
    assert result.returncode == 0, result.stderr
    assert "NON-COMMERCIAL" in result.stdout


def test_unknown_name_exits_2_without_traceback():
    result = run_zoo("info", "nope")
    assert result.returncode == 2
    assert "no catalog entry 'nope'" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    assert len(result.stderr.strip().splitlines()) == 1


def test_misspelled_key_exits_2_naming_file_and_field(catalog_copy):
    path = catalog_copy / "aclnet.yaml"
    data = yaml.safe_load(path.read_text())
    data["files"][0]["sha348"] = data["files"][0].pop("sha384")
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    result = run_zoo("info", "aclnet", "--manifests", str(catalog_copy))
    assert result.returncode == 2
    assert str(path) in result.stderr and "files[0].sha348" in result.stderr
    assert "Traceback" not in result.stderr
    debug = run_zoo("--debug", "info", "aclnet", "--manifests", str(catalog_copy))
    assert debug.returncode == 2 and "Traceback" in debug.stderr


def test_manifests_env_variable(catalog_copy):
    (catalog_copy / "yamnet.yaml").unlink()
    result = run_zoo("list", "--json", env={"ZOO_MANIFESTS": str(catalog_copy)})
    assert result.returncode == 0
    assert "yamnet" not in [r["name"] for r in result.json()]


def test_list_file_selection(tmp_path):
    listing = tmp_path / "pick.txt"
    listing.write_text("aclnet*\n")
    result = run_zoo("list", "--json", "--list", str(listing))
    assert [r["name"] for r in result.json()] == ["aclnet", "aclnet-int8"]


def test_startup_imports_no_framework():
    code = (
        "import sys, zoo.cli\n"
        "from zoo.catalog import Catalog\n"
        "from zoo.describe import details\n"
        "[details(m) for m in Catalog().all()]\n"
        f"print(','.join(m for m in {HEAVY!r} if m in sys.modules))"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert proc.stdout.strip() == ""


def test_help_imports_no_framework():
    code = (
        "import sys, runpy\nsys.argv = ['zoo', '--help']\n"
        "try:\n    runpy.run_module('zoo.cli', run_name='__main__')\nexcept SystemExit:\n    pass\n"
        f"sys.stderr.write(','.join(m for m in {HEAVY!r} if m in sys.modules))"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.stderr.strip() == ""
    assert "Usage" in proc.stdout


def test_manifests_folder_exists():
    assert (MANIFESTS / "labels").is_dir()
