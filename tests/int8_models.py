"""Converted models shared by the quantize, evaluate and bench tests, built once per test process.

silero-vad is made from its real weights (the wheel on the package index); AclNet from seeded
reference weights. Both are converted to FP32 IR only (FP16 is not what these tests are about)
and quantized with the catalog's settings. The three test files share the xdist group
"int8", so under `pytest -n 2 --dist loadgroup` one worker builds them once.
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
from pathlib import Path

from tests.conftest import run_zoo

GROUP = "int8"
_scratch: Path | None = None
_built: dict[str, Path] = {}


def scratch() -> Path:
    global _scratch
    if _scratch is None:
        _scratch = Path(tempfile.mkdtemp(prefix="zoo-int8-tests-"))
        atexit.register(shutil.rmtree, _scratch, True)
    return _scratch


def env() -> dict[str, str]:
    """A private download cache, so the tests never touch the user's."""
    return {"ZOO_CACHE": str(scratch() / "cache")}


def zoo_ok(*args: str):
    result = run_zoo(*args, env=env())
    assert result.returncode == 0, f"zoo {' '.join(args)} failed ({result.returncode}):\n{result.stderr[-3000:]}"
    return result


def converted(name: str, reference_weights: bool = False) -> Path:
    """Output folder holding <name> converted to ONNX and FP32 IR."""
    key = f"convert:{name}"
    if key not in _built:
        out = scratch() / f"out-{name}"
        args = ["convert", "--name", name, "-o", str(out), "--precisions", "FP32"]
        zoo_ok(*args, *(["--reference-weights"] if reference_weights else []))
        _built[key] = out
    return _built[key]


def quantized(name: str, reference_weights: bool = False, *extra: str) -> tuple[Path, dict]:
    """(output folder, `zoo quantize --json` result) for <name> with the catalog's settings."""
    import json

    key = f"quantize:{name}"
    out = converted(name, reference_weights)
    if key not in _built:
        result = zoo_ok("quantize", "--name", name, "-o", str(out), "--json", *extra)
        (out / f"quantize-{name}.json").write_text(result.stdout)
        _built[key] = out
    return out, json.loads((out / f"quantize-{name}.json").read_text())[0]
