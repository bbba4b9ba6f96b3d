"""Yardsticks, budgets and verdicts: the rules derived in zoo.numerics' docstring, as code."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from zoo.errors import ZooError
from zoo.manifest import Manifest

U32 = 2.0**-24  #: unit roundoff of float32 (half its machine epsilon)
U64 = 2.0**-53  #: unit roundoff of float64
U16 = 2.0**-11  #: unit roundoff of float16
K = {"FP32": 4.0, "onnx": 4.0, "FP16": 4.0}
FLOOR_SIGMAS = 4.0
LOG_DOMAIN = {"logits", "log-probabilities", "spectrogram"}
RATIO = {"FP32": 1.0, "onnx": 1.0, "FP16": U16 / U32}
#: artifacts whose runtime has no float64 arithmetic (OpenVINO's CPU plugin lowers it to float32)
NO_FLOAT64 = frozenset({"FP32", "FP16"})

Feeds = dict[str, np.ndarray]


def reduction_profile(onnx_path: str | Path) -> tuple[int, int]:
    """(longest reduction n, number of reducing layers D) of an ONNX graph: Conv, MatMul, Gemm, RNNs."""
    import onnx
    from onnx import shape_inference

    model = onnx.load(str(onnx_path))
    try:
        model = shape_inference.infer_shapes(model)
    except Exception:  # shapes help, but a graph the inference rejects still has initializer shapes
        pass
    g = model.graph
    shapes: dict[str, list[int]] = {t.name: list(t.dims) for t in g.initializer}
    for v in list(g.value_info) + list(g.input) + list(g.output):
        dims = v.type.tensor_type.shape.dim
        shapes.setdefault(v.name, [d.dim_value if d.HasField("dim_value") else 0 for d in dims])
    for node in g.node:
        if (
            node.op_type == "Constant"
            and node.attribute
            and node.attribute[0].type == onnx.AttributeProto.TENSOR
        ):
            shapes[node.output[0]] = list(node.attribute[0].t.dims)
    longest, depth = 1, 0
    for node in g.node:
        n = 0
        if node.op_type in ("Conv", "ConvTranspose") and len(shapes.get(node.input[1], [])) >= 3:
            n = math.prod(shapes[node.input[1]][1:])
        elif node.op_type == "MatMul" and shapes.get(node.input[0]):
            n = shapes[node.input[0]][-1]
        elif node.op_type == "Gemm" and len(shapes.get(node.input[0], [])) == 2:
            trans = any(a.name == "transA" and a.i for a in node.attribute)
            n = shapes[node.input[0]][0 if trans else 1]
        elif node.op_type in ("LSTM", "GRU", "RNN") and len(shapes.get(node.input[1], [])) == 3:
            n = shapes[node.input[1]][2] + shapes[node.input[2]][2]
        if n > 0:
            longest, depth = max(longest, int(n)), depth + 1
    return longest, max(depth, 1)


def scale_of(kind: str | None, reference: np.ndarray) -> float:
    """The magnitude the floor is relative to (see the module docstring)."""
    top = float(np.max(np.abs(reference))) if reference.size else 0.0
    return max(1.0, top) if kind in LOG_DOMAIN else top


def floor32(scale: float, profile: tuple[int, int]) -> float:
    """4 standard deviations of float32 rounding over D layers of n-long sums, times the output's scale."""
    n, depth = profile
    return FLOOR_SIGMAS * U32 * math.sqrt(n * depth / 3.0) * scale


def max_abs(a: Sequence[np.ndarray], b: Sequence[np.ndarray]) -> float:
    """Largest |a - b| over the calls of one probe (NaN counts as infinite)."""
    worst = 0.0
    for x, y in zip(a, b, strict=True):
        d = np.abs(np.asarray(x, np.float64).ravel() - np.asarray(y, np.float64).ravel())
        if d.size:
            worst = max(worst, float(np.nan_to_num(d, nan=np.inf).max()))
    return worst


@dataclass
class Alternative:
    """Another float32-sized evaluation's error against float64, for the artifacts it applies to.

    The source's own float32 error is not the whole yardstick when an artifact's runtime must do
    something the source does not: compute float64 steps in float32 ("the graph wholly in
    float32"), or round a QDQ graph's quantizers after float32 sums ("quantizer steps").
    """

    basis: str
    artifacts: frozenset[str]
    error: list[float]  #: per probe


