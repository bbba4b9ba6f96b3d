"""A composite's stages from the catalog, and the Runner that chains them for predict and verify."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from zoo.composite.postprocess import PcaParams, dequantize
from zoo.errors import ManifestError, UsageError
from zoo.layout import ModelLayout
from zoo.predict.model import Chosen
from zoo.runtimes.base import Runner

if TYPE_CHECKING:
    from zoo.catalog import Catalog
    from zoo.manifest import Manifest

#: the one input of a chained model: a mono waveform window at the head's rate
WAVEFORM = "waveform"
#: the front end an embedder of a chain must have (the window geometry follows from it)
EMBEDDER_FRONT_END = "vggish-log-mel"


def window_geometry(manifest: Manifest) -> tuple[int, int]:
    """(samples, hop) of one head input: `frames` consecutive VGGish examples, windows back to back."""
    from zoo.frontends.vggish import EXAMPLE_FRAMES, HOP, WINDOW

    assert manifest.chain is not None  # callers check
    frames = manifest.chain.frames * EXAMPLE_FRAMES
    return (frames - 1) * HOP + WINDOW, frames * HOP


@dataclass(frozen=True)
class Stages:
    """The head entry and the embedder its chain names, checked to fit together."""

    head: Manifest
    embedder: Manifest


def resolve(head: Manifest, catalog: Catalog) -> Stages:
    """The chain's embedder from *catalog*; every mismatch names the head's field."""
    chain = head.chain
    if chain is None:
        raise UsageError(f"{head.name} is not a composite (it has no chain).")
    where = f"{head.path or head.name}: field chain"
    try:
        embedder = catalog.get(chain.embedder)
    except UsageError as exc:
        raise ManifestError(f"{where}.embedder: {exc.message}") from exc
    kind = embedder.audio.features.kind if embedder.audio.features else None
    if kind != EMBEDDER_FRONT_END:
        raise ManifestError(
            f"{where}.embedder: {embedder.name}'s front end is {kind!r}; a chain needs {EMBEDDER_FRONT_END!r}."
        )
    if chain.parameters not in [f.name for f in embedder.files]:
        raise ManifestError(
            f"{where}.parameters: {chain.parameters!r} is not a file of {embedder.name} "
            f"({', '.join(f.name for f in embedder.files)})."
        )
    shape = head.inputs[0].shape
    dims = embedder.main_output.shape[-1]
    if shape[-1] != dims or shape[-2] != chain.frames:
        raise ManifestError(
            f"{where}.frames: {head.name}'s input {shape} must be [.., {chain.frames}, {dims}] "
            f"({chain.frames} embeddings of {embedder.name}, {dims} values each)."
        )
    if embedder.audio.sample_rate != head.audio.sample_rate:
        raise ManifestError(
            f"{where}.embedder: {embedder.name} runs at {embedder.audio.sample_rate} Hz, "
            f"{head.name} says {head.audio.sample_rate} Hz."
        )
    return Stages(head, embedder)


def with_stages(chosen: list[Manifest], catalog: Catalog) -> list[Manifest]:
    """*chosen* with every composite's embedder in front of it (once): what convert and verify run."""
    ordered: list[Manifest] = []
    names: set[str] = set()
    for manifest in chosen:
        if manifest.chain is not None:
            embedder = resolve(manifest, catalog).embedder
            if embedder.name not in names:
                ordered.append(embedder)
                names.add(embedder.name)
        if manifest.name not in names:
            ordered.append(manifest)
            names.add(manifest.name)
    return ordered


def parameters_path(stages: Stages, out: Path) -> Path:
    """The postprocessor's parameters: the embedder's source file in the output folder."""
    assert stages.head.chain is not None
    path = ModelLayout(Path(out), stages.embedder.name).source_dir / stages.head.chain.parameters
    if not path.is_file():
        raise UsageError(
            f"{stages.head.name}: {path} does not exist; run `zoo convert --name {stages.head.name} --chain` "
            f"(it converts {stages.embedder.name} too)."
        )
    return path


