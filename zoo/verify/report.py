"""The parts of a verify report people read: upstream self-tests, the table rows, the failure lines."""

from __future__ import annotations

import json
import os
import sys
from typing import TYPE_CHECKING, Any

import numpy as np

from zoo.errors import UsageError
from zoo.verify.inputs import ProbeInputs

#: the variables that restrict CPU kernels, each read once when a process first uses the library
ISA_VARIABLES = ("ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA", "ATEN_CPU_CAPABILITY", "TF_ENABLE_ONEDNN_OPTS")
ISA_NOTES = (
    "ONEDNN_MAX_CPU_ISA/DNNL_MAX_CPU_ISA cap OpenVINO's, PyTorch's and TensorFlow's oneDNN (OpenVINO's MVN, "
    "Reduce, Interpolate and f32 MLAS FullyConnected keep their own kernels); ATEN_CPU_CAPABILITY caps "
    "PyTorch's ATen; ONNX Runtime and TFLite's XNNPACK pick their kernels from the CPU and ignore these"
)

if TYPE_CHECKING:
    from zoo.manifest import Manifest


def expectations(
    manifest: Manifest,
    inputs: ProbeInputs,
    reference: list[list[dict]],
    labels: list[str] | None,
    reference_weights: bool,
) -> list[dict]:
    """Upstream self-tests (probe -> label within top k) on the reference outputs."""
    results = []
    main = manifest.main_output.name
    for number, expectation in enumerate(manifest.verify.expectations):
        entry = {"probe": expectation.probe, "label": expectation.label, "top_k": expectation.top_k}
        if reference_weights:
            results.append(
                {
                    **entry,
                    "rank": None,
                    "passed": None,
                    "note": "skipped: reference weights are random, upstream self-tests need the real weights",
                }
            )
            continue
        if labels is None or expectation.label not in labels:
            raise UsageError(
                f"{manifest.path}: field verify.expectations[{number}].label: {expectation.label!r} "
                "is not one of the model's labels."
            )
        if expectation.probe not in inputs.names:
            results.append(
                {
                    **entry,
                    "rank": None,
                    "passed": None,
                    "note": f"skipped: probe {expectation.probe!r} is not in this probe set",
                }
            )
            continue
        calls = reference[inputs.names.index(expectation.probe)]
        scores = np.stack([np.asarray(c[main], dtype=np.float64).reshape(-1, len(labels)) for c in calls])
        scores = scores.reshape(-1, len(labels))
        combined = (
            scores.max(axis=0)
            if expectation.aggregate == "max"
            else (scores[0] if expectation.aggregate == "none" else scores.mean(axis=0))
        )
        order = np.argsort(-combined, kind="stable")
        rank = int(np.nonzero(order == labels.index(expectation.label))[0][0]) + 1
        results.append(
            {
                **entry,
                "rank": rank,
                "passed": rank <= expectation.top_k,
                "top": [labels[i] for i in order[: expectation.top_k]],
            }
        )
    return results


def machine() -> dict[str, Any]:
    """The CPU and the kernel restrictions this process ran under: a parity verdict holds for those only.

    PyTorch's own view of its capability is added when torch is already loaded (a framework is
    never imported just to describe the machine).
    """
    from zoo.versions import host

    found: dict[str, Any] = {
        **host(),
        "isa_env": {name: os.environ[name] for name in ISA_VARIABLES if name in os.environ},
        "notes": ISA_NOTES,
    }
    torch = sys.modules.get("torch")
    if torch is not None:
        try:
            found["torch_cpu_capability"] = torch.backends.cpu.get_cpu_capability()
        except (AttributeError, RuntimeError):
            pass
    return found


#: the metric each manifest limit is checked on, as judging.judge_outputs records it
LIMIT_METRICS = {"atol": "max_abs", "rtol": "max_abs", "cosine": "cosine_min"}


def limit_text(tolerance: dict[str, Any], checks: dict[str, Any] | None = None) -> str:
    """The limits an output was held to, for the table: the budget (and how much of it was used) first.

    With *checks* (an output's verdict) only the limits that were applied to that output are shown.
    """
    parts = []
    budget = (checks or {}).get("budget")
    if budget and budget.get("limit") is not None:
        parts.append(f"budget {budget['limit']:.3g} ({budget.get('used') or 0:.2f} used)")
    for key, value in tolerance.items():
        if key in ("budget", "floor") or not isinstance(value, int | float):
            continue
        if checks is not None and LIMIT_METRICS.get(key, key) not in checks:
            continue
        parts.append(f"{key} {value:g}")
    return ", ".join(parts) or "-"


def summary_rows(report: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per artifact and output (and the default-precision line) for the terminal table."""
    rows = []
    for kind, entry in report["artifacts"].items():
        outputs = entry.get("outputs") or {}
        main = next((name for name, v in outputs.items() if v.get("primary")), None)
        ordered = [main, *[n for n in outputs if n != main]] if main else [None]
        for name in ordered:
            verdict = outputs.get(name, {}) if name else {}
            passed = verdict.get("passed") if name else entry["passed"]
            if name == main and any(f.get("output") is None for f in entry["failures"]):
                passed = False  # a check of the artifact as a whole (e.g. its float16 weights)
            rows.append(
                {
                    "model": report["model"],
                    "artifact": kind if name in (None, main) else f"{kind} {name}",
                    "runtime": _runtime_label(entry),
                    **(verdict.get("metrics") or entry["metrics"]),
                    "tolerance": limit_text(entry["tolerance"], verdict.get("checks")),
                    "result": "measured" if passed is None else ("pass" if passed else "FAIL"),
                }
            )
        step = entry.get("step")
        if step:
            rows.append(
                {
                    "model": report["model"],
                    "artifact": f"{kind} step by step",
                    "runtime": _runtime_label(entry),
                    **(step["outputs"][main]["metrics"] if main in step["outputs"] else {}),
                    "tolerance": limit_text(entry["tolerance"], step["outputs"].get(main, {}).get("checks")),
                    "result": "pass" if step["passed"] else "FAIL",
                }
            )
        audio = (report.get("audio") or {}).get("artifacts", {}).get(kind)
        if audio:  # the user's recordings (--audio): the primary output, as judged
            audio_outputs: dict[str, Any] = audio.get("outputs") or {}
            primary: dict[str, Any] = next((v for v in audio_outputs.values() if v.get("primary")), {})
            rows.append(
                {
                    "model": report["model"],
                    "artifact": f"{kind} --audio",
                    "runtime": _runtime_label(audio),
                    **(primary.get("metrics") or audio["metrics"]),
                    "tolerance": limit_text(audio["tolerance"], primary.get("checks")),
                    "result": "pass" if audio["passed"] else "FAIL",
                }
            )
        default = entry.get("default_precision")
        if default:
            rows.append(
                {
                    "model": report["model"],
                    "artifact": f"{kind} default",
                    "runtime": f"openvino {default['precision']}",
                    **default["metrics"],
                    "tolerance": "-",
                    "result": "not measured" if default.get("not_measured") else "not judged",
                }
            )
    return rows


def _runtime_label(entry: dict) -> str:
    if entry["runtime"] == "openvino":
        return f"openvino {entry.get('precision') or ''}".strip()
    return entry["runtime"]


def report_json(reports: list[dict]) -> str:
    return json.dumps(reports if len(reports) != 1 else reports[0], indent=2)
