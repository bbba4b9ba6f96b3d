"""Framework `tf1-graph`: a TF1 checkpoint restored by name into a graph rebuilt in code (VGGish).

Some TF1 models ship only their variables (VGGish's `vggish_model.ckpt`, a V1 single-file
checkpoint written by `Saver(write_version=1)`) and build the graph in Python; zoo rebuilds that
graph with upstream's variable names (converters/networks/<network.name>.py, framework "tf1"),
restores every variable by name (a missing or misshapen one is an error naming it), freezes the
session and runs the frozen GraphDef as the source model. Exports go through
converters.tf1_freeze as for checkpoints with a `.meta`: ONNX by tf2onnx (no If/Loop left), the
IR from the frozen graph written to a `.pb` FILE (the in-memory route is measured broken).

Reference weights are written in upstream's format: a V1 checkpoint under upstream's file name
with upstream's variable names (TensorFlow 2.21 still writes V1 through tf.compat.v1), and the
network's auxiliary files (VGGish: `vggish_pca_params.npz` with upstream's keys).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from converters import quiet_tensorflow
from converters.tf1_freeze import FrozenGraph, FrozenGraphExports, freeze, rename_ports
from zoo.errors import ManifestError, ZooError
from zoo.plugins import (
    Converter,
    ThreadsAtLoad,
    declared_network,
    reference_weights_name,
    register_converter,
    weights_path,
)

if TYPE_CHECKING:
    from zoo.manifest import Manifest


def tf1_network(manifest: Manifest) -> Any:
    """The rebuilt TF1 graph named by the manifest's `network.name` (a declared tf1 network)."""
    return declared_network(manifest, "tf1", "tf1-graph")


def check_checkpoint(path: Path, wanted: dict[str, tuple[int, ...]], origin: str) -> None:
    """Every variable the graph needs is in the checkpoint, with its shape; else name what is not."""
    import tensorflow as tf

    try:
        reader = tf.compat.v1.train.NewCheckpointReader(str(path))
    except Exception as exc:  # DataLossError, NotFoundError, ... with TensorFlow's own text
        first = str(getattr(exc, "message", exc)).splitlines()[0]
        raise ZooError(f"{path}: not a readable TensorFlow checkpoint ({origin}): {first}") from exc
    stored = {name: tuple(shape) for name, shape in reader.get_variable_to_shape_map().items()}
    missing = [name for name in wanted if name not in stored]
    if missing:
        raise ZooError(
            f"{path}: {len(missing)} of the {len(wanted)} variables of {origin} are not in the checkpoint "
            f"({', '.join(missing[:5])}{', ...' if len(missing) > 5 else ''}; it holds "
            f"{', '.join(sorted(stored)[:5]) or 'nothing'}{', ...' if len(stored) > 5 else ''})."
        )
    wrong = [f"{n} {stored[n]} (needs {s})" for n, s in wanted.items() if stored[n] != tuple(s)]
    if wrong:
        raise ZooError(f"{path}: variables of the wrong shape for {origin}: {', '.join(wrong[:4])}.")


class Tf1Source(FrozenGraph):
    """The frozen graph of the restored checkpoint, ports named as the manifest: the reference."""

    def __init__(self, graph_def: Any, manifest: Manifest, checkpoint: Path):
        inputs = [spec.name for spec in manifest.inputs]
        super().__init__(graph_def, inputs, [spec.name for spec in manifest.outputs], manifest.name)
        self.manifest = manifest
        self.checkpoint = checkpoint


def restored_graph_def(manifest: Manifest, values: dict[str, np.ndarray] | Path) -> Any:
    """The rebuilt graph with its variables from a checkpoint file (by name) or given arrays, frozen,
    its ports renamed to the manifest's input and output names."""
    quiet_tensorflow()
    import tensorflow as tf

    network = tf1_network(manifest)
    graph, variables = network.build_graph()
    with graph.as_default():
        session = tf.compat.v1.Session(graph=graph)
        try:
            if isinstance(values, Path):
                saver = tf.compat.v1.train.Saver(var_list=variables)
                saver.restore(session, str(values))
            else:
                for name, variable in variables.items():
                    variable.load(values[name], session)
            frozen = freeze(session, [network.output_tensor], manifest.name)
        finally:
            session.close()
    if len(manifest.inputs) != 1 or len(manifest.outputs) != 1:
        raise ManifestError(
            f"{manifest.path}: fields inputs/outputs: the {manifest.network.name if manifest.network else ''} "
            "graph has one input and one output."
        )
    return rename_ports(
        frozen,
        {manifest.inputs[0].name: network.input_tensor},
        {manifest.outputs[0].name: network.output_tensor},
    )


