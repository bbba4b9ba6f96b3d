"""Options are checked before any work, and the frameworks' telemetry never runs inside zoo.

`-o` naming a file, an unknown `--preset`: exit 2 at once, with no conversion started. The
telemetry check imports OpenVINO's converter and NNCF in a fresh process that imported zoo.
"""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from tests.conftest import MANIFESTS, run_zoo


@pytest.mark.parametrize("command", ["download", "convert", "quantize", "mirror"])
def test_output_folder_that_is_a_file_is_bad_input(tmp_path, command):
    occupied = tmp_path / "occupied"
    occupied.write_text("keep me\n")
    result = run_zoo(
        command,
        "-n",
        "aclnet",
        "--manifests",
        str(MANIFESTS),
        "-o",
        str(occupied),
        "--reference-weights" if command in ("download", "convert", "quantize") else "--offline",
    )
    assert result.returncode == 2, result.stderr
    assert "--output-dir" in result.stderr and "not a folder" in result.stderr
    assert "internal error" not in result.stderr and occupied.read_text() == "keep me\n"


def test_an_unknown_quantize_preset_is_refused_before_converting(tmp_path):
    started = time.monotonic()
    result = run_zoo(
        "quantize",
        "-n",
        "aclnet",
        "--manifests",
        str(MANIFESTS),
        "-o",
        str(tmp_path / "out"),
        "--reference-weights",
        "--preset",
        "fast",
    )
    assert result.returncode == 2 and "--preset" in result.stderr and "'fast'" in result.stderr, result.stderr
    assert time.monotonic() - started < 5
    assert not (tmp_path / "out").exists()


def test_framework_telemetry_is_off_in_a_zoo_process():
    code = (
        "import zoo.cli\n"
        "import openvino.tools.ovc as ovc\n"
        "from nncf.telemetry import wrapper\n"
        "print(type(ovc.telemetry).__module__)\n"
        "print(wrapper.Telemetry if hasattr(wrapper, 'Telemetry') else 'no Telemetry')\n"
        "print(type(wrapper.telemetry).__name__)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=False
    )
    assert proc.returncode == 0, proc.stderr
    ovc_module, nncf_impl, nncf_kind = proc.stdout.split("\n")[:3]
    assert ovc_module == "openvino.tools.ovc.telemetry_stub"
    assert nncf_impl == "no Telemetry" and nncf_kind == "MagicMock"