class ChainRunner(Runner):
    """Waveform window -> embedder (one call per example) -> codes -> head: the composite as one model."""

    runtime = "chain"

    def __init__(
        self, head: Manifest, embedder: Runner, embedder_manifest: Manifest, model: Runner, pca: PcaParams
    ):
        assert head.chain is not None
        self.chain = head.chain
        self.head_manifest = head
        self.embedder = embedder
        self.embedder_manifest = embedder_manifest
        self.model = model
        self.pca = pca
        self.input_names = [WAVEFORM]
        self.output_names = list(model.output_names)
        self.input_types = {WAVEFORM: np.float32}
        self.label = f"{embedder.label} -> {head.chain.postprocess} -> {model.label}"
        self.config = {"embedder": getattr(embedder, "config", {}), "head": getattr(model, "config", {})}
        self.precision = model.precision

    def embeddings(self, waveform: np.ndarray) -> np.ndarray:
        """(frames, dims) float32 embeddings of one window, one embedder call per example."""
        from zoo.frontends import prepare_inputs

        rate = self.embedder_manifest.audio.sample_rate
        name = self.embedder_manifest.main_output.name
        rows = [
            np.asarray(self.embedder.run(feed)[name], dtype=np.float32).reshape(-1)
            for feed in prepare_inputs(self.embedder_manifest, np.asarray(waveform).reshape(-1), rate)
        ]
        if len(rows) != self.chain.frames:
            raise UsageError(
                f"{self.head_manifest.name}: a window gave {len(rows)} embeddings, the head takes {self.chain.frames}."
            )
        return np.stack(rows)

    def head_input(self, codes: np.ndarray) -> dict[str, np.ndarray]:
        spec = self.head_manifest.inputs[0]
        static = [d if isinstance(d, int) else 1 for d in spec.shape]
        return {spec.name: dequantize(codes, self.chain.offset, self.chain.scale).reshape(static)}

    def infer(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        codes = self.pca.codes(self.embeddings(feeds[WAVEFORM]))
        return self.model.run(self.head_input(codes))


@dataclass
class ChainChosen(Chosen):
    """What predict runs for a composite: the head's artifact, the embedder's, and the parameters."""

    embedder: Chosen | None = None
    parameters: Path | None = None
    stages: Stages | None = field(default=None, repr=False)

    def open(self, threads: int | None = None) -> Runner:
        assert self.embedder is not None and self.parameters is not None and self.stages is not None
        pca = PcaParams.read(self.parameters, int(self.stages.embedder.main_output.shape[-1]))
        return ChainRunner(
            self.manifest, self.embedder.open(threads), self.stages.embedder, super().open(threads), pca
        )


def chosen_chain(
    head: Manifest, catalog: Catalog, out: Path, asked: str | None, reference_weights: bool
) -> ChainChosen:
    """Both stages' artifacts in the output folder (each the fastest verified one, or the one asked for)."""
    from zoo.predict.model import from_output

    stages = resolve(head, catalog)
    if not ModelLayout(Path(out), stages.embedder.name).onnx.is_file():
        raise UsageError(
            f"{head.name} takes audio through {stages.embedder.name}, which is not converted in {out}; run "
            f"`zoo convert --name {head.name} --chain{' --reference-weights' if reference_weights else ''}` first."
        )
    top = from_output(head, out, asked, reference_weights)
    first = from_output(stages.embedder, out, asked, reference_weights)
    reason = f"{stages.embedder.name} {first.artifact} ({first.reason}), then {top.artifact} ({top.reason})"
    return ChainChosen(
        manifest=head,
        labels=top.labels,
        artifact=top.artifact,
        path=top.path,
        reason=reason,
        out=top.out,
        embedder=first,
        parameters=parameters_path(stages, out),
        stages=stages,
    )