def save_v1_checkpoint(manifest: Manifest, values: dict[str, np.ndarray], target: Path) -> Path:
    """*values* as a V1 single-file checkpoint at *target* (upstream's Saver(write_version=1) format)."""
    quiet_tensorflow()
    import tensorflow as tf

    network = tf1_network(manifest)
    graph, variables = network.build_graph()
    scratch = Path(tempfile.mkdtemp(prefix=".ckpt-", dir=target.parent))
    try:
        with graph.as_default(), tf.compat.v1.Session(graph=graph) as session:
            for name, variable in variables.items():
                variable.load(values[name], session)
            saver = tf.compat.v1.train.Saver(var_list=variables, write_version=tf.compat.v1.train.SaverDef.V1)
            written = Path(saver.save(session, str(scratch / target.name), write_meta_graph=False))
        with open(written, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(written, target)  # the `checkpoint` index file beside it is not upstream's
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return target


class Tf1Float64:
    """The rebuilt graph again in float64, the checkpoint's values widened: the yardstick of the budgets.

    Built from the checkpoint, not from the ONNX export, so a defect of the export cannot widen the
    budget it is judged by (zoo.numerics.Float64Model's contract).
    """

    basis = "float64"
    artifacts: frozenset[str] = frozenset()

    def __init__(self, source: Tf1Source, manifest: Manifest, weights: str = "float32"):
        quiet_tensorflow()
        import tensorflow as tf

        network = tf1_network(manifest)
        reader = tf.compat.v1.train.NewCheckpointReader(str(source.checkpoint))
        graph, variables = network.build_graph(dtype="float64")
        config = tf.compat.v1.ConfigProto()
        config.graph_options.rewrite_options.disable_meta_optimizer = True  # evaluated as built
        self.session = tf.compat.v1.Session(graph=graph, config=config)
        with graph.as_default():
            for name, variable in variables.items():
                value = np.asarray(reader.get_tensor(name)).astype(weights).astype(np.float64)
                variable.load(value, self.session)
        self.input_name, self.output_names = source.input_names[0], list(source.output_names)
        self.feed, self.fetch = network.input_tensor, network.output_tensor
        self.path = (
            f"tf1 rebuild of {manifest.network.name if manifest.network else manifest.name} in float64"
        )

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        value = self.session.run(self.fetch, {self.feed: np.asarray(feeds[self.input_name], np.float64)})
        return {self.output_names[0]: np.asarray(value, dtype=np.float64)}


@register_converter
class Tf1GraphConverter(FrozenGraphExports, ThreadsAtLoad, Converter[Tf1Source]):
    """A TF1 checkpoint restored into a rebuilt graph; frozen, exported through converters.tf1_freeze."""

    frameworks = ("tf1-graph",)
    direct_ir = True

    def load(self, files: dict[str, Path], manifest: Manifest) -> Tf1Source:
        network = tf1_network(manifest)
        path = weights_path(files, manifest, "TF1 checkpoint")
        check_checkpoint(path, network.variable_shapes(), f"{manifest.name} ({network.__name__})")
        source = Tf1Source(restored_graph_def(manifest, path), manifest, path)
        if self.threads:
            source.set_threads(self.threads)
        return source

    def float64_model(
        self, source: Tf1Source, manifest: Manifest, onnx_path: Path | None, weights: str = "float32"
    ) -> Any:
        """The rebuild in float64 from the checkpoint (never from the export under judgement)."""
        return Tf1Float64(source, manifest, weights)

    def write_reference_weights(
        self, manifest: Manifest, directory: str | Path, seed: int
    ) -> dict[str, Path]:
        """Seeded variables as upstream's V1 checkpoint, and the network's auxiliary files."""
        network = tf1_network(manifest)
        name = reference_weights_name(manifest)
        folder = Path(directory)
        values = network.reference_variables(seed)
        written = {name: save_v1_checkpoint(manifest, values, folder / name)}
        auxiliary = [f.name for f in manifest.files if f.role == "auxiliary"]
        if auxiliary and hasattr(network, "write_auxiliary"):
            source = Tf1Source(restored_graph_def(manifest, values), manifest, written[name])
            written.update(network.write_auxiliary(source, manifest, folder, auxiliary, seed))
        return written
