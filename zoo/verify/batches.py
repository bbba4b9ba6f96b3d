"""Verification at every batch size the manifest allows (`verify.batch_sizes`).

A conversion can be right at batch 1 and silently wrong at another batch size (measured: a TF1
graph converted by OpenVINO from its `.meta`, VGG-style models, 0.4-0.8 off after the input's
shape changes). So each artifact also runs
every probe's calls in batches of each size: the calls are stacked along the first axis (the
last batch filled with repeats of its first item), run as an application runs the artifact, and
the results split back into calls. Those are judged by the same rules, against the same source outputs, as
the batch-1 run: an item's output must not depend on what it is batched with.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from zoo.errors import ZooError

if TYPE_CHECKING:
    from zoo.manifest import Manifest
    from zoo.runtimes import Runner

Feeds = dict[str, np.ndarray]


def extra_batch_sizes(manifest: Manifest) -> list[int]:
    """The batch sizes verified besides 1 (none for streaming entries, whose calls depend on each other)."""
    if manifest.audio.streaming:
        return []
    return sorted({size for size in manifest.verify.batch_sizes if size != 1})


def open_batched(
    path: Path, kind: str, batch: int, threads: int | None, hint: str | None, exact: bool
) -> Runner:
    """The artifact at *path* for batches of *batch*, as an application runs it.

    ONNX as exported (its first dimension must be symbolic); an IR whose inputs' first dimension is
    dynamic as saved (measured: a wrong IR can be right once reshaped to a static batch and wrong
    when run dynamic at the same batch), one with a static first dimension reshaped to *batch*.
    """
    from zoo.runtimes import open_artifact
    from zoo.runtimes.openvino import OpenVinoRunner, read_batched_ir, read_ir

    if path.suffix != ".xml" or all(port.get_partial_shape()[0].is_dynamic for port in read_ir(path).inputs):
        return open_artifact(path, kind, hint=hint, threads=threads, exact=exact)
    try:
        model = read_batched_ir(path, batch)
    except Exception as exc:  # OpenVINO raises RuntimeError with its own text
        raise ZooError(f"{path}: the {kind} IR cannot be reshaped to batch {batch}: {exc}") from exc
    return OpenVinoRunner(model, hint=hint, threads=threads, exact=exact, label=f"{path} (batch {batch})")


def run_batched(runner: Runner, calls: list[list[Feeds]], batch: int, origin: str) -> list[list[Feeds]]:
    """Every call of every probe run in batches of *batch*, the outputs split back per call."""
    flat = [(p, c) for p, probe in enumerate(calls) for c in range(len(probe))]
    results: list[list[Feeds]] = [[{} for _ in probe] for probe in calls]
    for start in range(0, len(flat), batch):
        members = flat[start : start + batch]
        filled = members + [members[0]] * (batch - len(members))
        feeds = {
            name: np.concatenate([np.asarray(calls[p][c][name]) for p, c in filled], axis=0)
            for name in runner.input_names
        }
        try:
            outputs = runner.run(feeds)
        except ZooError as exc:
            raise ZooError(f"{origin}: at batch size {batch}: {exc.message}") from exc
        except Exception as exc:  # the runtimes raise their own kinds (a fixed batch dimension)
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ZooError(f"{origin}: cannot run at batch size {batch}: {first}") from exc
        for name, value in outputs.items():
            value = np.asarray(value)
            if value.shape[:1] != (batch,):
                raise ZooError(
                    f"{origin}: at batch size {batch} output {name!r} has shape {list(value.shape)}; "
                    f"expected {batch} items along its first axis."
                )
            for index, (p, c) in enumerate(members):
                results[p][c][name] = value[index : index + 1]
    return results
