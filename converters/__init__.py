"""Source-framework converters: one module per framework, each a zoo.plugins.Converter subclass.

zoo finds them by iterating this package (zoo.plugins.converter_for), never by name. Shared
helpers used by more than one converter live here. Frameworks are imported inside functions,
never at module level, so discovering the converters stays cheap.
"""

from __future__ import annotations


def quiet_tensorflow() -> None:
    """Quieten TensorFlow and tf2onnx logging to errors; call before the first TensorFlow import.

    TensorFlow 2.21 still prints a few native notes (oneDNN, CUDA probe) before its logging starts."""
    import logging
    import os

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    logging.getLogger("tensorflow").setLevel(logging.ERROR)
    logging.getLogger("tf2onnx").setLevel(logging.ERROR)
