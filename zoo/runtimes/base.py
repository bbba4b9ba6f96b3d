"""The Runner contract every runtime honours: names in, names out, `run(feeds) -> {name: array}`.

Feeds are checked against the runner's inputs and cast to each input's element type here, once,
so every runtime (ONNX Runtime, OpenVINO, the source framework) rejects and converts alike.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from zoo.errors import ZooError


class Runner:
    """One loaded model: input and output names, and `run(feeds) -> outputs`.

    `label` names the model in messages (a file path, or what an in-memory model is); `precision` is
    the inference precision the runtime computes in (OpenVINO), None where that is the graph's own;
    `config` is what the runtime was configured with, so reports can show it.
    """

    runtime: str = ""
    path: Path | None = None
    label: str = ""
    input_names: list[str]
    output_names: list[str]
    precision: str | None = None
    config: dict[str, object]
    #: element type per input (None: passed as given)
    input_types: dict[str, type | None]

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return self.infer(self.prepare(feeds))

    def infer(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run on feeds already checked and cast by `prepare`."""
        raise NotImplementedError

    def prepare(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """The feeds in input order, contiguous and of each input's element type; wrong names are an error."""
        missing = [n for n in self.input_names if n not in feeds]
        unknown = [n for n in feeds if n not in self.input_names]
        if missing or unknown:
            raise ZooError(
                f"{self.label}: feeds do not match the model's inputs {self.input_names}: "
                f"missing {missing or 'none'}, unknown {unknown or 'none'}."
            )
        types = getattr(self, "input_types", {})
        return {name: as_type(feeds[name], types.get(name)) for name in self.input_names}

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.runtime} {self.label} precision={self.precision}>"


def as_type(array: np.ndarray, dtype: type | None) -> np.ndarray:
    """*array* as a contiguous array of *dtype* (no copy when it already is one)."""
    array = np.asarray(array)
    if dtype is None or array.dtype == dtype:
        return np.ascontiguousarray(array)
    return np.ascontiguousarray(array.astype(dtype))
