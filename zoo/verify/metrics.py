"""Parity metrics of an artifact's outputs against the reference's, and the agreement rules.

- ``max_abs``: largest |artifact - reference| over every element of every input;
- ``max_rel``: largest |artifact - reference| / |reference| over elements with |reference| >= 1e-6;
- ``cosine_min``: smallest cosine similarity over probes (outputs of a probe concatenated);
- ``top1``: share of predictions whose best class is the reference's best class;
- ``top5``: mean overlap of the artifact's and the reference's five best classes;
- ``decision``: share of outputs on the same side of verify.decision_threshold (VAD, multi-label).

On the primary output, with the manifest's verify.agreement (scores read through its activation):

- ``top1_confident``: top-1 agreement on the windows where the reference's top score is at least
  agreement.confident (``confident_windows`` of them; None when there are none);
- ``detection``: share of windows whose set of classes at or above agreement.detect is the same;
- ``mean_abs_score``: mean |artifact score - reference score| over every class of every window;
- ``top5`` with agreement.floor: the overlap of each model's five best classes that score at least
  the floor (``visible_top5``): below it the order of near-zero scores is float rounding.
"""

from __future__ import annotations

import numpy as np

from zoo.errors import ZooError

REL_FLOOR = 1e-6
TOP_K = 5
METRICS = (
    "max_abs",
    "max_rel",
    "cosine_min",
    "top1",
    "top5",
    "decision",
    "top1_confident",
    "detection",
    "mean_abs_score",
)


def _rows(array: np.ndarray, classes: int) -> np.ndarray:
    return np.asarray(array, dtype=np.float64).reshape(-1, classes)


def scores_of(array: np.ndarray, activation: str) -> np.ndarray:
    """An output as scores: as it is, or through a sigmoid or a softmax over its last axis."""
    values = np.asarray(array, dtype=np.float64)
    if activation == "sigmoid":
        return 0.5 * (1.0 + np.tanh(0.5 * values))  # the logistic function without overflow
    if activation == "softmax":
        shifted = np.exp(values - values.max(axis=-1, keepdims=True))
        return shifted / shifted.sum(axis=-1, keepdims=True)
    return values


def top_overlap(reference: np.ndarray, candidate: np.ndarray, floor: float | None = None) -> float:
    """One window's |A & B| / k, A and B each model's k = TOP_K best classes.

    With *floor*, only classes scoring at least *floor* count: |A & B| / max(|A|, |B|), and 1
    when neither model scores any class at the floor (their order of near-zero scores is float
    rounding, not an answer).
    """
    k = min(TOP_K, reference.shape[-1])
    best_r = np.argsort(-reference, kind="stable")[:k]
    best_g = np.argsort(-candidate, kind="stable")[:k]
    if floor is None:
        return len(set(best_r.tolist()) & set(best_g.tolist())) / k
    seen_r = {int(c) for c in best_r if reference[c] >= floor}
    seen_g = {int(c) for c in best_g if candidate[c] >= floor}
    size = max(len(seen_r), len(seen_g))
    return len(seen_r & seen_g) / size if size else 1.0


def visible_top5(reference: np.ndarray, candidate: np.ndarray, floor: float) -> float:
    """Mean over windows of top_overlap with *floor*."""
    return sum(top_overlap(r, g, floor) for r, g in zip(reference, candidate, strict=True)) / len(reference)


def window_agreement(
    reference: np.ndarray,
    candidate: np.ndarray,
    confident: float | None = None,
    detect: float | None = None,
    floor: float | None = None,
) -> dict:
    """Agreement of two [windows, classes] score arrays, window by window (see the module's list)."""
    ref = np.asarray(reference, dtype=np.float64)
    got = np.asarray(candidate, dtype=np.float64)
    found: dict = {
        "windows": int(ref.shape[0]),
        "mean_abs_score": float(np.abs(got - ref).mean()) if ref.size else None,
    }
    if floor is not None and ref.shape[0] and ref.shape[1] > 1:
        found["top5"] = visible_top5(ref, got, floor)
    if confident is not None:
        sure = ref.max(axis=1) >= confident
        found["confident_windows"] = int(sure.sum())
        same = ref.argmax(axis=1) == got.argmax(axis=1)
        found["top1_confident"] = float(same[sure].mean()) if sure.any() else None
    if detect is not None:
        same_sets = np.all((ref >= detect) == (got >= detect), axis=1)
        found["detection"] = float(same_sets.mean()) if ref.shape[0] else None
        found["detected_windows"] = int(np.any(ref >= detect, axis=1).sum())
    return found


