"""Framework `tf1-checkpoint`: a TF1 checkpoint (`.meta` graph, `.index`, `.data-*` shards), frozen.

The manifest lists the checkpoint's files under names of its own (musicnn's wheel names them
`.meta`, `.index`, `.data-00000-of-00001` in one folder per model, and its `checkpoint` file points
at the author's home folder, so it is not used); they are linked under one fixed prefix in a
temporary folder and restored from there. The manifest's `tf1` section names the graph tensor of
every input and output and the placeholders bound to constants (is_training: false). The frozen
graph (converters.tf1_freeze) is the source model; ONNX by tf2onnx from it, the IR by OpenVINO's
TensorFlow front end from it written as a `.pb` file (the routes measured right).
"""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from converters import tf1_freeze
from zoo.errors import ManifestError, UsageError
from zoo.plugins import Converter, ThreadsAtLoad, register_converter

if TYPE_CHECKING:
    from zoo.manifest import Manifest, Tf1Graph

#: the parts of a TF1 (V2-format) checkpoint, by file-name ending
SHARD = re.compile(r"\.data-[0-9]{5}-of-[0-9]{5}$")
PREFIX = "model"


def graph_spec(manifest: Manifest) -> Tf1Graph:
    if manifest.tf1 is None:  # the manifest validator requires it for this framework
        raise ManifestError(f"{manifest.path}: field tf1: the tf1-checkpoint converter needs tf1.tensors.")
    return manifest.tf1


def checkpoint_parts(files: dict[str, Path], manifest: Manifest) -> dict[str, Path]:
    """{'.meta': path, '.index': path, '.data-00000-of-00001': path, ...} from the manifest's files."""
    if "weights" in files:
        raise UsageError(
            f"{manifest.name}: a TF1 checkpoint is several files (.meta, .index, .data-*); --weights takes "
            "one file, so it cannot replace them. Run `zoo download` for the published checkpoint."
        )
    parts: dict[str, Path] = {}
    for name, path in files.items():
        shard = SHARD.search(name)
        ending = shard.group(0) if shard else next((e for e in (".meta", ".index") if name.endswith(e)), None)
        if ending is None:
            continue
        if ending in parts:
            raise ManifestError(
                f"{manifest.path}: field files: two files end in {ending} ({parts[ending].name} and {name}); "
                "a tf1-checkpoint entry holds one checkpoint."
            )
        parts[ending] = Path(path)
    missing = [e for e in (".meta", ".index") if e not in parts]
    if missing or not any(SHARD.search(e) for e in parts):
        raise ManifestError(
            f"{manifest.path}: field files: a TF1 checkpoint needs a file ending in .meta, one in .index and "
            f"its .data-NNNNN-of-NNNNN shards; missing {', '.join(missing) or '.data-*'} among "
            f"{', '.join(sorted(files)) or 'no files'}."
        )
    return parts


def freeze_checkpoint(files: dict[str, Path], manifest: Manifest) -> Any:
    """The checkpoint's graph stripped, bound, restored and frozen, its ports renamed to the manifest's."""
    spec = graph_spec(manifest)
    parts = checkpoint_parts(files, manifest)
    origin = f"{manifest.name} ({parts['.meta'].name})"
    meta = tf1_freeze.read_meta_graph(parts[".meta"])
    tf1_freeze.strip_output_shapes(meta)
    tf1_freeze.bind_placeholders(meta.graph_def, spec.bind, origin)
    with tempfile.TemporaryDirectory(prefix="zoo-tf1-checkpoint-") as folder:
        prefix = Path(folder) / PREFIX
        for ending, path in parts.items():
            os.symlink(Path(path).resolve(), f"{prefix}{ending}")
        _, session = tf1_freeze.restore_session(meta, prefix, origin)
        try:
            inputs = {s.name: spec.tensors[s.name] for s in manifest.inputs}
            outputs = {s.name: spec.tensors[s.name] for s in manifest.outputs}
            frozen = tf1_freeze.freeze(session, list(outputs.values()), origin)
        finally:
            session.close()
    return tf1_freeze.rename_ports(frozen, inputs, outputs)


class Tf1Source(tf1_freeze.FrozenGraph):
    """The frozen checkpoint run by TensorFlow."""


@register_converter
class Tf1CheckpointConverter(tf1_freeze.FrozenGraphExports, ThreadsAtLoad, Converter[Tf1Source]):
    """A TF1 checkpoint frozen with is_training bound; ONNX by tf2onnx, IR from the frozen .pb file."""

    frameworks = ("tf1-checkpoint",)
    direct_ir = True

    def load(self, files: dict[str, Path], manifest: Manifest) -> Tf1Source:
        frozen = freeze_checkpoint(files, manifest)
        source = Tf1Source(
            frozen, [s.name for s in manifest.inputs], [s.name for s in manifest.outputs], manifest.name
        )
        if self.threads is not None:
            source.set_threads(self.threads)
        return source
