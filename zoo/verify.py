"""`zoo verify`: every converted artifact against the ORIGINAL framework, on deterministic probes.

The source framework runs each probe (through the manifest's host preprocessing)
and its outputs are the reference. Every artifact that exists (ONNX on ONNX
Runtime; FP32, FP16 and INT8 IR on OpenVINO with the f32 precision hint) runs the
same inputs; stateful streaming models run whole streams chunk by chunk, each
runtime carrying its own state. Metrics on the manifest's primary output:

- ``max_abs``: largest |artifact - reference| over every element of every input;
- ``max_rel``: largest |artifact - reference| / |reference| over elements with |reference| >= 1e-6;
- ``cosine_min``: smallest cosine similarity over probes (outputs of a probe concatenated);
- ``top1``: share of predictions whose best class is the reference's best class;
- ``top5``: mean overlap of the artifact's and the reference's five best classes;
- ``decision``: share of outputs on the same side of verify.decision_threshold (VAD, multi-label).

Tolerances come from the manifest (`verify.tolerance.<artifact>`); any miss fails the
run. FP32 on OpenVINO is also run at the plugin's default precision (bf16 on CPUs
that have it) and reported beside, not judged. Golden vectors (inputs and the
source framework's outputs) go to `<out>/<name>/test_data/` in ONNX test-data
layout, and `check_golden` re-checks any artifact against them.
"""

from __future__ import annotations

import functools
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from zoo.atomic import atomic_dir, write_bytes, write_json
from zoo.errors import EXIT_FAILED, UsageError, ZooError
from zoo.layout import ModelLayout
from zoo.records import REPORT_SCHEMA, Report
from zoo.stages.engine import ModelRun, Stage
from zoo.stamps import output_checksums, read_stamp, sha256_file
from zoo.streams import run_calls

if TYPE_CHECKING:
    from zoo.manifest import Manifest

ARTIFACTS = ("onnx", "FP32", "FP16", "INT8")
REL_FLOOR = 1e-6
TOP_K = 5
SYNTHETIC_COUNT = 16
STREAM_SECONDS = 10.0
GOLDEN_SETS = 5
METRICS = ("max_abs", "max_rel", "cosine_min", "top1", "top5", "decision")


# -- inputs -------------------------------------------------------------------------------


@dataclass
class ProbeInputs:
    """Per probe, the network calls it makes: clip feeds, or the chunk feeds of one stream."""

    names: list[str]
    feeds: list[list[dict[str, np.ndarray]]]
    streaming: bool = False
    kind: str = "standard"  # the probe set's kind, or "synthetic-features"

    @property
    def calls(self) -> int:
        return sum(len(f) for f in self.feeds)


def verify_seconds(manifest: Manifest) -> float:
    """How long each verify probe is: verify.seconds, else a 10 s stream for streaming models, else one clip."""
    if manifest.verify.seconds:
        return float(manifest.verify.seconds)
    if manifest.audio.streaming:
        return STREAM_SECONDS
    if manifest.audio.clip is not None:
        return float(manifest.audio.clip.seconds)
    return 1.0


def build_inputs(manifest, seed: int = 0) -> ProbeInputs:
    """The probe set at the manifest's rate and length, through the host preprocessing."""
    from zoo.frontends import frontend_for, prepare_inputs, synthetic_feature_inputs
    from zoo.probes import probe_set

    limit = manifest.verify.max_probes
    if not frontend_for(manifest).takes_audio:
        feeds = synthetic_feature_inputs(manifest, min(SYNTHETIC_COUNT, limit or SYNTHETIC_COUNT), seed)
        return ProbeInputs(
            [f"synthetic-{i + 1}" for i in range(len(feeds))], [[f] for f in feeds], kind="synthetic-features"
        )
    rate = manifest.audio.sample_rate
    probes = probe_set(rate, verify_seconds(manifest), kind=manifest.verify.probes, seed=seed)[:limit]
    names, feeds = [], []
    for probe in probes:
        names.append(probe.name)
        feeds.append(prepare_inputs(manifest, probe.audio, rate))
    return ProbeInputs(names, feeds, streaming=manifest.audio.streaming, kind=manifest.verify.probes)


