"""The one driver for stateful (streaming) models: chunk by chunk, the recurrent state carried.

State inputs and outputs are the manifest's `kind: state` tensors, paired in manifest order. A
stream starts from zeros of the state inputs' shapes and dtypes (as upstream starts one) and each
runner carries its own state: the state a chunk returns is the state the next chunk gets.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from zoo.errors import UsageError

if TYPE_CHECKING:
    from zoo.manifest import Manifest


@dataclass(frozen=True)
class StatePair:
    """One recurrent state: the input that takes it, the output that returns it, its shape and dtype."""

    input: str
    output: str
    shape: tuple[int, ...]
    dtype: str


def state_pairs(manifest: Manifest) -> list[StatePair]:
    """The state a stream carries between calls, in manifest order; a mismatch is the manifest's fault."""
    ins = [s for s in manifest.inputs if s.kind == "state"]
    outs = [s for s in manifest.outputs if s.kind == "state"]
    if len(ins) != len(outs):
        raise UsageError(
            f"{manifest.path}: a streaming entry needs as many state outputs as state inputs "
            f"(inputs[].kind: state {[s.name for s in ins]}, outputs[].kind: state {[s.name for s in outs]})."
        )
    pairs = []
    for i, o in zip(ins, outs, strict=True):
        if not i.static:
            raise UsageError(f"{manifest.path}: state input {i.name!r} needs a static shape, got {i.shape}.")
        pairs.append(StatePair(i.name, o.name, tuple(int(d) for d in i.shape), i.dtype))
    return pairs


def initial_state(manifest: Manifest) -> dict[str, np.ndarray]:
    """Zeros for every state input: how upstream starts a stream."""
    return {p.input: np.zeros(p.shape, dtype=p.dtype) for p in state_pairs(manifest)}


def run_stream(
    runner: Any, manifest: Manifest, chunks: list[dict[str, np.ndarray]], *, cast_state: bool = True
) -> tuple[list[dict[str, np.ndarray]], list[dict[str, np.ndarray]]]:
    """One stream from zero state: (the full feeds given, chunk plus state in; the outputs), per chunk.

    The state a call returns is fed to the next in the manifest's dtype; a float64 evaluation keeps
    its own (``cast_state=False``), so its state is never rounded to float32 between chunks.
    """
    pairs = state_pairs(manifest)
    state = initial_state(manifest)
    given, outputs = [], []
    for chunk in chunks:
        full = {**chunk, **state}
        result = runner.run(full)
        given.append(full)
        outputs.append(result)
        state = {
            p.input: np.asarray(result[p.output]).reshape(p.shape).astype(p.dtype, copy=False)
            if cast_state
            else np.asarray(result[p.output]).reshape(p.shape)
            for p in pairs
        }
    return given, outputs


def run_calls(
    runner: Any, manifest: Manifest, feeds: list[dict[str, np.ndarray]], *, cast_state: bool = True
) -> tuple[list[dict[str, np.ndarray]], list[dict[str, np.ndarray]]]:
    """The calls of one clip or stream: (the full feeds given, the outputs), one per call.

    A streaming entry's feeds are the chunks of one stream (run_stream); any other entry's are
    independent calls.
    """
    if manifest.audio.streaming:
        return run_stream(runner, manifest, feeds, cast_state=cast_state)
    return list(feeds), [runner.run(feed) for feed in feeds]
