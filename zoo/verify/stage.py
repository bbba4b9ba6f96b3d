"""The verify stage: every artifact against the ORIGINAL framework, judged output by output.

The source framework runs each probe (and each of the user's recordings, with --audio) through
the manifest's host preprocessing; its outputs are the reference. The same model evaluated in
float64 measures how far the source's own float32 arithmetic is from exact (zoo.numerics): that
is the yardstick of every numeric budget. Every artifact that exists runs the same inputs with
exact-FP32 runtime settings (OpenVINO: f32 inference precision, dynamic quantization off; ONNX
Runtime: no int8-weight fusions), recorded in the report; stateful models run whole streams,
each runtime carrying its own state, and again step by step from the source's state. FP32 on
OpenVINO also runs at the plugin's default precision (bf16 where the CPU has it), reported
beside and never judged. Golden vectors go to `<out>/<name>/test_data/`.

Over 400 lines for now: the FP16-weight check and the default-precision run are the next to move
out of this module.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from zoo.errors import UsageError, ZooError
from zoo.layout import ModelLayout
from zoo.records import REPORT_SCHEMA, Report, utc_now
from zoo.stages.engine import ModelRun, Stage, code_digest, tool_versions
from zoo.stamps import manifest_part, output_checksums, read_stamp, sha256_file
from zoo.streams import run_calls
from zoo.verify.batches import extra_batch_sizes, open_batched, run_batched
from zoo.verify.golden import GOLDEN_SETS, spread, write_golden
from zoo.verify.inputs import ProbeInputs, audio_inputs, build_inputs, espeak_version, verify_seconds
from zoo.verify.judging import NUMERIC, Reference, judge_outputs
from zoo.verify.metrics import describe_failure
from zoo.verify.report import expectations as upstream_expectations
from zoo.verify.report import machine
from zoo.vocab import ARTIFACTS

if TYPE_CHECKING:
    from zoo.manifest import Manifest
    from zoo.runtimes import Runner

Feeds = dict[str, np.ndarray]
Log = Callable[[str], None]
#: the manifest fields a verification depends on
VERIFY_FIELDS = {"verify", "inputs", "outputs", "primary_output", "audio", "labels", "convert", "quantize"}


class VerifyStage(Stage):
    """Verification of every artifact present: writes report.json and the golden vectors.

    Always measured when asked (a verdict is about this machine and these runtimes, not only about
    the files); the stamp records what the report was made from, under the model folder's lock.
    """

    name = "verify"

    def __init__(
        self, reference_weights: bool, seed: int, audio: Sequence[Path] = (), threads: int | None = None
    ):
        self.asked_reference = reference_weights
        self.seed = seed
        self.audio = list(audio)
        self.threads = threads
        self.report: dict[str, Any] | None = None

    def key(self, run: ModelRun) -> dict[str, Any]:
        stamps = {kind: output_checksums(run.stamp(kind)) for kind in ARTIFACTS}
        return {
            "manifest": manifest_part(run.manifest, VERIFY_FIELDS),
            "sources": output_checksums(run.stamp("source")),
            "artifacts": {kind: sums for kind, sums in stamps.items() if sums},
            "seed": self.seed,
            "code": code_digest([p for p in Path(__file__).parent.glob("*.py")]),
            "versions": tool_versions(),
        }

    def always(self, run: ModelRun) -> bool:
        return True

    def work(self, run: ModelRun) -> tuple[list[Path], dict[str, Any]]:
        self.report = measure(run, self.asked_reference, self.seed, self.audio, self.threads)
        outputs = [run.layout.report, *sorted(p for p in run.layout.test_data.rglob("*") if p.is_file())]
        return outputs, {"passed": self.report["passed"]}


def verify_model(
    manifest: Manifest,
    out: Path,
    *,
    reference_weights: bool = False,
    seed: int = 0,
    audio: Sequence[Path] = (),
    threads: int | None = None,
    log: Log = lambda message: None,
) -> dict[str, Any]:
    """Verify every artifact of one model (the verify stage); return the report it wrote."""
    from zoo.stages.engine import RunOptions, run_model

    run = ModelRun(manifest, RunOptions(out=Path(out)), log)
    if not (run.layout.source_dir / "SOURCES.json").is_file() or not run.layout.onnx.is_file():
        # before the engine takes the model folder's lock: verifying nothing creates no folder
        raise nothing_converted(manifest, run.layout.root, out, reference_weights)
    stage = VerifyStage(reference_weights, seed, audio, threads)
    result = run_model(run, [stage])
    if result.error is not None:
        raise (UsageError if result.exit_code == 2 else ZooError)(result.error, result.exit_code)
    if stage.report is None:
        raise ZooError(f"{manifest.name}: verify made no report.")
    return stage.report


def nothing_converted(manifest: Manifest, root: Path, out: Path, reference_weights: bool) -> UsageError:
    """The error for an output folder that holds no (complete) conversion of this model."""
    return UsageError(
        f"{manifest.name}: nothing converted in {root}; run `zoo convert --name {manifest.name}"
        f"{' --reference-weights' if reference_weights else ''} -o {out}` first."
    )


def check_audio(audio: Sequence[Path]) -> list[Path]:
    """--audio recordings found and checked once, before any model loads: a bad recording is bad input."""
    if not audio:
        return []
    from zoo.audio_files import audio_files, readable

    found = audio_files(audio, "--audio")
    for path in found:
        readable(path)
    return list(found)


def verify_many(
    manifests: list[Manifest],
    out: Path,
    *,
    reference_weights: bool,
    seed: int = 0,
    audio: Sequence[Path] = (),
    threads: int | None = None,
    log: Log = lambda message: None,
) -> tuple[list[dict[str, Any]], list[str]]:
    """Verify each model; a model that cannot be verified is a failure, the others still run."""
    audio = check_audio(audio)
    reports, errors = [], []
    for manifest in manifests:
        try:
            reports.append(
                verify_model(
                    manifest,
                    out,
                    reference_weights=reference_weights,
                    seed=seed,
                    audio=audio,
                    threads=threads,
                    log=log,
                )
            )
        except UsageError:
            raise
        except ZooError as exc:
            errors.append(f"{manifest.name}: {exc.message}")
    return reports, errors


# -- measuring -----------------------------------------------------------------------------


class Measured:
    """One input set (probes or user audio) run through the source and, lazily, in float64."""

    def __init__(
        self,
        run: ModelRun,
        source: Runner,
        inputs: ProbeInputs,
        float64: Any,
        profile: tuple[int, int],
        alternatives: Sequence[Any] = (),
    ):
        """*alternatives*: further yardsticks the exported graph needs (``zoo.numerics.alternatives``:
        its float64 steps wholly in float32, its quantizers under float32 rounding)."""
        from zoo.numerics import run_probes, yardstick

        self.inputs = inputs
        self.given: list[list[Feeds]] = []
        outputs: list[list[Feeds]] = []
        for feeds in inputs.feeds:
            given, outs = run_calls(source, run.manifest, feeds)
            self.given.append(given)
            outputs.append(outs)
        sticks = None
        if float64 is not None:
            exact = run_probes(float64, inputs.feeds, run.manifest)
            others = [(m.basis, m.artifacts, run_probes(m, inputs.feeds, run.manifest)) for m in alternatives]
            sticks = yardstick(run.manifest, outputs, exact, alternatives=others)
        self.reference = Reference(inputs.names, outputs, sticks, profile, getattr(float64, "path", None))
        self.step: Reference | None = None
        if inputs.streaming and float64 is not None:
            # step by step: every call from the SOURCE's state, so errors cannot pile up along a stream
            exact_step = [[float64.run(feed) for feed in given] for given in self.given]
            others_step = [
                (m.basis, m.artifacts, [[m.run(feed) for feed in given] for given in self.given])
                for m in alternatives
            ]
            self.step = Reference(
                inputs.names,
                outputs,
                yardstick(run.manifest, outputs, exact_step, alternatives=others_step),
                profile,
            )


def _needs_float64(manifest: Manifest, kinds: list[str]) -> bool:
    return any(k in NUMERIC and _tolerance(manifest, k).get("budget") == "derived" for k in kinds)


def _tolerance(manifest: Manifest, kind: str) -> dict[str, Any]:
    tolerance = manifest.verify.tolerance.get(kind)  # type: ignore[call-overload]
    return tolerance.model_dump(exclude_none=True) if tolerance is not None else {}


def measure(
    run: ModelRun, reference_weights: bool, seed: int, audio: Sequence[Path], threads: int | None
) -> dict[str, Any]:
    """Run the source model and every artifact on the probes (and --audio); write report and golden vectors."""
    from zoo import source_folder
    from zoo.numerics import alternatives, float64_model, reduction_profile
    from zoo.runtimes import cpu_default_precision, open_source
    from zoo.versions import versions

    manifest, out, log = run.manifest, Path(run.options.out), run.log
    started = time.perf_counter()
    layout = ModelLayout(out.resolve(), manifest.name)
    sources = source_folder.read_source_set(manifest, out)
    if sources is None or not layout.onnx.is_file():
        raise nothing_converted(manifest, layout.root, out, reference_weights)
    if reference_weights and not manifest.real_weights_offline and not sources.reference_weights:
        # not asked: the source folder says how the outputs were made; asked, it must agree
        raise UsageError(
            f"{manifest.name}: the outputs in {layout.root} were made from the real weights, but verify was "
            "run with --reference-weights; drop the option (or convert again with it)."
        )
    run.sources = sources
    kinds = [k for k in ARTIFACTS if layout.artifact(k).is_file()]
    log(f"{manifest.name}: loading the {manifest.framework} source model")
    source = open_source(manifest, out, sources=sources, threads=threads)
    float64 = None
    if _needs_float64(manifest, kinds):
        log(f"{manifest.name}: loading its float64 evaluation (the yardstick of the budgets)")
        float64 = float64_model(manifest, source.model, layout.onnx)
    profile = reduction_profile(layout.onnx)
    # float64 steps cost float32 arithmetic in runtimes without float64; quantizers flip steps
    others = alternatives(layout.onnx, profile[0]) if float64 is not None else []

    probes = build_inputs(manifest, seed=seed)
    log(f"{manifest.name}: {len(probes.names)} probes, {probes.calls} calls")
    sets = {"probes": Measured(run, source, probes, float64, profile, others)}
    if audio:
        recordings = audio_inputs(manifest, audio)
        log(f"{manifest.name}: {len(recordings.names)} recordings, {recordings.calls} calls")
        sets["audio"] = Measured(run, source, recordings, float64, profile, others)

    artifacts: dict[str, dict[str, Any]] = {}
    audio_figures: dict[str, dict[str, Any]] = {}
    failures_text: list[str] = []
    for kind in kinds:
        tolerance = _tolerance(manifest, kind)
        entry, failures = _verify_artifact(manifest, kind, layout, tolerance, sets["probes"], threads)
        if kind == "FP32" and layout.artifact(kind).suffix == ".xml":
            entry["default_precision"] = _default_precision(
                manifest, layout, entry, sets["probes"], threads, cpu_default_precision()
            )
        if kind == "FP16":
            failures += _fp16_weights(manifest, layout, entry)
        artifacts[kind] = entry
        failures_text += [describe_failure(manifest.name, kind, f) for f in failures]
        saturation = _int8_saturation(layout.artifact(kind))
        if saturation is not None:
            entry["int8_saturation"] = saturation
            if failures and saturation["exact_int8_sums"] is False:
                failures_text.append(f"{manifest.name}: {kind}: {saturation['note']}")
            else:
                log(f"{manifest.name}: {kind}: {saturation['note']}")
        if "audio" in sets:
            figures, audio_failures = _verify_artifact(
                manifest, kind, layout, tolerance, sets["audio"], threads
            )
            audio_figures[kind] = figures
            failures_text += [describe_failure(manifest.name, f"{kind} (--audio)", f) for f in audio_failures]
        at_batches = "".join(
            f", batch {size}: {figures['metrics']['max_abs']:.3g}"
            for size, figures in entry.get("batches", {}).items()
        )
        log(
            f"{manifest.name}: {kind}: max_abs {entry['metrics']['max_abs']:.3g}{at_batches}"
            f"{'' if entry['passed'] else '  FAILED'}"
        )

    labels = None
    try:
        labels = manifest.read_labels(sources.directory)
    except ZooError:
        labels = None
    reference = sets["probes"].reference
    expectations = upstream_expectations(
        manifest, probes, reference.outputs, labels, bool(sources.reference_weights)
    )
    if "audio" in sets:  # an expectation may name a recording (upstream's example files) by file name
        heard = upstream_expectations(
            manifest,
            sets["audio"].inputs,
            sets["audio"].reference.outputs,
            labels,
            bool(sources.reference_weights),
        )
        expectations = [
            on_audio if on_probes.get("rank") is None and on_audio.get("rank") is not None else on_probes
            for on_probes, on_audio in zip(expectations, heard, strict=True)
        ]
    for item in expectations:
        if item["passed"] is False:
            failures_text.append(
                f"{manifest.name}: expectation: probe {item['probe']!r} ranks {item['label']!r} "
                f"at {item['rank']}, expected within the top {item['top_k']}"
            )

    if manifest.chain is not None:  # a composite: the chain end to end, when its stages are converted here
        chain = _chain_section(manifest, out, seed, threads, log)
        failures_text += chain.pop("failures")

    given = sets["probes"].given
    flat = [
        (probes.names[p], c, given[p][c], reference.outputs[p][c])
        for p in range(len(probes.names))
        for c in range(len(reference.outputs[p]))
    ]
    golden = write_golden(layout, manifest, [flat[i] for i in spread(len(flat), GOLDEN_SETS)])

    source_stamp = read_stamp(layout.stamp("source"))
    report: dict[str, Any] = {
        "schema": REPORT_SCHEMA,
        "model": manifest.name,
        "manifest_version": manifest.version,
        "manifest_sha256": manifest.digest,
        "reference_weights": bool(sources.reference_weights),
        "sources": {Path(name).name: sha for name, sha in output_checksums(source_stamp).items()}
        or {name: sha256_file(p) for name, p in sources.files.items()},
        "versions": versions(),
        "created": utc_now(),
        "reference": {
            "framework": manifest.framework,
            "runtime": source.model_type,
            "threads": source.threads,
            "float64": reference.float64_path,
            # further yardsticks: float64 steps evaluated wholly in float32, quantizers under noise
            "alternatives": [
                {
                    "basis": m.basis,
                    "path": m.path,
                    "artifacts": sorted(m.artifacts),
                    **({"steps": m.steps} if hasattr(m, "steps") else {}),
                }
                for m in others
            ],
            "reduction_profile": list(profile),
        },
        "probes": {
            "count": len(probes.names),
            "names": probes.names,
            "calls": probes.calls,
            "kind": probes.kind,
            "streaming": probes.streaming,
            "seconds": None if probes.kind == "synthetic-features" else verify_seconds(manifest),
            "sha256": probes.digest(),
            "espeak_ng": espeak_version() if probes.kind == "speech" else None,
        },
        "artifacts": artifacts,
        "expectations": expectations,
        "golden": {"path": layout.test_data.relative_to(layout.root).as_posix(), "sets": len(golden)},
        "failures": failures_text,
        "passed": not failures_text,
        "seconds": round(time.perf_counter() - started, 3),
        "threads": threads,
        "machine": machine(),  # the CPU and the kernel restrictions (ISA variables) this run had
    }
    if manifest.chain is not None:
        report["chain"] = chain
    if "audio" in sets:
        recordings = sets["audio"].inputs
        report["audio"] = {
            "files": recordings.names,
            "calls": recordings.calls,
            "sha256": recordings.digest(),
            "artifacts": audio_figures,
        }
    Report.model_validate(report).write(layout.report)
    return report


def _chain_section(manifest: Manifest, out: Path, seed: int, threads: int | None, log: Log) -> dict[str, Any]:
    """zoo.composite.verify's section of the report (with its failures under "failures")."""
    from zoo.composite.verify import chain_failures, verify_chain

    try:
        section = verify_chain(manifest, out, seed=seed, threads=threads, log=log)
    except UsageError as exc:  # the embedder is not in this catalog, or its outputs are incomplete
        section = {"checked": False, "reason": exc.message}
    if not section["checked"]:
        log(f"{manifest.name}: chain not checked: {section['reason']}")
    return {**section, "failures": chain_failures(manifest, section) if section["checked"] else []}