# -- metrics --------------------------------------------------------------------------------


def _rows(array: np.ndarray, classes: int) -> np.ndarray:
    return np.asarray(array, dtype=np.float64).reshape(-1, classes)


def compare(
    reference: list[list[np.ndarray]],
    candidate: list[list[np.ndarray]],
    threshold: float | None = None,
    atol: float | None = None,
    rtol: float | None = None,
) -> dict:
    """Metrics of *candidate* against *reference*: per probe, the arrays of its calls.

    With atol/rtol it also counts elements outside atol + rtol * |reference| (numpy's allclose rule).
    """
    max_abs = max_rel = 0.0
    cosines = []
    top1_hits = top5_overlap = decisions_same = 0.0
    rows = decisions = outside = elements = 0
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
            if classes > 1:
                k = min(TOP_K, classes)
                for r, g in zip(_rows(ref, classes), _rows(got, classes), strict=True):
                    rows += 1
                    top1_hits += float(np.argmax(r) == np.argmax(g))
                    top_r = set(np.argsort(-r, kind="stable")[:k].tolist())
                    top_g = set(np.argsort(-g, kind="stable")[:k].tolist())
                    top5_overlap += len(top_r & top_g) / k
            if threshold is not None:
                decisions += ref.size
                decisions_same += float(np.count_nonzero((ref >= threshold) == (got >= threshold)))
        cosines.append(_cosine(np.concatenate(ref_all), np.concatenate(got_all)))
    return {
        "max_abs": max_abs,
        "max_rel": max_rel,
        "cosine_min": min(cosines) if cosines else None,
        "top1": top1_hits / rows if rows else None,
        "top5": top5_overlap / rows if rows else None,
        "decision": decisions_same / decisions if decisions else None,
        "outside_tolerance": outside if (atol is not None or rtol is not None) else None,
        "elements": elements,
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
    ):
        limit = tolerance.get(key)
        if limit is None:
            continue
        value = metrics.get(metric)
        if value is None:
            miss(metric, None, limit, f"{metric} cannot be measured on this output")
        elif not value >= limit:
            miss(metric, value, limit, "minimum")
    return failures


def describe_failure(model: str, artifact: str, failure: dict) -> str:
    measured = failure["measured"]
    shown = "not measurable" if measured is None else f"{measured:.4g}"
    limit = failure["tolerance"]
    if failure["rule"] == "atol":
        return f"{model}: {artifact}: max_abs {shown} exceeds the tolerance atol {limit:g}"
    if failure["rule"] == "minimum":
        return f"{model}: {artifact}: {failure['metric']} {shown} is below the tolerance {limit:g}"
    return f"{model}: {artifact}: {failure['metric']} {shown}: {failure['rule']} (tolerance {limit})"


# -- golden vectors --------------------------------------------------------------------------


def _tensor_bytes(array: np.ndarray, name: str) -> bytes:
    from onnx import numpy_helper

    return numpy_helper.from_array(np.ascontiguousarray(array), name).SerializeToString()


def write_golden(layout: ModelLayout, manifest, chosen: list[tuple[str, int, dict, dict]]) -> list[dict]:
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
    tolerance,
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


def _spread(count: int, wanted: int) -> list[int]:
    if count <= wanted:
        return list(range(count))
    return sorted({int(round(i * (count - 1) / (wanted - 1))) for i in range(wanted)})


# -- one model ------------------------------------------------------------------------------


