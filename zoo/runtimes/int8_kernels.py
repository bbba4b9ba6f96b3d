"""Whether this CPU's int8 kernels add exactly, and which layers of a model they could get wrong.

x86 CPUs without VNNI multiply u8 activations by s8 weights with VPMADDUBSW, which adds each pair
of products into a signed 16-bit lane and saturates there: 255 * 127 * 2 = 64770 does not fit in
32767. oneDNN (OpenVINO's CPU plugin) and MLAS (ONNX Runtime) both take that path on AVX2 and on
AVX-512 without VNNI, so an INT8 model whose weights use all 8 bits can give different answers on
such CPUs than on CPUs with VNNI, which accumulate in 32 bits. (zoo verifies ONNX artifacts with
ONNX Runtime's QDQ fusions off, so only IRs run int8 kernels under verify.) Weights within [-64, 64] cannot
overflow (255 * 64 * 2 = 32640), which is why quantizers offer 7-bit weights ("overflow fix",
"reduce range"). Depthwise convolutions have no pairs to add and are left out.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

#: the largest weight magnitude whose pairs of products with u8 activations fit in int16
SAFE_WEIGHT = 64

#: oneDNN's ISA caps (ONEDNN_MAX_CPU_ISA / DNNL_MAX_CPU_ISA) that still allow VNNI instructions;
#: every cap below these (SSE41, AVX, AVX2, AVX512_CORE) runs the saturating kernels
VNNI_CAPS = frozenset(
    {
        "AVX2_VNNI",
        "AVX2_VNNI_2",
        "AVX512_CORE_VNNI",
        "AVX512_CORE_BF16",
        "AVX512_CORE_FP16",
        "AVX512_CORE_AMX",
        "AVX512_CORE_AMX_FP16",
        "AVX10_1_512",
        "AVX10_1_512_AMX",
        "AVX10_1_512_AMX_FP16",
        "AVX10_2_512",
        "AVX10_2_512_AMX_2",
        "ALL",
        "DEFAULT",
    }
)
#: /proc/cpuinfo flags of the VNNI families (AMX implies AVX-512 VNNI)
VNNI_FLAGS = frozenset({"avx512_vnni", "avx_vnni", "amx_int8"})
CAP_VARIABLES = ("ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA")

#: the ops that multiply activations by weights in pairs (GroupConvolution is depthwise here)
PAIRED_OPS = frozenset({"Convolution", "MatMul", "ConvolutionBackpropData"})
#: the ops a weight passes through between its stored integers and the op that uses it
WEIGHT_PATH_OPS = frozenset(
    {"Convert", "Subtract", "Multiply", "Reshape", "Transpose", "Unsqueeze", "Squeeze", "FakeQuantize"}
)


def cpu_flags(cpuinfo: Path = Path("/proc/cpuinfo")) -> frozenset[str] | None:
    """The CPU's feature flags, or None where the operating system does not list them."""
    try:
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("flags"):
                return frozenset(line.split(":", 1)[1].split())
    except OSError:
        return None
    return None


def exact_int8_sums(
    flags: frozenset[str] | None = None, environ: Mapping[str, str] | None = None
) -> bool | None:
    """True when oneDNN's int8 kernels in this process use VNNI (32-bit sums), False when they
    saturate in 16 bits, None when the CPU's flags are unknown."""
    flags = cpu_flags() if flags is None else flags
    if flags is None:
        return None
    if not flags & VNNI_FLAGS:
        return False
    environ = os.environ if environ is None else environ
    for name in CAP_VARIABLES:
        cap = environ.get(name, "").strip().upper()
        if cap:
            return cap in VNNI_CAPS
    return True


def _integers_of_fake_quantize(node: Any) -> np.ndarray | None:
    """The integer levels a weight FakeQuantize maps its constant to, centred on its zero level."""
    data = node.input_value(0).get_node()
    low = node.input_value(1).get_node()
    high = node.input_value(2).get_node()
    if not all(n.get_type_name() == "Constant" for n in (data, low, high)):
        return None
    levels = int(node.get_attributes()["levels"])
    values = data.get_data().astype(np.float64)
    lo = np.broadcast_to(low.get_data().astype(np.float64), values.shape)
    hi = np.broadcast_to(high.get_data().astype(np.float64), values.shape)
    span = np.where(hi > lo, hi - lo, 1.0)
    step = span / (levels - 1)
    zero = np.round(-lo / step)
    clipped = np.clip(values, lo, hi)
    return np.round((clipped - lo) / step) - zero