def _open(kind: str, path: Path, threads: int | None, hint: str | None, exact: bool) -> Runner:
    from zoo.runtimes import open_artifact

    return open_artifact(path, kind, hint=hint, threads=threads, exact=exact)


def _run(
    manifest: Manifest, runner: Runner, measured: Measured
) -> tuple[list[list[Feeds]], list[list[Feeds]] | None]:
    """(the artifact's outputs carrying its own state, and step by step from the source's state)."""
    stream = [run_calls(runner, manifest, feeds)[1] for feeds in measured.inputs.feeds]
    step = None
    if measured.step is not None:
        step = [[runner.run(feed) for feed in given] for given in measured.given]
    return stream, step


def _int8_saturation(artifact: Path) -> dict[str, Any] | None:
    """For an IR that runs int8 kernels: its layers with 8-bit weights and whether this run's
    kernels add their products exactly (VNNI) or in saturating 16-bit lanes."""
    if artifact.suffix != ".xml":
        return None  # ONNX artifacts are verified with ONNX Runtime's int8 fusions off
    from zoo.runtimes.int8_kernels import exact_int8_sums, explain, ir_saturation_risk

    risk = ir_saturation_risk(artifact)
    exact = exact_int8_sums()
    note = explain(risk, exact)
    return None if note is None else {**risk.as_record(exact), "note": note}


