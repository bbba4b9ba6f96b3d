"""The source model of an output folder, in its original framework, as a Runner (runtime "source").

`open_source` is the one way zoo loads it: the verified sources `zoo download` left in
<out>/<name>/source/ (re-checked by zoo.fetch.read_source_set), loaded by the framework's converter.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from zoo.errors import ZooError
from zoo.runtimes.base import Runner
from zoo.vocab import Runtime

if TYPE_CHECKING:
    from zoo.fetch import SourceSet
    from zoo.manifest import Manifest

#: frameworks that run on torch, whose thread count is process-wide
TORCH_FRAMEWORKS = ("pytorch", "torchscript", "lasagne")


class NoSources(ZooError):
    """The output folder holds no verified sources for this model (nothing downloaded, or stale)."""


def load_model(files: dict[str, Path], manifest: Manifest) -> Any:
    """The source model from its files, through the framework's converter (the one place zoo asks it)."""
    from converters import get_converter

    return get_converter(manifest.framework).load(files, manifest)


class SourceRunner(Runner):
    """A converter's source model behind the Runner contract.

    `model` is what the converter loaded; `threads` the thread count that applies to it (None when the
    framework keeps its own choice: TFLite and Keras).
    """

    runtime = Runtime.SOURCE.value

    def __init__(self, model: Any, manifest: Manifest, sources: SourceSet, threads: int | None = None):
        self.model = model
        self.framework = manifest.framework
        self.sources = sources
        self.path = sources.directory
        self.label = f"{manifest.name} ({manifest.framework} source model)"
        self.input_names = list(model.input_names)
        self.output_names = list(model.output_names)
        dtypes = {spec.name: spec.dtype for spec in manifest.inputs}
        self.input_types = {name: np.dtype(dtypes.get(name, "float32")).type for name in self.input_names}
        self.precision = None
        self.threads = self._apply_threads(manifest, threads)
        self.config = {"framework": manifest.framework, "threads": self.threads}

    def _apply_threads(self, manifest: Manifest, threads: int | None) -> int | None:
        """Give the framework *threads*; the count that applies, or None where it cannot be set.

        torch takes a process-wide count; the ONNX source (ONNX Runtime on the published file, graph
        optimizations off, as its converter runs it) gets a session of its own with the count.
        """
        if not threads:
            return None
        if manifest.framework in TORCH_FRAMEWORKS:
            import torch

            torch.set_num_threads(int(threads))
            return int(threads)
        if manifest.framework == "onnx" and isinstance(getattr(self.model, "path", None), Path):
            from zoo.runtimes.onnxruntime import OnnxRuntimeRunner

            self.model = OnnxRuntimeRunner(self.model.path, threads=threads, optimize=False)
            return int(threads)
        return None

    @property
    def model_type(self) -> str:
        """The class that runs the source model (reports name it)."""
        return type(self.model).__name__

    def infer(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        outputs: dict[str, np.ndarray] = self.model.run(feeds)
        return outputs


def open_source(
    manifest: Manifest, out: str | Path, *, threads: int | None = None, sources: SourceSet | None = None
) -> SourceRunner:
    """The source model of `<out>/<name>/` as a Runner; NoSources when nothing verified is there.

    *sources* is the source set when the caller already read it (reading re-hashes every file).
    """
    from zoo.fetch import read_source_set

    if sources is None:
        sources = read_source_set(manifest, Path(out))
    if sources is None:
        raise NoSources(
            f"no verified sources under {Path(out) / manifest.name / 'source'} (run `zoo download`)"
        )
    return SourceRunner(load_model(sources.files, manifest), manifest, sources, threads)
