"""The words every command shares: artifact and runtime names, list options, sizes.

One definition each, so `--precisions`, reports, bundles and tables cannot drift apart.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from enum import StrEnum

from zoo.errors import UsageError


class Artifact(StrEnum):
    """What `zoo convert` and `zoo quantize` make, in pipeline order."""

    ONNX = "onnx"
    FP32 = "FP32"
    FP16 = "FP16"
    INT8 = "INT8"


class Runtime(StrEnum):
    """What runs a model: its original framework, or one of the target runtimes."""

    SOURCE = "source"
    ONNXRUNTIME = "onnxruntime"
    OPENVINO = "openvino"


#: every converted artifact, in pipeline order
ARTIFACTS: tuple[str, ...] = tuple(a.value for a in Artifact)
#: OpenVINO IR precisions `zoo convert` makes (INT8 is `zoo quantize`'s)
IR_PRECISIONS: tuple[str, ...] = (Artifact.FP32.value, Artifact.FP16.value)
#: every OpenVINO IR precision
ALL_IR_PRECISIONS: tuple[str, ...] = (Artifact.FP32.value, Artifact.FP16.value, Artifact.INT8.value)
#: the source model and every artifact, as evaluate and bench show them
SUBJECTS: tuple[str, ...] = ("source", *ARTIFACTS)
RUNTIMES: tuple[str, ...] = tuple(r.value for r in Runtime)


def parse_list(
    values: Iterable[str] | str | None, known: Sequence[str], option: str, *, noun: str = "value"
) -> list[str] | None:
    """Comma-separated (and repeatable) values of *known*, matched case-blind, in the order given.

    None or nothing given means "not restricted" (None); an unknown value is a usage error naming
    the option, what the value is (*noun*: "unknown artifact 'FP64'") and what the option accepts.
    """
    if values is None:
        return None
    if isinstance(values, str):
        values = [values]
    lookup = {k.casefold(): k for k in known}
    chosen: list[str] = []
    for value in values:
        for part in (p.strip() for p in value.split(",")):
            if not part:
                continue
            if part.casefold() not in lookup:
                raise UsageError(f"{option}: unknown {noun} {part!r}; expected some of {', '.join(known)}.")
            if lookup[part.casefold()] not in chosen:
                chosen.append(lookup[part.casefold()])
    return chosen or None


def human_size(count: float) -> str:
    """Bytes in SI units (kB = 1000 B), as download tools and the bench table print them."""
    for unit in ("B", "kB", "MB", "GB"):
        if abs(count) < 1000 or unit == "GB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1000
    return f"{count:.1f} TB"  # pragma: no cover - the loop returns at GB
