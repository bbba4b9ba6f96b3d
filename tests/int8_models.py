"""Converted, quantized and verified models shared by the quantize, evaluate and bench tests.

Built once per test session (the `int8` session fixture; the functions below are the same
builds for helpers that are not tests): silero-vad from its real weights (the wheel on the
package index), AclNet from seeded reference weights. Both are converted to FP32 IR only (FP16 is not what these
tests are about) and quantized with the catalog's settings (AclNet on a smaller calibration
subset, to keep the tests quick). The three test files share the xdist group "int8", so under
`pytest -n 2 --dist loadgroup` one worker builds them once.
"""

from __future__ import annotations

import atexit
import json
import shutil
import tempfile
from pathlib import Path
from types import SimpleNamespace

import pytest

from tests.support.cli import run_zoo

GROUP = "int8"
REFERENCE_WEIGHTS = {"silero-vad": False, "aclnet": True}
QUANTIZE_ARGS = {"silero-vad": (), "aclnet": ("--subset-size", "64")}
_scratch: Path | None = None
_done: set[str] = set()


@pytest.fixture(scope="session")
def int8(tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    """The shared builds, in the session's temporary folder; a test using it is an e2e test."""
    global _scratch
    if _scratch is None:
        _scratch = tmp_path_factory.mktemp("int8-models")
    return SimpleNamespace(
        converted=converted, quantized=quantized, verified=verified, env=env, zoo_ok=zoo_ok, scratch=_scratch
    )


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
    assert result.returncode == 0, (
        f"zoo {' '.join(args)} failed ({result.returncode}):\n{result.stderr[-3000:]}"
    )
    return result


def _reference(name: str) -> list[str]:
    return ["--reference-weights"] if REFERENCE_WEIGHTS[name] else []


def converted(name: str) -> Path:
    """Output folder holding <name> converted to ONNX and FP32 IR.

    silero-vad goes the way of a fresh clone: `zoo quantize` on an empty output folder converts
    first (all the manifest's precisions). AclNet is converted explicitly, to FP32 only.
    """
    out = scratch() / f"out-{name}"
    if name == "silero-vad":
        return quantized(name)[0]
    if f"convert:{name}" not in _done:
        zoo_ok("convert", "--name", name, "-o", str(out), "--precisions", "FP32", *_reference(name))
        _done.add(f"convert:{name}")
    return out


def quantized(name: str) -> tuple[Path, dict]:
    """(output folder, `zoo quantize --json` result) for <name>."""
    out = scratch() / f"out-{name}" if name == "silero-vad" else converted(name)
    saved = out / f"quantize-{name}.json"
    if f"quantize:{name}" not in _done:
        result = zoo_ok(
            "quantize", "--name", name, "-o", str(out), "--json", *QUANTIZE_ARGS[name], *_reference(name)
        )
        out.mkdir(parents=True, exist_ok=True)
        saved.write_text(result.stdout)
        _done.add(f"quantize:{name}")
    return out, json.loads(saved.read_text())[0]


def verified(name: str) -> dict:
    """`zoo verify --json` report of the quantized <name>, with its exit code and stderr (run once)."""
    out, _ = quantized(name)
    saved = out / f"verify-{name}.json"
    if f"verify:{name}" not in _done:
        result = run_zoo("verify", "--name", name, "-o", str(out), "--json", *_reference(name), env=env())
        assert result.stdout.strip(), (
            f"zoo verify printed no report ({result.returncode}):\n{result.stderr[-3000:]}"
        )
        saved.write_text(
            json.dumps(
                {
                    "report": json.loads(result.stdout),
                    "returncode": result.returncode,
                    "stderr": result.stderr,
                }
            )
        )
        _done.add(f"verify:{name}")
    data = json.loads(saved.read_text())
    return {**data["report"], "_returncode": data["returncode"], "_stderr": data["stderr"]}
