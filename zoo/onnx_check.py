"""The interface check every ONNX file passes: the manifest's tensor names, ranks and static sizes.

Run on a published ONNX source when it is loaded and on every export before it is renamed into
place, so a file whose inputs or outputs are not what the manifest declares never looks finished.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from zoo.errors import ZooError

if TYPE_CHECKING:
    from zoo.manifest import Manifest


def check_interface(path: Path, manifest: Manifest) -> None:
    """The file's graph inputs and outputs must be the manifest's names, with compatible shapes."""
    import onnx

    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # protobuf decode errors have many types
        raise ZooError(f"{path}: not a readable ONNX model: {exc}") from exc
    initializers = {i.name for i in model.graph.initializer}
    graph_inputs = [i for i in model.graph.input if i.name not in initializers]
    for direction, specs, values in (
        ("input", manifest.inputs, graph_inputs),
        ("output", manifest.outputs, list(model.graph.output)),
    ):
        found = {v.name: v for v in values}
        for spec in specs:
            if spec.name not in found:
                raise ZooError(
                    f"{path}: the manifest's {direction} {spec.name!r} ({manifest.name}, {direction}s[].name) is not in "
                    f"the model, whose {direction}s are {sorted(found)}."
                )
            dims = found[spec.name].type.tensor_type.shape.dim
            shape = [d.dim_value if d.HasField("dim_value") else None for d in dims]
            if dims and len(shape) != len(spec.shape):
                raise ZooError(
                    f"{path}: {direction} {spec.name!r} has rank {len(shape)} {shape}, "
                    f"the manifest says {spec.shape}."
                )
            for have, want in zip(shape, spec.shape, strict=False):
                if have is not None and isinstance(want, int) and have != want:
                    raise ZooError(
                        f"{path}: {direction} {spec.name!r} has shape {shape}, the manifest says {spec.shape}."
                    )