def _expectations(
    manifest,
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


class VerifyStage(Stage):
    """Verification of every artifact present: writes report.json and the golden vectors.

    Always measured when asked (a verdict is about this machine and these runtimes, not only about
    the files); the stamp records what the report was made from, under the model folder's lock.
    """

    name = "verify"

    def __init__(self, reference_weights: bool, seed: int):
        self.asked_reference = reference_weights
        self.seed = seed
        self.report: dict | None = None

    def key(self, run: ModelRun) -> dict:
        from zoo.stages.engine import code_digest, tool_versions
        from zoo.stamps import manifest_part, output_checksums

        stamps = {kind: output_checksums(run.stamp(kind)) for kind in ARTIFACTS}
        return {
            "manifest": manifest_part(
                run.manifest, {"verify", "inputs", "outputs", "primary_output", "audio", "labels"}
            ),
            "sources": output_checksums(run.stamp("source")),
            "artifacts": {kind: sums for kind, sums in stamps.items() if sums},
            "seed": self.seed,
            "code": code_digest([__file__]),
            "versions": tool_versions(),
        }

    def always(self, run: ModelRun) -> bool:
        return True

    def work(self, run: ModelRun) -> tuple[list[Path], dict]:
        self.report = measure(run, self.asked_reference, self.seed)
        outputs = [run.layout.report, *sorted(p for p in run.layout.test_data.rglob("*") if p.is_file())]
        return outputs, {"passed": self.report["passed"]}


def verify_model(
    manifest,
    out: Path,
    *,
    reference_weights: bool = False,
    seed: int = 0,
    log: Callable[[str], None] = lambda message: None,
) -> dict:
    """Verify every artifact of one model (the verify stage); return the report it wrote."""
    from zoo.stages.engine import ModelRun, RunOptions, run_model

    run = ModelRun(manifest, RunOptions(out=Path(out)), log)
    if not (run.layout.source_dir / "SOURCES.json").is_file() or not run.layout.onnx.is_file():
        raise UsageError(
            f"{manifest.name}: nothing converted in {run.layout.root}; run `zoo convert --name {manifest.name}"
            f"{' --reference-weights' if reference_weights else ''} -o {out}` first."
        )
    stage = VerifyStage(reference_weights, seed)
    result = run_model(run, [stage])
    if result.error is not None:
        raise (UsageError if result.exit_code == 2 else ZooError)(result.error, result.exit_code)
    if stage.report is None:
        raise ZooError(f"{manifest.name}: verify made no report.")
    return stage.report


def measure(run: ModelRun, reference_weights: bool, seed: int) -> dict:
    """Run the source model and every artifact on the probes; write report.json and golden vectors."""
    from zoo import fetch
    from zoo.runtimes import cpu_default_precision, open_artifact, open_source
    from zoo.versions import versions

    manifest, out, log = run.manifest, run.options.out, run.log

    started = time.perf_counter()
    layout = ModelLayout(Path(out).resolve(), manifest.name)
    sources = fetch.read_source_set(manifest, Path(out))
    if sources is None or not layout.onnx.is_file():
        raise UsageError(
            f"{manifest.name}: nothing converted in {layout.root}; run `zoo convert --name {manifest.name}"
            f"{' --reference-weights' if reference_weights else ''} -o {out}` first."
        )
    asked_reference = bool(reference_weights) and not manifest.real_weights_offline
    if asked_reference and not sources.reference_weights:
        # not asked: the source folder says how the outputs were made; asked, it must agree
        raise UsageError(
            f"{manifest.name}: the outputs in {layout.root} were made from the real weights, but verify was "
            "run with --reference-weights; drop the option (or convert again with it)."
        )
    run.sources = sources
    log(f"{manifest.name}: loading the {manifest.framework} source model")
    source_model = open_source(manifest, out, sources=sources)
    inputs = build_inputs(manifest, seed=seed)
    log(f"{manifest.name}: {len(inputs.names)} probes, {inputs.calls} calls")

    main = manifest.main_output.name
    given_feeds, reference = [], []
    for feeds in inputs.feeds:
        given, outs = run_calls(source_model, manifest, feeds)
        given_feeds.append(given)
        reference.append(outs)
    reference_main = [[np.asarray(o[main]) for o in outs] for outs in reference]
    threshold = manifest.verify.decision_threshold

    artifacts: dict[str, dict] = {}
    failures_text: list[str] = []
    for kind in ARTIFACTS:
        path = layout.artifact(kind)
        if not path.is_file():
            continue
        tolerance = manifest.verify.tolerance.get(kind)
        tol = tolerance.model_dump(exclude_none=True) if tolerance is not None else {}
        entry = _run_artifact(
            manifest, kind, path, layout, inputs, reference, reference_main, tol, threshold, open_artifact
        )
        if kind == "FP32" and path.suffix == ".xml":
            entry["default_precision"] = _default_precision(
                entry,
                functools.partial(
                    _run_artifact,
                    manifest,
                    kind,
                    path,
                    layout,
                    inputs,
                    reference,
                    reference_main,
                    tol,
                    threshold,
                    open_artifact,
                    hint=None,
                ),
                cpu_default_precision(),
            )
        artifacts[kind] = entry
        failures_text += [describe_failure(manifest.name, kind, f) for f in entry["failures"]]
        log(
            f"{manifest.name}: {kind}: max_abs {entry['metrics']['max_abs']:.3g}"
            f"{'' if entry['passed'] else '  FAILED'}"
        )

    labels = None
    try:
        labels = manifest.read_labels(sources.directory)
    except ZooError:
        labels = None
    expectations = _expectations(manifest, inputs, reference, labels, bool(sources.reference_weights))
    for item in expectations:
        if item["passed"] is False:
            failures_text.append(
                f"{manifest.name}: expectation: probe {item['probe']!r} ranks {item['label']!r} "
                f"at {item['rank']}, expected within the top {item['top_k']}"
            )

    flat = [
        (inputs.names[p], c, given_feeds[p][c], reference[p][c])
        for p in range(len(inputs.names))
        for c in range(len(reference[p]))
    ]
    golden = write_golden(layout, manifest, [flat[i] for i in _spread(len(flat), GOLDEN_SETS)])

    source_stamp = read_stamp(layout.stamp("source"))
    report = {
        "schema": REPORT_SCHEMA,
        "model": manifest.name,
        "manifest_version": manifest.version,
        "manifest_sha256": manifest.digest,
        "reference_weights": bool(sources.reference_weights),
        "sources": {Path(name).name: sha for name, sha in output_checksums(source_stamp).items()}
        or {name: sha256_file(p) for name, p in sources.files.items()},
        "versions": versions(),
        "created": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "reference": {"framework": manifest.framework, "runtime": source_model.model_type},
        "probes": {
            "count": len(inputs.names),
            "names": inputs.names,
            "calls": inputs.calls,
            "kind": inputs.kind,
            "streaming": inputs.streaming,
            "seconds": None if inputs.kind == "synthetic-features" else verify_seconds(manifest),
        },
        "artifacts": artifacts,
        "expectations": expectations,
        "golden": {"path": layout.test_data.relative_to(layout.root).as_posix(), "sets": len(golden)},
        "failures": failures_text,
        "passed": not failures_text,
        "seconds": round(time.perf_counter() - started, 3),
    }
    Report.model_validate(report).write(layout.report)
    return report


def _default_precision(hinted: dict, run_default: Callable[[], dict], cpu_default: str) -> dict:
    """FP32 at the plugin's default precision, reported beside the f32 result and never judged.

    When the CPU's default already is f32 (no bf16 on this CPU) the plugin compiles the very same
    graph, so the f32 measurement is reported for it instead of running everything twice.
    """
    if cpu_default == "f32" and hinted.get("precision") == "f32":
        return {
            "precision": "f32",
            "cpu_default": cpu_default,
            "metrics": hinted["metrics"],
            "judged": False,
            "note": "this CPU's default inference precision is f32: same compiled model as the f32 run",
        }
    default = run_default()
    return {
        "precision": default["precision"],
        "cpu_default": cpu_default,
        "metrics": default["metrics"],
        "judged": False,
    }


def _run_artifact(
    manifest,
    kind,
    path,
    layout,
    inputs,
    reference,
    reference_main,
    tol,
    threshold,
    open_artifact,
    hint: str | None = "f32",
) -> dict:
    main = manifest.main_output.name
    runner = open_artifact(path, kind, hint=hint)
    candidate = []
    for feeds in inputs.feeds:
        _, outs = run_calls(runner, manifest, feeds)
        candidate.append(outs)
    for outs in candidate:
        for out in outs:
            if main not in out:
                raise ZooError(
                    f"{manifest.name}: {kind} artifact {path.name} has no output {main!r} "
                    f"(it has {sorted(out)}); convert again."
                )
    metrics = compare(
        reference_main,
        [[np.asarray(o[main]) for o in outs] for outs in candidate],
        threshold=threshold,
        atol=tol.get("atol"),
        rtol=tol.get("rtol"),
    )
    others = {}
    for spec in manifest.outputs:
        if spec.name == main:
            continue
        other = compare(
            [[np.asarray(o[spec.name]) for o in outs] for outs in reference],
            [[np.asarray(o[spec.name]) for o in outs] for outs in candidate],
        )
        others[spec.name] = {"max_abs": other["max_abs"], "cosine_min": other["cosine_min"]}
    failures = judge(metrics, tol)
    entry = {
        "path": path.relative_to(layout.root).as_posix(),
        "sha256": sha256_file(path),
        "runtime": runner.runtime,
        "metrics": metrics,
        "other_outputs": others,
        "tolerance": tol,
        "passed": not failures,
        "failures": failures,
    }
    if runner.runtime == "openvino":
        entry["hint"] = hint
        entry["precision"] = runner.precision
        weights = path.with_suffix(".bin")  # the IR's weights, checked like the .xml
        entry["files"] = [
            {
                "path": weights.relative_to(layout.root).as_posix(),
                "sha256": sha256_file(weights),
                "size": weights.stat().st_size,
            }
        ]
    if not tol:
        entry["note"] = f"no tolerance for {kind} in verify.tolerance: measured, not judged"
    return entry


def verify_many(
    manifests: list,
    out: Path,
    *,
    reference_weights: bool,
    seed: int = 0,
    log: Callable[[str], None] = lambda message: None,
) -> tuple[list[dict], list[str]]:
    """Verify each model; a model that cannot be verified is a failure, the others still run."""
    reports, errors = [], []
    for manifest in manifests:
        try:
            reports.append(
                verify_model(manifest, out, reference_weights=reference_weights, seed=seed, log=log)
            )
        except UsageError:
            raise
        except ZooError as exc:
            errors.append(f"{manifest.name}: {exc.message}")
    return reports, errors


def summary_rows(report: dict) -> list[dict]:
    """One row per artifact (and the default-precision line) for the terminal table."""
    rows = []
    for kind, entry in report["artifacts"].items():
        rows.append(
            {
                "model": report["model"],
                "artifact": kind,
                "runtime": _runtime_label(entry),
                **entry["metrics"],
                "tolerance": entry["tolerance"],
                "result": "pass" if entry["passed"] else "FAIL" if entry["tolerance"] else "measured",
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
                    "tolerance": {},
                    "result": "not judged",
                }
            )
    return rows


def _runtime_label(entry: dict) -> str:
    if entry["runtime"] == "openvino":
        return f"openvino {entry.get('precision') or ''}".strip()
    return entry["runtime"]


def report_json(reports: list[dict]) -> str:
    return json.dumps(reports if len(reports) != 1 else reports[0], indent=2)


__all__ = [
    "EXIT_FAILED",
    "build_inputs",
    "check_golden",
    "compare",
    "judge",
    "read_golden",
    "verify_model",
    "verify_many",
    "write_golden",
]