def _verify_artifact(
    manifest: Manifest,
    kind: str,
    layout: ModelLayout,
    tolerance: dict[str, Any],
    measured: Measured,
    threads: int | None,
    hint: str | None = "f32",
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """One artifact's entry of the report (every output's verdict) and its failures."""
    path = layout.artifact(kind)
    # ONNX, FP32 and FP16 run exactly as float32 (no implicit int8 or bf16); INT8 runs its own kernels
    runner = _open(kind, path, threads, hint, exact=kind != "INT8" and hint is not None)
    stream, step = _run(manifest, runner, measured)
    main = manifest.main_output.name
    for outs in stream:
        for out in outs:
            if main not in out:
                raise ZooError(
                    f"{manifest.name}: {kind} artifact {path.name} has no output {main!r} "
                    f"(it has {sorted(out)}); convert again."
                )
    outputs, failures = judge_outputs(manifest, kind, tolerance, measured.reference, stream)
    entry: dict[str, Any] = {
        "path": path.relative_to(layout.root).as_posix(),
        "sha256": sha256_file(path),
        "runtime": runner.runtime,
        "runtime_config": dict(getattr(runner, "config", {}) or {}),
        "metrics": outputs[main]["metrics"],
        "outputs": outputs,
        "other_outputs": {
            name: {"max_abs": v["metrics"]["max_abs"], "cosine_min": v["metrics"]["cosine_min"]}
            for name, v in outputs.items()
            if name != main
        },
        "tolerance": tolerance,
    }
    batches: dict[str, dict[str, Any]] = {}
    for batch in extra_batch_sizes(manifest) if hint is not None else []:
        # the same rules, against the same source outputs: an item must not depend on its batch
        batched = open_batched(path, kind, batch, threads, hint, exact=kind != "INT8")
        got = run_batched(batched, measured.given, batch, f"{manifest.name}: {kind} artifact {path.name}")
        batch_outputs, batch_failures = judge_outputs(manifest, kind, tolerance, measured.reference, got)
        for failure in batch_failures:
            failure["batch"] = batch
        batches[str(batch)] = {"metrics": batch_outputs[main]["metrics"], "passed": not batch_failures}
        failures += batch_failures
    if batches:
        entry["batches"] = batches
    if step is not None and measured.step is not None:
        step_outputs, step_failures = judge_outputs(manifest, kind, tolerance, measured.step, step)
        for failure in step_failures:
            failure["mode"] = "step"
        entry["step"] = {"outputs": step_outputs, "passed": not step_failures}
        failures += step_failures
    entry["passed"] = not failures
    entry["failures"] = failures
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
    return entry, failures


def _default_precision(
    manifest: Manifest,
    layout: ModelLayout,
    hinted: dict[str, Any],
    measured: Measured,
    threads: int | None,
    cpu_default: str,
) -> dict[str, Any]:
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
    try:
        default, _ = _verify_artifact(manifest, "FP32", layout, {}, measured, threads, hint=None)
    except ZooError as exc:
        capped = {
            k: v for k, v in machine()["isa_env"].items() if k in ("ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA")
        }
        if not capped:
            raise
        # the plugin reads the CPU's bf16 from CPUID and picks it; oneDNN capped below AVX-512 has no
        # bf16 kernels, so the default cannot compile here (a fact of this run, not of the IR)
        return {
            "precision": cpu_default,
            "cpu_default": cpu_default,
            "metrics": {},
            "judged": False,
            "not_measured": f"cannot compile at the plugin's default precision under {capped}: {exc.message}",
        }
    return {
        "precision": default.get("precision"),
        "cpu_default": cpu_default,
        "metrics": default["metrics"],
        "runtime_config": default["runtime_config"],
        "judged": False,
    }


def float16_weight_elements(xml: Path) -> int:
    """How many weight values of an IR are stored as float16 (0: an "FP16" IR in name only)."""
    from zoo.runtimes import openvino_core

    model = openvino_core().read_model(str(xml))
    count = 0
    for op in model.get_ordered_ops():
        if op.get_type_name() == "Constant" and op.get_element_type().get_type_name() == "f16":
            consumers = {t.get_node().get_type_name() for t in op.output(0).get_target_inputs()}
            # compressed weights are decompressed by a Convert; an f16 scale of integer weights is not
            if consumers == {"Convert"}:
                count += int(np.prod(list(op.get_output_shape(0))))
    return count


def _fp16_weights(manifest: Manifest, layout: ModelLayout, entry: dict[str, Any]) -> list[dict[str, Any]]:
    """An FP16 IR must hold float16 weights, unless the manifest says why it need not."""
    count = float16_weight_elements(layout.ir_xml("FP16"))
    entry["float16_weights"] = count
    if count > 0:
        return []
    reason = manifest.verify.fp16_without_float16
    if reason:
        entry["note"] = f"holds no float16 weights: {reason}"
        return []
    failure = {
        "metric": "float16_weights",
        "measured": 0,
        "tolerance": "> 0",
        "rule": "the FP16 IR holds no float16 weights (its weights are integer or kept in FP32); say why in "
        "verify.fp16_without_float16 or do not make FP16",
    }
    entry["passed"] = False
    entry["failures"] = [*entry["failures"], failure]
    return [failure]