@dataclass
class Yardstick:
    """Per probe, for one output: the source's float32 error against float64, and the output's scale."""

    output: str
    kind: str | None
    error: list[float]
    scale: list[float]
    error16: list[float] | None = None  #: |ref64(weights in float16) - ref64|, when measured
    alternatives: list[Alternative] = field(default_factory=list)

    def error_for(self, artifact: str, probe: int) -> float:
        """The yardstick of *artifact* on *probe*: the largest of the source's float32 error and the
        alternatives that apply to it (see zoo.numerics)."""
        return max(
            [self.error[probe]] + [a.error[probe] for a in self.alternatives if artifact in a.artifacts]
        )

    def basis(self, artifact: str) -> str:
        """Which evaluations the yardstick of *artifact* rests on, for the report."""
        names = ["source float32"] + [a.basis for a in self.alternatives if artifact in a.artifacts]
        return " and ".join(dict.fromkeys(names))


def yardstick(
    manifest: Manifest,
    source_f32: list[list[Feeds]],
    reference: list[list[Feeds]],
    reference16: list[list[Feeds]] | None = None,
    alternatives: Sequence[tuple[str, frozenset[str], list[list[Feeds]]]] = (),
) -> dict[str, Yardstick]:
    """|source_f32 - reference_f64| (max over a probe's calls) and scale, per output and probe.

    With *reference16* (``reference_f64(..., weights="float16")``) also the FP16 yardstick; each of
    *alternatives* is (basis, artifacts it applies to, its outputs per probe and call).
    """
    found = {}
    for spec in manifest.outputs:
        errors, scales = [], []
        for src, ref in zip(source_f32, reference, strict=True):
            errors.append(max_abs([c[spec.name] for c in src], [c[spec.name] for c in ref]))
            refs = np.concatenate([np.asarray(c[spec.name], np.float64).ravel() for c in ref])
            scales.append(scale_of(spec.kind, refs))
        error16 = None
        if reference16 is not None:
            error16 = [
                max_abs([c[spec.name] for c in r16], [c[spec.name] for c in ref])
                for r16, ref in zip(reference16, reference, strict=True)
            ]
        others = [
            Alternative(
                basis,
                artifacts,
                [
                    max_abs([c[spec.name] for c in alt], [c[spec.name] for c in ref])
                    for alt, ref in zip(outputs, reference, strict=True)
                ],
            )
            for basis, artifacts, outputs in alternatives
        ]
        found[spec.name] = Yardstick(spec.name, spec.kind, errors, scales, error16, others)
    return found


def budget(artifact: str, yardstick_error: float, scale: float, profile: tuple[int, int]) -> float:
    """The largest |artifact - source| allowed on one probe: ratio * (k * yardstick + floor).

    *artifact*: "onnx", "FP32" or "FP16" (INT8 has no numeric budget: agreement metrics only);
    *yardstick_error*: the source's float32 error on the probe; *scale*: ``scale_of`` the output.
    """
    if artifact not in K:
        raise ZooError(
            f"no numeric budget for {artifact!r} artifacts (known: {', '.join(K)}); judge agreement."
        )
    ratio = RATIO[artifact]
    return ratio * (K[artifact] * yardstick_error + floor32(scale, profile))


@dataclass
class Verdict:
    """One artifact's one output: worst probe's error, its budget and the yardstick behind it."""

    artifact: str
    output: str
    kind: str | None
    passed: bool
    error: float  #: largest |artifact - source| over probes
    budget: float  #: the budget on the probe that used most of it
    yardstick: float  #: that probe's |source_f32 - reference_f64|
    floor: float
    worst_probe: int
    used: float  #: largest error / budget over probes (> 1 fails)
    per_probe: list[tuple[float, float]] = field(default_factory=list)  #: (error, budget)

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "per_probe"}


def judge_artifact(
    artifact: str,
    stick: Yardstick,
    source_f32: list[list[Feeds]],
    candidate: list[list[Feeds]],
    profile: tuple[int, int],
) -> Verdict:
    """The Verdict of one artifact's output: every probe within its own budget."""
    rows = []
    for p, (src, got) in enumerate(zip(source_f32, candidate, strict=True)):
        err = max_abs([c[stick.output] for c in got], [c[stick.output] for c in src])
        rows.append((err, budget(artifact, stick.error_for(artifact, p), stick.scale[p], profile)))
    used = [e / b if b > 0 else (math.inf if e > 0 else 0.0) for e, b in rows]
    worst = int(np.argmax(used)) if used else 0
    return Verdict(
        artifact=artifact,
        output=stick.output,
        kind=stick.kind,
        passed=all(u <= 1.0 for u in used),
        error=max((e for e, _ in rows), default=0.0),
        budget=rows[worst][1] if rows else 0.0,
        yardstick=stick.error_for(artifact, worst) if rows else 0.0,
        floor=RATIO[artifact] * floor32(stick.scale[worst], profile) if rows else 0.0,
        worst_probe=worst,
        used=used[worst] if used else 0.0,
        per_probe=rows,
    )
