"""Source-framework adapters, found by the manifest's `framework` value.

Every adapter module has the same small interface:

- ``load(files, manifest) -> SourceModel``: the model running in its ORIGINAL framework.
  ``files`` maps manifest file names (or "weights" for a user's --weights file) to local paths.
- ``export_onnx(source_model, path, manifest) -> None``: one self-contained ``.onnx`` file whose
  input and output names and shapes are the manifest's.
- ``write_reference_weights(manifest, directory, seed) -> dict[str, Path]``: seeded weights in the
  upstream file format and layout (same file type, tensor names and shapes), keyed like ``files``.
- optionally ``to_openvino(source_model, files, manifest) -> openvino.Model``: when OpenVINO should
  read the source format directly instead of the ONNX export.

Frameworks are imported inside these functions, never at module level.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from types import ModuleType
from typing import Protocol

import numpy as np

#: manifest `framework` value -> adapter module under converters/
ADAPTERS = {
    "onnx": "converters.onnx",
    "pytorch": "converters.pytorch",
    "torchscript": "converters.pytorch",
    "lasagne": "converters.lasagne",
    "keras": "converters.keras",
    "tflite": "converters.tflite",
}


class SourceModel(Protocol):
    """A model in its original framework, run on named numpy inputs."""

    input_names: list[str]
    output_names: list[str]

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]: ...


def weights_path(files: dict[str, Path], manifest, what: str = "weights") -> Path:
    """The file a converter loads: a user's --weights / reference file ("weights"), else the manifest's."""
    from zoo.errors import UsageError

    if "weights" in files:
        return Path(files["weights"])
    for entry in manifest.files:
        if entry.role == "weights" and entry.name in files:
            return Path(files[entry.name])
    hint = (
        f"pass --weights PATH ({manifest.weights.format})"
        if not manifest.weights.published
        else "run `zoo download` or pass --weights PATH"
    )
    raise UsageError(f"{manifest.name}: no {what} among the sources ({', '.join(files) or 'none'}); {hint}.")


def quiet_tensorflow() -> None:
    """Quieten TensorFlow and tf2onnx logging to errors; call before the first TensorFlow import.

    TensorFlow 2.21 still prints a few native notes (oneDNN, CUDA probe) before its logging starts."""
    import logging
    import os

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    logging.getLogger("tensorflow").setLevel(logging.ERROR)
    logging.getLogger("tf2onnx").setLevel(logging.ERROR)


def get_converter(framework: str) -> ModuleType:
    """The adapter module for a manifest's framework."""
    from zoo.errors import UsageError

    try:
        module_name = ADAPTERS[framework]
    except KeyError:
        raise UsageError(
            f"framework {framework!r} has no converter (known: {', '.join(ADAPTERS)})."
        ) from None
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name == module_name:
            raise UsageError(
                f"the {framework} converter ({module_name}) is not available in this build."
            ) from exc
        raise
