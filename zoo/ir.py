"""ONNX -> OpenVINO IR, FP32 and FP16, with the manifest's names, shapes, labels and preprocessing.

The core back end every converter's ONNX export goes through. `check_interface` checks that an
ONNX file's inputs and outputs are the manifest's; `onnx_to_ir` reads the ONNX export with the manifest's input shapes fixed (static
shapes convert and run best on the CPU plugin) and checks the tensor names;
`annotate` writes labels and host-side preprocessing into the IR's runtime info;
`save_ir` writes one precision atomically. FP16 compresses weights to half
precision except on the ops the manifest's `convert.openvino.fp16_keep_fp32`
names (fnmatch patterns over op names and op types): those, and the constants
feeding them, are marked with OpenVINO's `precise` runtime attribute, which the
FP16 compression and the plugins' low-precision passes respect.
"""

from __future__ import annotations

import fnmatch
import json
import os
import tempfile
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import TYPE_CHECKING, Any

from zoo.atomic import atomic_dir
from zoo.errors import ZooError
from zoo.vocab import IR_PRECISIONS as PRECISIONS

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


def _partial_shape(shape: list[int | str]) -> Any:
    import openvino as ov

    return ov.PartialShape([d if isinstance(d, int) else -1 for d in shape])


def onnx_to_ir(onnx_path: str | Path, manifest: Manifest) -> Any:
    """Read an ONNX file into an ov.Model with the manifest's input shapes and tensor names."""
    import openvino as ov

    onnx_path = Path(onnx_path)
    inputs = [(spec.name, _partial_shape(spec.shape)) for spec in manifest.inputs]
    try:
        model = ov.convert_model(str(onnx_path), input=inputs)
    except Exception as exc:  # the frontend raises generic errors with its own text
        raise ZooError(f"{manifest.name}: OpenVINO cannot convert {onnx_path.name}: {exc}") from exc
    check_names(model, manifest, origin=str(onnx_path))
    return model


def check_names(model: Any, manifest: Manifest, origin: str) -> None:
    """The model's inputs and outputs must carry the manifest's tensor names."""
    have_in = [sorted(p.get_names()) for p in model.inputs]
    have_out = [sorted(p.get_names()) for p in model.outputs]
    for direction, specs, have in (
        ("input", manifest.inputs, have_in),
        ("output", manifest.outputs, have_out),
    ):
        for spec in specs:
            if not any(spec.name in names for names in have):
                raise ZooError(
                    f"{manifest.name}: {origin} has no {direction} named {spec.name!r} "
                    f"(manifest {direction}s[].name); it has {[n for names in have for n in names]}."
                )


def annotate(model: Any, manifest: Manifest, labels: list[str] | None = None) -> None:
    """Write what a consumer needs into the IR's runtime info.

    `model_info/labels` follows Open Model Zoo's convention (space-separated, spaces in names as
    underscores); `zoo/*` holds exact JSON: labels, host preprocessing, tensors and provenance.
    """
    audio = manifest.audio.model_dump(mode="json", exclude_none=True)
    model.set_rt_info(manifest.name, ["zoo", "model"])
    model.set_rt_info(manifest.version, ["zoo", "version"])
    model.set_rt_info(manifest.digest, ["zoo", "manifest_sha256"])
    model.set_rt_info(manifest.task, ["zoo", "task"])
    model.set_rt_info(manifest.license.name, ["zoo", "license"])
    model.set_rt_info(json.dumps(audio, sort_keys=True), ["zoo", "preprocessing"])
    model.set_rt_info(
        json.dumps([t.model_dump(mode="json", exclude_none=True) for t in manifest.inputs]), ["zoo", "inputs"]
    )
    model.set_rt_info(
        json.dumps([t.model_dump(mode="json", exclude_none=True) for t in manifest.outputs]),
        ["zoo", "outputs"],
    )
    model.set_rt_info(manifest.main_output.name, ["zoo", "primary_output"])
    if labels:
        model.set_rt_info(json.dumps(labels, ensure_ascii=False), ["zoo", "labels"])
        model.set_rt_info(" ".join(label.replace(" ", "_") for label in labels), ["model_info", "labels"])
    task_types = {"audio-classification": "Classification", "audio-tagging": "Classification"}
    if manifest.task in task_types:
        model.set_rt_info(task_types[manifest.task], ["model_info", "model_type"])
    if manifest.audio.normalize == "zscore":
        model.set_rt_info("zscore", ["model_info", "normalize"])


