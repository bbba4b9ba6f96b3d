"""Judging one artifact: every output, by the rule of its artifact kind.

- ONNX, FP32 and FP16 artifacts with `budget: derived` (the default policy): every output on every
  probe must stay within its numeric budget, k times the source framework's own float32 error
  against a float64 evaluation of the same model plus a float32 rounding floor (zoo.numerics
  derives both); `floor:` in the manifest raises the floor, with a comment that derives it.
- An explicit `atol`/`rtol` is an override of the budget (the manifest comments why).
- Agreement minimums (`cosine`, `top1`, `top5`, `decision`, `top1_confident`, `detection`: see
  zoo.verify.metrics) apply to the primary output, and
  `cosine` also to every other output of an INT8 artifact: 8-bit quantization error is a design
  choice judged by agreement, not by float arithmetic.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from zoo.verify.metrics import compare, judge

if TYPE_CHECKING:
    from zoo.manifest import Manifest
    from zoo.numerics import Yardstick

#: artifacts judged by a numeric budget (INT8 is judged by agreement)
NUMERIC = ("onnx", "FP32", "FP16")
#: the agreement minimums, judged on the primary output
AGREEMENT_RULES = ("cosine", "top1", "top5", "decision", "top1_confident", "detection")

Feeds = dict[str, np.ndarray]


@dataclass
class Reference:
    """The source framework's float32 outputs, and what its own float32 error is on each probe."""

    names: list[str]  # probe (or file) names
    outputs: list[list[Feeds]]  # per probe, per call
    sticks: dict[str, Yardstick] | None  # per output: |source_f32 - float64|; None when not measured
    profile: tuple[int, int]  # (longest reduction, reducing layers) of the exported graph
    float64_path: str | None = None


def _budget_check(
    kind: str, output: str, reference: Reference, candidate: list[list[Feeds]], floor: float | None
) -> dict[str, Any]:
    from zoo.numerics import judge_artifact

    if reference.sticks is None or output not in reference.sticks:
        return {"passed": False, "measured": None, "limit": None, "note": "no float64 yardstick"}
    verdict = judge_artifact(kind, reference.sticks[output], reference.outputs, candidate, reference.profile)
    rows = verdict.per_probe
    if floor is not None:  # the manifest's floor: no budget below it
        rows = [(error, max(budget, floor)) for error, budget in rows]
    used = [e / b if b > 0 else (math.inf if e > 0 else 0.0) for e, b in rows]
    worst = int(np.argmax(used)) if used else 0
    stick = reference.sticks[output]
    return {
        "passed": all(u <= 1.0 for u in used),
        "measured": max((e for e, _ in rows), default=0.0),
        "limit": rows[worst][1] if rows else 0.0,
        "used": used[worst] if used else 0.0,
        "yardstick": stick.error_for(kind, worst) if rows else 0.0,
        "yardstick_basis": stick.basis(kind),
        "floor": verdict.floor if floor is None else max(verdict.floor, floor),
        "worst_probe": reference.names[worst] if rows else None,
        "error_on_worst_probe": rows[worst][0] if rows else 0.0,
    }


def judge_outputs(
    manifest: Manifest,
    kind: str,
    tolerance: dict[str, Any],
    reference: Reference,
    candidate: list[list[Feeds]],
) -> tuple[dict[str, dict[str, Any]], list[dict[str, Any]]]:
    """({output: verdict}, failures) of one artifact's outputs against the source's."""
    main = manifest.main_output.name
    threshold = manifest.verify.decision_threshold
    agreement = manifest.verify.agreement.model_dump()
    verdicts: dict[str, dict[str, Any]] = {}
    failures: list[dict[str, Any]] = []
    derived = kind in NUMERIC and tolerance.get("budget") == "derived"
    for spec in manifest.outputs:
        primary = spec.name == main
        ref = [[np.asarray(c[spec.name]) for c in calls] for calls in reference.outputs]
        got = [[np.asarray(c[spec.name]) for c in calls] for calls in candidate]
        rules = {k: v for k, v in tolerance.items() if k in ("atol", "rtol")}
        if primary:
            rules.update({k: v for k, v in tolerance.items() if k in AGREEMENT_RULES})
        elif kind == "INT8" and "cosine" in tolerance:
            rules["cosine"] = tolerance["cosine"]
        metrics = compare(
            ref,
            got,
            threshold=threshold if primary else None,
            atol=rules.get("atol"),
            rtol=rules.get("rtol"),
            agreement=agreement if primary else None,
        )
        if not primary:  # class rankings mean nothing for state, embeddings or spectrograms
            metrics["top1"] = metrics["top5"] = None
        checks: dict[str, dict[str, Any]] = {}
        for failure in judge(metrics, rules):
            failure["output"] = spec.name
            failure["primary"] = primary
            failures.append(failure)
            checks[failure["metric"]] = {
                "passed": False,
                "measured": failure["measured"],
                "limit": failure["tolerance"],
            }
        for rule, limit in rules.items():
            metric = {"atol": "max_abs", "rtol": "max_abs", "cosine": "cosine_min"}.get(rule, rule)
            checks.setdefault(metric, {"passed": True, "measured": metrics.get(metric), "limit": limit})
        if derived:
            budget = _budget_check(kind, spec.name, reference, candidate, tolerance.get("floor"))
            checks["budget"] = budget
            if not budget["passed"]:
                failures.append(
                    {
                        "metric": "max_abs",
                        "measured": budget["measured"],
                        "tolerance": budget["limit"],
                        "rule": "budget",
                        "output": spec.name,
                        "primary": primary,
                        "yardstick": budget.get("yardstick"),
                        "basis": budget.get("yardstick_basis"),
                        "probe": budget.get("worst_probe"),
                        "probe_error": budget.get("error_on_worst_probe"),
                        "used": budget.get("used"),
                    }
                )
        verdicts[spec.name] = {
            "kind": spec.kind,
            "primary": primary,
            "metrics": metrics,
            "checks": checks,
            "judged": bool(checks),
            "passed": all(c.get("passed") for c in checks.values()) if checks else None,
        }
    return verdicts, failures
