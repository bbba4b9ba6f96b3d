"""Framework `onnx`: the published file is already the model (AclNet, AclNet-INT8).

The reference is ONNX Runtime on the source file with graph optimizations off,
so it computes what the graph says (for a QDQ model: float math between
explicit quantize/dequantize steps). The ONNX artifact is the source file
itself, copied after checking that its tensor names and shapes are the
manifest's. Reference weights come from our AclNet rebuild, exported to ONNX
with the upstream names (and quantized to QDQ with NNCF for the INT8 entry).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from zoo.atomic import copy_file
from zoo.errors import UsageError
from zoo.ir import check_interface
from zoo.plugins import Converter, ThreadsAtLoad, register_converter, weights_path

if TYPE_CHECKING:
    from zoo.manifest import Manifest


class OnnxSourceModel:
    """ONNX Runtime on the published file: the reference for framework `onnx`."""

    def __init__(self, path: Path, manifest: Manifest, threads: int | None = None):
        from zoo.runtimes import OnnxRuntimeRunner

        self.path = Path(path)
        self.manifest = manifest
        self.runner = OnnxRuntimeRunner(self.path, threads=threads, optimize=False)
        self.input_names: list[str] = self.runner.input_names
        self.output_names: list[str] = self.runner.output_names
        check_interface(self.path, manifest)

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return self.runner.run(feeds)


@register_converter
class OnnxConverter(ThreadsAtLoad, Converter[OnnxSourceModel]):
    """ONNX Runtime on the published file; the export is that file."""

    frameworks = ("onnx",)

    def load(self, files: dict[str, Path], manifest: Manifest) -> OnnxSourceModel:
        return OnnxSourceModel(weights_path(files, manifest, "ONNX weights file"), manifest, self.threads)

    def float64_model(
        self, source: OnnxSourceModel, manifest: Manifest, onnx_path: Path | None, weights: str = "float32"
    ) -> Any:
        """The published graph itself made float64 (the export is a copy of it)."""
        from zoo.numerics.float64 import OnnxFloat64

        return OnnxFloat64(source.path, weights=weights)

    def export_onnx(self, source: OnnxSourceModel, path: str | Path, manifest: Manifest) -> None:
        """The source is the model: copy it (its names were checked on load)."""
        copy_file(source.path, path)

    def write_reference_weights(
        self, manifest: Manifest, directory: str | Path, seed: int
    ) -> dict[str, Path]:
        """Seeded AclNet weights as the ONNX file upstream publishes (QDQ INT8 for entries tagged int8)."""
        if manifest.network is None or manifest.network.name != "aclnet":
            raise UsageError(
                f"{manifest.name}: reference weights for framework onnx exist for AclNet entries only "
                "(network.name: aclnet)."
            )
        from converters.networks import aclnet

        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        if "int8" in manifest.tags:
            return aclnet.write_aclnet_int8_reference(manifest, directory, seed)
        return aclnet.write_aclnet_reference(manifest, directory, seed)
