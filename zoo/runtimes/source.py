"""The source model of an output folder, in its original framework, as a Runner (runtime "source").

`open_source` is the one way zoo loads it: the verified sources `zoo download` left in
<out>/<name>/source/ (re-checked by zoo.source_folder.read_source_set), loaded by the framework's converter.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from zoo.errors import ZooError
from zoo.runtimes.base import Runner
from zoo.vocab import Runtime

if TYPE_CHECKING:
    from zoo.manifest import Manifest
    from zoo.source_folder import SourceSet


class NoSources(ZooError):
    """The output folder holds no verified sources for this model (nothing downloaded, or stale)."""


def load_model(
    files: dict[str, Path], manifest: Manifest, threads: int | None = None
) -> tuple[Any, int | None]:
    """(the source model, the thread count that applies to it or None), through the converter.

    The one place zoo asks a converter for its source model; the thread count is given to the
    framework first (`Converter.set_threads`), and is None where the framework keeps its own choice.
    """
    from zoo.plugins import converter_for

    converter = converter_for(manifest)
    applied = int(threads) if threads and converter.set_threads(int(threads)) else None
    return converter.load(files, manifest), applied


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
        self.threads = threads
        self.config = {"framework": manifest.framework, "threads": self.threads}

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
    from zoo.source_folder import read_source_set

    if sources is None:
        sources = read_source_set(manifest, Path(out))
    if sources is None:
        raise NoSources(
            f"no verified sources under {Path(out) / manifest.name / 'source'} (run `zoo download`)"
        )
    model, applied = load_model(sources.files, manifest, threads)
    return SourceRunner(model, manifest, sources, applied)