def compare(
    reference: list[list[np.ndarray]],
    candidate: list[list[np.ndarray]],
    threshold: float | None = None,
    atol: float | None = None,
    rtol: float | None = None,
    agreement: dict | None = None,
) -> dict:
    """Metrics of *candidate* against *reference*: per probe, the arrays of its calls.

    With atol/rtol it also counts elements outside atol + rtol * |reference| (numpy's allclose rule).
    With *agreement* (verify.agreement as a dict) it adds the window agreement metrics.
    """
    max_abs = max_rel = 0.0
    cosines = []
    top1_hits = top5_overlap = decisions_same = 0.0
    rows = decisions = outside = elements = 0
    ref_windows: list[np.ndarray] = []
    got_windows: list[np.ndarray] = []
    for ref_calls, got_calls in zip(reference, candidate, strict=True):
        ref_all = []
        got_all = []
        for ref, got in zip(ref_calls, got_calls, strict=True):
            ref = np.asarray(ref, dtype=np.float64)
            got = np.asarray(got, dtype=np.float64)
            if ref.shape != got.shape:
                got = got.reshape(ref.shape) if got.size == ref.size else got
            if ref.shape != got.shape:
                raise ZooError(
                    f"output shape {list(got.shape)} differs from the reference's {list(ref.shape)}"
                )
            diff = np.abs(got - ref)
            diff = np.where(np.isnan(diff), np.inf, diff)
            elements += diff.size
            if diff.size:
                max_abs = max(max_abs, float(diff.max()))
                big = np.abs(ref) >= REL_FLOOR
                if big.any():
                    max_rel = max(max_rel, float((diff[big] / np.abs(ref[big])).max()))
            if atol is not None or rtol is not None:
                outside += int(np.count_nonzero(diff > (atol or 0.0) + (rtol or 0.0) * np.abs(ref)))
            ref_all.append(ref.ravel())
            got_all.append(got.ravel())
            classes = ref.shape[-1] if ref.ndim else 1
            if agreement is not None:
                activation = agreement.get("scores") or "as-is"
                ref_windows.append(_rows(scores_of(ref, activation), classes))
                got_windows.append(_rows(scores_of(got, activation), classes))
            if classes > 1:
                for r, g in zip(_rows(ref, classes), _rows(got, classes), strict=True):
                    rows += 1
                    top1_hits += float(np.argmax(r) == np.argmax(g))
                    top5_overlap += top_overlap(r, g)
            if threshold is not None:
                decisions += ref.size
                decisions_same += float(np.count_nonzero((ref >= threshold) == (got >= threshold)))
        cosines.append(_cosine(np.concatenate(ref_all), np.concatenate(got_all)))
    windows: dict = {}
    if agreement is not None and ref_windows:
        windows = window_agreement(
            np.concatenate(ref_windows),
            np.concatenate(got_windows),
            agreement.get("confident"),
            agreement.get("detect"),
            agreement.get("floor"),
        )
    return {
        "max_abs": max_abs,
        "max_rel": max_rel,
        "cosine_min": min(cosines) if cosines else None,
        "top1": top1_hits / rows if rows else None,
        "top5": top5_overlap / rows if rows else None,
        "decision": decisions_same / decisions if decisions else None,
        "outside_tolerance": outside if (atol is not None or rtol is not None) else None,
        "elements": elements,
        **windows,
    }


def _cosine(a: np.ndarray, b: np.ndarray) -> float:
    if not (np.all(np.isfinite(a)) and np.all(np.isfinite(b))):
        return float("nan")
    na, nb = float(np.linalg.norm(a)), float(np.linalg.norm(b))
    if na == 0.0 and nb == 0.0:
        return 1.0
    if na == 0.0 or nb == 0.0:
        return 0.0
    return float(np.dot(a, b) / (na * nb))


def judge(metrics: dict, tolerance: dict) -> list[dict]:
    """The misses of *metrics* against *tolerance* (a manifest Tolerance as a dict; None fields unused)."""
    failures = []

    def miss(metric: str, measured, limit, rule: str) -> None:
        failures.append({"metric": metric, "measured": measured, "tolerance": limit, "rule": rule})

    atol, rtol = tolerance.get("atol"), tolerance.get("rtol")
    if atol is not None or rtol is not None:
        if rtol is None:
            if not metrics["max_abs"] <= atol:
                miss("max_abs", metrics["max_abs"], atol, "atol")
        elif metrics.get("outside_tolerance"):
            miss(
                "max_abs",
                metrics["max_abs"],
                {"atol": atol or 0.0, "rtol": rtol},
                f"{metrics['outside_tolerance']} of {metrics['elements']} elements beyond atol + rtol*|ref|",
            )
    for metric, key in (
        ("cosine_min", "cosine"),
        ("top1", "top1"),
        ("top5", "top5"),
        ("decision", "decision"),
        ("top1_confident", "top1_confident"),
        ("detection", "detection"),
    ):
        limit = tolerance.get(key)
        if limit is None:
            continue
        value = metrics.get(metric)
        if value is None and metric == "top1_confident" and metrics.get("confident_windows") == 0:
            continue  # no window where the source is confident: nothing to agree on
        if value is None:
            miss(metric, None, limit, f"{metric} cannot be measured on this output")
        elif not value >= limit:
            miss(metric, value, limit, "minimum")
    return failures


def describe_failure(model: str, artifact: str, failure: dict) -> str:
    """One line for a failed check: what was measured, the limit, and (for budgets) why that limit."""
    measured = failure["measured"]
    shown = (
        "not measurable"
        if measured is None
        else (f"{measured:.4g}" if isinstance(measured, float) else str(measured))
    )
    limit = failure["tolerance"]
    named = failure.get("output") and not failure.get("primary")  # the primary output goes unnamed
    where = f"{model}: {artifact}: " + (f"{failure['output']}: " if named else "")
    where += "step by step: " if failure.get("mode") == "step" else ""
    where += f"at batch size {failure['batch']}: " if failure.get("batch") else ""
    if failure["rule"] == "budget":
        there = failure.get("probe_error")
        if isinstance(there, float) and there != measured:  # the worst probe is not the largest error
            shown = f"{there:.4g} (largest over probes {shown})"
        return (
            f"{where}max_abs {shown} exceeds its budget {limit:.4g} on probe {failure.get('probe')!r} "
            f"(the yardstick there, {failure.get('basis') or 'source float32'} against float64, "
            f"is {failure.get('yardstick') or 0:.3g}; "
            f"{failure.get('used') or 0:.1f}x the budget)"
        )
    if failure["rule"] == "atol":
        return f"{where}max_abs {shown} exceeds the tolerance atol {limit:g}"
    if failure["rule"] == "minimum":
        return f"{where}{failure['metric']} {shown} is below the tolerance {limit:g}"
    return f"{where}{failure['metric']} {shown}: {failure['rule']} (tolerance {limit})"
