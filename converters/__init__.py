"""Source-framework converters: one module per framework, each a zoo.plugins.Converter subclass.

zoo finds them by iterating this package (zoo.plugins.converter_for), never by name. Shared
helpers used by more than one converter live here. Frameworks are imported inside functions,
never at module level, so discovering the converters stays cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from zoo.manifest import Manifest


def quiet_tensorflow() -> None:
    """Quieten TensorFlow and tf2onnx logging to errors; call before the first TensorFlow import.

    TensorFlow 2.21 still prints a few native notes (oneDNN, CUDA probe) before its logging starts."""
    import logging
    import os

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    logging.getLogger("tensorflow").setLevel(logging.ERROR)
    logging.getLogger("tf2onnx").setLevel(logging.ERROR)


#: tf2onnx 1.17 emits opsets up to this one
MAX_TF2ONNX_OPSET = 18


def tf2onnx_opset(manifest: Manifest) -> int:
    """The manifest's ONNX opset, refused (exit 2 naming the field) when tf2onnx cannot emit it."""
    from zoo.errors import ManifestError

    opset = manifest.convert.onnx.opset
    if opset > MAX_TF2ONNX_OPSET:
        raise ManifestError(
            f"{manifest.path}: field convert.onnx.opset: tf2onnx emits opsets up to {MAX_TF2ONNX_OPSET}, "
            f"got {opset}."
        )
    return opset
