"""Source-framework converters: one module per framework, each a zoo.plugins.Converter subclass.

zoo finds them by iterating this package (zoo.plugins.converter_for), never by name. Shared
helpers used by more than one converter live here. Frameworks are imported inside functions,
never at module level, so discovering the converters stays cheap.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

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


def name_openvino_ports(
    model: Any, inputs: Sequence[str], outputs: Sequence[str], origin: str, *, inputs_in_order: bool = False
) -> None:
    """Give each port of an OpenVINO model exactly its expected name and no other.

    Front ends add aliases the manifest does not know (TensorFlow's 'x:0', graph-internal tensor
    names), and zoo reads ports by the manifest's names. A port matches the name it carries ('n'
    or 'n:0'); *inputs_in_order* takes the inputs by position instead, for front ends that name
    them after the traced function's arguments.
    """
    from zoo.errors import ZooError

    for direction, ports, names in (("input", model.inputs, inputs), ("output", model.outputs, outputs)):
        if direction == "input" and inputs_in_order:
            for port, name in zip(ports, names, strict=True):
                port.get_tensor().set_names({name})
            continue
        for port in ports:
            carried = port.get_names()
            match = [n for n in names if n in carried or f"{n}:0" in carried]
            if len(match) != 1:
                raise ZooError(
                    f"{origin}: cannot tell which {direction} the OpenVINO port {sorted(carried)} is "
                    f"(expected one of {list(names)})."
                )
            port.get_tensor().set_names({match[0]})
