"""Golden vectors: probe inputs and the SOURCE framework's outputs in ONNX test-data layout.

`<out>/<name>/test_data/test_data_set_N/input_K.pb` and `output_K.pb` (TensorProto), plus an
index. A consumer re-checks any artifact against them without the source framework
(`check_golden`, `zoo verify --bundle`).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from zoo.atomic import atomic_dir, write_bytes, write_json
from zoo.errors import UsageError, ZooError
from zoo.layout import ModelLayout
from zoo.verify.metrics import compare, judge

if TYPE_CHECKING:
    from zoo.manifest import Manifest

GOLDEN_SETS = 5


def _tensor_bytes(array: np.ndarray, name: str) -> bytes:
    from onnx import numpy_helper

    return numpy_helper.from_array(np.ascontiguousarray(array), name).SerializeToString()


def write_golden(
    layout: ModelLayout, manifest: Manifest, chosen: list[tuple[str, int, dict, dict]]
) -> list[dict]:
    """Write (probe, call, feed, reference outputs) sets in ONNX test-data layout, atomically."""
    index = []
    with atomic_dir(layout.test_data) as folder:
        for number, (probe, call, feed, outputs) in enumerate(chosen):
            target = folder / f"test_data_set_{number}"
            target.mkdir()
            for k, spec in enumerate(manifest.inputs):
                array = np.asarray(feed[spec.name]).astype(spec.dtype, copy=False)
                write_bytes(target / f"input_{k}.pb", _tensor_bytes(array, spec.name))
            for k, spec in enumerate(manifest.outputs):
                write_bytes(
                    target / f"output_{k}.pb", _tensor_bytes(np.asarray(outputs[spec.name]), spec.name)
                )
            index.append({"set": target.name, "probe": probe, "call": call})
        write_json(
            folder / "index.json",
            {"model": manifest.name, "sets": index, "reference": f"{manifest.framework} (source framework)"},
        )
    return index


def read_golden(test_data_dir: str | Path) -> list[tuple[dict[str, np.ndarray], dict[str, np.ndarray]]]:
    """(inputs, expected outputs) per test_data_set_N folder, keyed by the tensors' names."""
    from onnx import TensorProto, numpy_helper

    folder = Path(test_data_dir)
    sets = sorted(folder.glob("test_data_set_*"), key=lambda p: int(p.name.rsplit("_", 1)[-1]))
    if not sets:
        raise UsageError(f"{folder}: no test_data_set_N folders with golden vectors.")
    found = []
    for path in sets:
        pair = []
        for prefix in ("input", "output"):
            tensors = {}
            files = sorted(path.glob(f"{prefix}_*.pb"), key=lambda p: int(p.stem.rsplit("_", 1)[-1]))
            for file in files:
                proto = TensorProto()
                try:
                    proto.ParseFromString(file.read_bytes())
                except Exception as exc:  # protobuf's DecodeError
                    raise ZooError(f"{file}: not an ONNX TensorProto: {exc}") from exc
                tensors[proto.name or file.stem] = numpy_helper.to_array(proto)
            pair.append(tensors)
        found.append((pair[0], pair[1]))
    return found


def check_golden(
    artifact_path: str | Path,
    test_data_dir: str | Path,
    tolerance: Any,
    *,
    hint: str | None = "f32",
    output: str | None = None,
    threshold: float | None = None,
) -> dict:
    """Re-check an artifact against golden vectors, without the source framework.

    *tolerance* is a manifest Tolerance or a dict with the same keys; *output* the tensor judged
    (default: the first output of each set). Returns {"sets", "metrics", "failures", "passed"}.
    """
    from zoo.runtimes import open_artifact

    if hasattr(tolerance, "model_dump"):
        tolerance = tolerance.model_dump()
    tolerance = dict(tolerance or {})
    runner = open_artifact(artifact_path, hint=hint)
    sets = read_golden(test_data_dir)
    reference, candidate = [], []
    for inputs, expected in sets:
        feeds = {name: inputs[name] for name in runner.input_names if name in inputs}
        got = runner.run(feeds)
        name = output or next(iter(expected))
        if name not in got:
            raise ZooError(f"{artifact_path}: has no output {name!r} (it has {runner.output_names}).")
        reference.append([expected[name]])
        candidate.append([got[name]])
    metrics = compare(
        reference, candidate, threshold=threshold, atol=tolerance.get("atol"), rtol=tolerance.get("rtol")
    )
    failures = judge(metrics, tolerance)
    return {"sets": len(sets), "metrics": metrics, "failures": failures, "passed": not failures}


def spread(count: int, wanted: int) -> list[int]:
    """*wanted* indices spread evenly over *count* items (all of them when there are fewer)."""
    if count <= wanted:
        return list(range(count))
    return sorted({int(round(i * (count - 1) / (wanted - 1))) for i in range(wanted)})
