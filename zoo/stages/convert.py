"""The conversion stages: the ONNX export and the OpenVINO IRs (FP32, FP16).

- ``onnx``: the converter exports the source model to `<out>/<name>/onnx/<name>.onnx`, written
  under a temporary name and checked against the manifest's tensor names before it is renamed;
- ``FP32`` / ``FP16``: OpenVINO IR made from the ONNX export, or from the source model itself when
  the converter converts directly, with labels and preprocessing in its runtime info.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Any

from zoo.errors import ZooError
from zoo.stages.engine import ModelRun, Stage, code_digest, tool_versions
from zoo.stamps import digest, manifest_part, output_checksums

#: the manifest fields the ONNX export reads
ONNX_FIELDS = {"framework", "network", "inputs", "outputs", "primary_output", "weights"}
#: the manifest fields written into an IR (names, tensors, preprocessing, labels)
IR_FIELDS = {"name", "version", "task", "license", "inputs", "outputs", "primary_output", "audio", "labels"}


class OnnxStage(Stage):
    name = "onnx"
    requires = ("source",)

    def key(self, run: ModelRun) -> dict[str, Any]:
        manifest = run.manifest
        return {
            "manifest": manifest_part(manifest, ONNX_FIELDS),
            "onnx": manifest.convert.onnx.model_dump(mode="json"),
            "sources": output_checksums(run.stamp("source")),
            "converter": run.converter_code(),
            "versions": tool_versions(),
        }

    def work(self, run: ModelRun) -> tuple[list[Path], dict[str, Any]]:
        from zoo.ir import check_interface

        manifest = run.manifest
        target = run.layout.onnx
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(f".{target.stem}.{os.getpid()}.part.onnx")
        try:
            run.converter.export_onnx(run.source_model(), partial, manifest)
            if not partial.is_file():
                raise ZooError(f"{manifest.name}: the {manifest.framework} converter wrote no ONNX file.")
            check_interface(partial, manifest)
            with open(partial, "rb") as handle:
                os.fsync(handle.fileno())
            os.replace(partial, target)
        finally:
            with contextlib.suppress(FileNotFoundError):
                partial.unlink()
        return [target], {"opset": manifest.convert.onnx.opset}


class IrStage(Stage):
    """One OpenVINO IR precision (FP32 or FP16)."""

    requires = ("onnx",)

    def __init__(self, precision: str):
        self.precision = precision
        self._labels: list[str] | None = None

    @property  # type: ignore[override]
    def name(self) -> str:  # the stage is named after its precision
        return self.precision

    def key(self, run: ModelRun) -> dict[str, Any]:
        import zoo.ir as ir_backend

        manifest = run.manifest
        if run.sources is None:
            raise ZooError(f"{manifest.name}: the source stage has not run.")
        self._labels = manifest.read_labels(run.sources.directory)
        if run.converts_directly_to_ir:
            made_from: dict[str, Any] = {
                "sources": output_checksums(run.stamp("source")),
                "converter": run.converter_code(),
            }
        else:
            onnx_stamp = run.stamp("onnx")
            made_from = {
                "onnx": {k: v.model_dump() for k, v in onnx_stamp.outputs.items()} if onnx_stamp else {}
            }
        options = manifest.convert.openvino.model_dump(mode="json", exclude={"precisions"})
        if self.precision != "FP16":
            options.pop("fp16_keep_fp32", None)
        return {
            "manifest": manifest_part(manifest, IR_FIELDS),
            "openvino": options,
            "labels": digest(self._labels),
            "from": made_from,
            "converter": code_digest([ir_backend.__file__]),
            "versions": tool_versions(),
            "precision": self.precision,
        }

    def work(self, run: ModelRun) -> tuple[list[Path], dict[str, Any]]:
        from zoo.ir import onnx_to_ir, save_ir

        manifest = run.manifest
        if run.converts_directly_to_ir:
            # a fresh ov.Model for each precision: saving must not see the other precision's changes
            model = run.converter.to_openvino(
                run.source_model(), run.sources.files if run.sources else {}, manifest
            )
        else:
            model = onnx_to_ir(run.layout.onnx, manifest)
        xml = run.layout.ir_xml(self.precision)
        facts = save_ir(model, xml, self.precision, manifest, labels=self._labels)
        return [xml, xml.with_suffix(".bin")], facts