def _stored_weights(node: Any, depth: int = 6) -> np.ndarray | None:
    """The integers behind an op's weight input: an i8/u8 constant, or what a FakeQuantize makes."""
    if depth == 0:
        return None
    kind = node.get_type_name()
    if kind == "Constant":
        if node.get_element_type().get_type_name() in ("i8", "u8"):
            return node.get_data().astype(np.int64)
        return None
    if kind == "FakeQuantize":
        return _integers_of_fake_quantize(node)
    if kind == "Subtract":  # an asymmetric zero point: the integers are stored minus the zero
        stored = _stored_weights(node.input_value(0).get_node(), depth - 1)
        zero = _stored_weights(node.input_value(1).get_node(), depth - 1)
        if stored is None:
            return None
        return stored if zero is None else stored - np.broadcast_to(zero, stored.shape)
    if kind not in WEIGHT_PATH_OPS:
        return None
    for value in node.input_values():
        found = _stored_weights(value.get_node(), depth - 1)
        if found is not None:
            return found
    return None


@dataclass(frozen=True)
class SaturationRisk:
    """The layers of one model whose int8 weights use more than 7 bits."""

    layers: tuple[str, ...]
    largest_weight: int

    def as_record(self, exact: bool | None) -> dict[str, Any]:
        return {
            "layers_with_8bit_weights": len(self.layers),
            "first_layers": list(self.layers[:5]),
            "largest_weight": self.largest_weight,
            "exact_int8_sums": exact,
        }


def ir_saturation_risk(xml: Path) -> SaturationRisk:
    """The paired-product layers of an OpenVINO IR whose integer weights exceed 7 bits."""
    from zoo.runtimes.openvino import read_ir

    if 'type="FakeQuantize"' not in Path(xml).read_text(errors="replace"):
        return SaturationRisk((), 0)  # a float IR: nothing quantizes activations (and no .bin read)
    model = read_ir(xml)
    layers: list[str] = []
    largest = 0
    ops = model.get_ordered_ops()
    if not any(
        op.get_type_name() == "FakeQuantize" and op.input_value(0).get_node().get_type_name() != "Constant"
        for op in ops
    ):  # weights alone in 8 bits are decompressed to float: no int8 products at all
        return SaturationRisk((), 0)
    for op in ops:
        if op.get_type_name() not in PAIRED_OPS or op.get_input_size() < 2:
            continue
        weights = _stored_weights(op.input_value(1).get_node())
        if weights is None:
            continue
        top = int(np.abs(weights).max())
        largest = max(largest, top)
        if top > SAFE_WEIGHT:
            layers.append(op.get_friendly_name())
    return SaturationRisk(tuple(layers), largest)


def explain(risk: SaturationRisk, exact: bool | None) -> str | None:
    """One sentence for a report or a failure: what the int8 kernels of this run do to this model."""
    if not risk.layers:
        return None
    count = f"{len(risk.layers)} layer{'s' if len(risk.layers) != 1 else ''}"
    weights = f"use 8-bit weights (up to {risk.largest_weight}, beyond the 7-bit bound {SAFE_WEIGHT})"
    if exact is False:
        return (
            "this run's int8 kernels lack VNNI (CPU flags or ONEDNN_MAX_CPU_ISA) and add pairs of "
            f"u8 x s8 products in 16-bit lanes that saturate; {count} of this IR {weights}, so their "
            "sums can clip, the likely cause of this failure. Re-quantize with 7-bit weights "
            "(quantize.overflow_fix: enable) or deploy on CPUs with VNNI"
        )
    if exact is True:
        return (
            f"verified with VNNI int8 kernels (32-bit sums); {count} of this IR {weights}, "
            "so CPUs without VNNI may saturate them: verify on such a CPU before deploying there"
        )
    return f"{count} of this IR {weights}; CPUs without VNNI may saturate them"
