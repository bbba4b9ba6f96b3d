"""Versions of zoo and of every tool it uses, recorded in each artifact.

Read from package metadata, so asking never imports a framework.
"""

from __future__ import annotations

import platform
import sys
from functools import lru_cache
from importlib import metadata

from zoo import __version__

#: distributions whose versions change what an artifact contains
TOOLS = (
    "numpy",
    "torch",
    "onnx",
    "onnxruntime",
    "onnxscript",
    "openvino",
    "nncf",
    "tensorflow",
    "tf-keras",
    "tf2onnx",
    "scipy",
    "model-signing",
    "oras",
)


def tool_version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


@lru_cache(maxsize=1)
def versions() -> dict[str, str]:
    """zoo, Python and every installed tool, as {name: version}."""
    found = {"zoo": __version__, "python": platform.python_version()}
    for dist in TOOLS:
        version = tool_version(dist)
        if version is not None:
            found[dist] = version
    found["platform"] = f"{sys.platform}-{platform.machine()}"
    return found


def host() -> dict[str, object]:
    """The CPU model, core count and platform: what a benchmark or a parity verdict was measured on."""
    import os
    from pathlib import Path

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "platform": f"{platform.system()}-{platform.machine()}"}