def keep_fp32_matches(model: Any, patterns: list[str]) -> list[str]:
    """Friendly names of the ops whose name or type matches one of *patterns*."""
    if not patterns:
        return []
    found = []
    for op in model.get_ordered_ops():
        name, kind = op.get_friendly_name(), op.get_type_name()
        if kind in ("Parameter", "Result", "Constant"):
            continue
        if any(fnmatch.fnmatchcase(name, p) or fnmatch.fnmatchcase(kind, p) for p in patterns):
            found.append(name)
    return found


def _mark_precise(xml_path: Path, names: set[str]) -> int:
    """Add the `precise` runtime attribute to the named layers and the Const layers feeding them.

    The Python API cannot set this attribute, but the IR reader turns the XML attribute into the
    real one, so the serialized FP32 IR is annotated and read back.
    """
    tree = ET.parse(xml_path)
    root = tree.getroot()
    layers = {layer.get("id"): layer for layer in root.iter("layer")}
    marked_ids = {lid for lid, layer in layers.items() if layer.get("name") in names}
    for edge in root.iter("edge"):
        if edge.get("to-layer") in marked_ids:
            source = layers.get(edge.get("from-layer"))
            if source is not None and source.get("type") == "Const":
                marked_ids.add(edge.get("from-layer"))
    for lid in marked_ids:
        layer = layers[lid]
        rt_info = layer.find("rt_info")
        if rt_info is None:
            rt_info = ET.Element("rt_info")
            layer.insert(0, rt_info)
        if not any(a.get("name") == "precise" for a in rt_info.iter("attribute")):
            ET.SubElement(rt_info, "attribute", {"name": "precise", "version": "0"})
    tree.write(xml_path, encoding="utf-8", xml_declaration=True)
    return len(marked_ids)


def save_ir(
    model: Any, xml_path: str | Path, precision: str, manifest: Manifest, labels: list[str] | None = None
) -> dict[str, list[str]]:
    """Write `model` as an IR of *precision* at xml_path (and .bin beside it), atomically.

    The whole precision folder is built under a temporary name and swapped into place, so an
    interrupted run never leaves an .xml that looks finished next to a stale .bin.
    Returns facts about what was written (ops kept in FP32).
    """
    import openvino as ov

    if precision not in PRECISIONS:
        raise ZooError(f"{manifest.name}: save_ir makes {', '.join(PRECISIONS)} IRs, not {precision!r}.")
    xml_path = Path(xml_path)
    if labels is None:
        try:
            labels = manifest.read_labels()
        except ZooError:
            labels = None
    annotate(model, manifest, labels)
    kept: list[str] = []
    with atomic_dir(xml_path.parent) as folder:
        target = folder / xml_path.name
        if precision == "FP32":
            ov.save_model(model, str(target), compress_to_fp16=False)
        else:
            kept = keep_fp32_matches(model, list(manifest.convert.openvino.fp16_keep_fp32))
            if kept:
                with tempfile.TemporaryDirectory(dir=folder) as scratch:
                    plain = Path(scratch) / "plain.xml"
                    ov.save_model(model, str(plain), compress_to_fp16=False)
                    _mark_precise(plain, set(kept))
                    marked = ov.Core().read_model(str(plain))
                    ov.save_model(marked, str(target), compress_to_fp16=True)
            else:
                ov.save_model(model, str(target), compress_to_fp16=True)
        for written in (target, target.with_suffix(".bin")):
            with open(written, "rb") as handle:
                os.fsync(handle.fileno())
    return {"fp16_keep_fp32": kept}
