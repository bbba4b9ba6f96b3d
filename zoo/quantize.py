"""`zoo quantize`: post-training INT8 of the FP32 IR with NNCF, written to <out>/<name>/INT8/.

Calibration audio (the user's --calibration folder, else the probe set's
"calibration" kind; for streaming entries also speech streams) goes through the
manifest's host preprocessing; streaming entries run the FP32 model through each
stream so every calibration item carries the recurrent state it would really see.
Ignored scope, preset, subset size and mode (full INT8, or weights-only
`compress_weights`) come from the manifest; --preset and --subset-size override.

With --max-drop or --dataset the quantization is accuracy-controlled
(nncf.quantize_with_accuracy_control): NNCF reverts the layers that cost most
until the metric drops by at most --max-drop (absolute). The metric is top-1
accuracy on the labelled --dataset folder (detection accuracy for detectors), or
without labels the agreement with the FP32 model on the calibration set (top-1 per
clip, thresholded decision per chunk for VAD). The drop of the result is measured
again here: a bound NNCF could not meet, or a "fallback" that reverted every
quantized layer, fails the run and writes nothing.

Every run measures the INT8 model's agreement with FP32 on the calibration set and
records it, with all options, in the stage stamp `<out>/<name>/stamps/INT8.json`;
an up-to-date INT8 is not redone. `zoo verify` then judges INT8 against the source
framework with the manifest's INT8 tolerance.
"""

from __future__ import annotations

import contextlib
import hashlib
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from zoo.errors import EXIT_FAILED, UsageError, ZooError
from zoo.evaluate import (
    AUDIO_SUFFIXES,
    FileResult,
    clip_scores,
    decision_threshold,
    is_detector,
    predict,
    read_audio,
    read_classes,
    read_dataset,
)
from zoo.layout import ModelLayout
from zoo.stages.engine import ModelRun, Stage
from zoo.streams import run_calls, run_stream
from zoo.vocab import IR_PRECISIONS

if TYPE_CHECKING:
    from zoo.manifest import Manifest
    from zoo.runtimes import OpenVinoRunner

STAGE = "INT8"
CALIBRATION_PROBES = 100
STREAM_PROBES = 20
STREAM_PROBE_SECONDS = 2.0
STREAM_SPEECH_SECONDS = 10.0
MANIFEST_FIELDS = {"quantize", "inputs", "outputs", "primary_output", "audio", "verify", "labels"}
#: OpenVINO op types (the manifest's vocabulary) -> ONNX op types, for the QDQ ONNX ignored scope
ONNX_TYPES = {
    "Power": "Pow",
    "Multiply": "Mul",
    "Divide": "Div",
    "Subtract": "Sub",
    "Convolution": "Conv",
    "GroupConvolution": "Conv",
    "ReduceMean": "ReduceMean",
    "Sigmoid": "Sigmoid",
    "Tanh": "Tanh",
    "Add": "Add",
    "Sqrt": "Sqrt",
    "Concat": "Concat",
    "Gather": "Gather",
    "Squeeze": "Squeeze",
    "MatMul": "MatMul",
    "Relu": "Relu",
    "Softmax": "Softmax",
    "Transpose": "Transpose",
}


@dataclass
class QuantizeOptions:
    """What `zoo quantize` was asked."""

    out: Path
    calibration: Path | None = None
    subset_size: int | None = None
    preset: str | None = None
    max_drop: float | None = None
    dataset: Path | None = None
    force: bool = False
    seed: int = 0
    debug: bool = False
    reference_weights: bool = False  # used when the model must be converted first
    weights: Path | None = None


@dataclass
class Sample:
    """One unit of calibration or validation: a file or probe as the network calls it makes."""

    name: str
    feeds: list[dict[str, np.ndarray]]
    label: int | None = None


@dataclass
class QuantizeResult:
    model: str
    status: str  # done | up to date | skipped | failed
    mode: str | None = None
    seconds: float = 0.0
    detail: str = ""
    calibration: str | None = None
    subset_size: int | None = None
    preset: str | None = None
    quantizers: int | None = None
    agreement: float | None = None
    agreement_metric: str | None = None
    qdq_agreement: float | None = None
    accuracy_control: dict | None = None
    outputs: list[str] = field(default_factory=list)
    error: str | None = None
    exit_code: int = 0


# -- data ---------------------------------------------------------------------------------------


def audio_files(directory: Path) -> list[Path]:
    if not directory.is_dir():
        raise UsageError(f"--calibration {directory}: not a folder of audio files.")
    found = sorted(
        p
        for p in directory.rglob("*")
        if p.is_file() and p.suffix.lower() in AUDIO_SUFFIXES and not p.name.startswith(".")
    )
    if not found:
        raise UsageError(f"--calibration {directory}: holds no audio files ({', '.join(AUDIO_SUFFIXES)}).")
    return found


def files_digest(paths: list[Path], root: Path) -> str:
    """sha256 over the relative names and contents of files: what a calibration or dataset folder holds."""
    from zoo.stamps import sha256_file

    digest = hashlib.sha256()
    for path in paths:
        digest.update(path.relative_to(root).as_posix().encode() + b"\0" + sha256_file(path).encode() + b"\n")
    return digest.hexdigest()


def calibration_seconds(manifest: Manifest) -> float:
    """How long each calibration probe of a clip model is: one clip, else one call of a static input."""
    if manifest.audio.clip is not None:
        return float(manifest.audio.clip.seconds)
    spec = manifest.inputs[0]
    if spec.static:
        return float(np.prod(spec.shape)) / manifest.audio.sample_rate
    return 1.0


def calibration_samples(
    manifest, options: QuantizeOptions, subset_size: int
) -> tuple[list[Sample], str, str]:
    """(samples, a description for people, a digest for the stamp) of the calibration audio."""
    from zoo.bars import bar
    from zoo.frontends import frontend_for, prepare_inputs, synthetic_feature_inputs
    from zoo.probes import probe_set

    rate = manifest.audio.sample_rate
    if options.calibration is not None:
        root = Path(options.calibration)
        paths = audio_files(root)
        samples = []
        with bar(f"{manifest.name}: reading calibration audio", len(paths)) as progress:
            for path in paths:
                audio, file_rate = read_audio(path)
                samples.append(
                    Sample(path.relative_to(root).as_posix(), prepare_inputs(manifest, audio, file_rate))
                )
                progress.advance()
        return samples, f"{len(paths)} files from {root}", "files:" + files_digest(paths, root)
    if not frontend_for(manifest).takes_audio:
        count = max(CALIBRATION_PROBES, subset_size)
        feeds = synthetic_feature_inputs(manifest, count, options.seed + 1)
        return (
            [Sample(f"synthetic-{i + 1}", [f]) for i, f in enumerate(feeds)],
            f"{count} synthetic feature inputs",
            f"synthetic:{count}:{options.seed}",
        )
    if manifest.audio.streaming:
        probes = probe_set(
            rate, STREAM_PROBE_SECONDS, "calibration", seed=options.seed + 1, count=STREAM_PROBES
        )
        probes += probe_set(rate, STREAM_SPEECH_SECONDS, "speech", seed=options.seed + 1)
        how = f"{len(probes)} calibration and speech probe streams"
    else:
        count = max(CALIBRATION_PROBES, subset_size)
        probes = probe_set(
            rate, calibration_seconds(manifest), "calibration", seed=options.seed + 1, count=count
        )
        how = f"{len(probes)} calibration probes of {calibration_seconds(manifest):g} s"
    samples = [Sample(p.name, prepare_inputs(manifest, p.audio, rate)) for p in probes]
    digest = hashlib.sha256(b"".join(np.ascontiguousarray(p.audio).tobytes() for p in probes)).hexdigest()
    return samples, how, f"probes:{digest}"


def labelled_samples(manifest, out: Path, dataset_dir: Path) -> tuple[list[Sample], str]:
    """The --dataset folder as labelled samples, and a digest of its files."""
    from zoo.frontends import prepare_inputs

    dataset = read_dataset(dataset_dir, read_classes(manifest, out), detector=is_detector(manifest))
    samples = []
    for item in dataset.files:
        audio, rate = read_audio(item.path)
        samples.append(
            Sample(
                item.path.relative_to(dataset.directory).as_posix(),
                prepare_inputs(manifest, audio, rate),
                item.label,
            )
        )
    return samples, files_digest([f.path for f in dataset.files], dataset.directory)


def spread(items: list, count: int) -> list:
    """*count* items evenly spread over the list (all of them when there are fewer)."""
    if len(items) <= count:
        return list(items)
    index = np.linspace(0, len(items) - 1, count).round().astype(int)
    return [items[i] for i in index]


def calibration_items(
    reference, manifest, samples: list[Sample], subset_size: int
) -> list[dict[str, np.ndarray]]:
    """Complete feeds for NNCF: streams are run through FP32 so each chunk carries its real state."""
    from zoo.bars import bar

    items: list[dict[str, np.ndarray]] = []
    if not manifest.audio.streaming:
        for sample in samples:
            items += sample.feeds
        return spread(items, subset_size)
    with bar(f"{manifest.name}: recurrent state of the calibration streams", len(samples)) as progress:
        for sample in samples:
            items += run_stream(reference, manifest, sample.feeds)[0]
            progress.advance()
    return spread(items, subset_size)


# -- models ---------------------------------------------------------------------------------------


def compile_f32(model) -> OpenVinoRunner:
    """An ov.Model compiled on the CPU plugin at f32, as a Runner."""
    from zoo.runtimes import OpenVinoRunner

    return OpenVinoRunner(model, hint="f32", label=f"{model.get_friendly_name()} (OpenVINO, f32)")


def count_quantizers(model) -> int:
    """FakeQuantize ops (full INT8) or compressed-weight constants (weights-only)."""
    quantizers = 0
    for op in model.get_ordered_ops():
        kind = op.get_type_name()
        if kind == "FakeQuantize" or (
            kind == "Constant" and op.get_element_type().get_type_name() in ("i8", "u8")
        ):
            quantizers += 1
    return quantizers


def ignored_scope(manifest, onnx: bool = False):
    import nncf

    scope = manifest.quantize.ignored_scope
    types = list(scope.types)
    if onnx:
        types = sorted({ONNX_TYPES.get(t, t) for t in types})
    # validate=False: a type the graph does not have (after the converter's fusions) is not an error
    return nncf.IgnoredScope(
        names=list(scope.names), patterns=list(scope.patterns), types=types, validate=False
    )


# -- metrics ---------------------------------------------------------------------------------------


def call_agreement(manifest, reference: list[dict], candidate: list[dict]) -> list[float]:
    """Per call: same top-1 class (classifiers) or same side of the threshold (detectors)."""
    ref, got = clip_scores(manifest, reference), clip_scores(manifest, candidate)
    if is_detector(manifest) or ref.shape[1] == 1:
        threshold = decision_threshold(manifest)
        return [float(a) for a in ((ref[:, 0] >= threshold) == (got[:, 0] >= threshold))]
    return [float(a) for a in (ref.argmax(axis=1) == got.argmax(axis=1))]


class Metric:
    """The accuracy-control metric over samples: labelled accuracy, or agreement with FP32."""

    def __init__(self, manifest, samples: list[Sample], reference_model=None):
        self.manifest = manifest
        self.samples = samples
        self.labelled = all(s.label is not None for s in samples)
        self.name = (
            ("accuracy" if is_detector(manifest) else "top1")
            if self.labelled
            else ("decision agreement with FP32" if is_detector(manifest) else "top-1 agreement with FP32")
        )
        self.reference = None
        if not self.labelled:
            if reference_model is None:
                raise ZooError("an agreement metric needs the FP32 model's outputs")
            self.reference = [run_calls(reference_model, manifest, s.feeds)[1] for s in samples]

    def item_value(self, model, index: int) -> tuple[float, int]:
        """(value, weight) of one sample: correct or not for a labelled file; share of agreeing calls."""
        sample = self.samples[index]
        if self.labelled:
            result: FileResult = predict(model, self.manifest, sample.feeds)
            if is_detector(self.manifest):
                correct = bool(result.detected) == (sample.label >= 0)
            else:
                correct = int(np.argmax(result.scores)) == sample.label
            return float(correct), 1
        agree = call_agreement(
            self.manifest, self.reference[index], run_calls(model, self.manifest, sample.feeds)[1]
        )
        return float(np.mean(agree)), len(agree)

    def evaluate(
        self, model, indices: list[int] | None = None, describe: str | None = None
    ) -> tuple[float, list[float]]:
        """(metric, per-sample values): the metric weights each sample by its calls (agreement) or 1.

        With *describe*, a progress bar shows the samples going by.
        """
        from zoo.bars import bar

        values, weights = [], []
        chosen = list(range(len(self.samples))) if indices is None else list(indices)
        with bar(describe or "", len(chosen), enabled=describe is not None) as progress:
            for index in chosen:
                value, weight = self.item_value(model, index)
                values.append(value)
                weights.append(weight)
                progress.advance()
        metric = float(np.average(values, weights=weights)) if values else float("nan")
        return metric, values

    def validation_fn(self, compiled, items) -> tuple[float, list[float]]:
        """NNCF's signature: (compiled model, iterable of sample indices) -> (metric, per-item values)."""
        from zoo.runtimes import OpenVinoRunner

        runner = OpenVinoRunner(compiled, label="the model NNCF validates")
        return self.evaluate(runner, [int(i) for i in items])


# -- the stage ---------------------------------------------------------------------------------------


@contextlib.contextmanager
def nncf_to_stderr(verbose: bool):
    """NNCF logs and draws its bars on stdout; keep stdout for our tables and --json."""
    import logging

    import nncf
    from nncf.common.logging.logger import nncf_logger

    handlers = [h for h in nncf_logger.handlers if isinstance(h, logging.StreamHandler)]
    streams = [h.stream for h in handlers]
    for handler in handlers:
        handler.setStream(sys.stderr)
    nncf.set_log_level(logging.INFO if verbose else logging.WARNING)
    try:
        with contextlib.redirect_stdout(sys.stderr):
            yield
    finally:
        for handler, stream in zip(handlers, streams, strict=True):
            handler.setStream(stream)


def _versions() -> dict:
    from zoo.versions import versions

    return {
        k: v
        for k, v in versions().items()
        if k in ("zoo", "openvino", "nncf", "onnx", "onnxruntime", "numpy")
    }


def stage_key(
    manifest,
    layout: ModelLayout,
    options: QuantizeOptions,
    subset_size: int,
    preset: str,
    calibration_digest: str,
    dataset_digest: str | None,
) -> dict:
    from zoo.stamps import manifest_part, sha256_file

    fp32 = layout.ir_xml("FP32")
    return {
        "manifest": manifest_part(manifest, MANIFEST_FIELDS),
        "fp32": {"xml": sha256_file(fp32), "bin": sha256_file(fp32.with_suffix(".bin"))},
        "onnx": sha256_file(layout.onnx) if manifest.quantize.onnx_qdq and layout.onnx.is_file() else None,
        "subset_size": subset_size,
        "preset": preset,
        "mode": manifest.quantize.mode,
        "max_drop": options.max_drop,
        "calibration": calibration_digest,
        "dataset": dataset_digest,
        "seed": options.seed,
        "code": sha256_file(__file__),
        "versions": _versions(),
    }


def resolve(manifest, options: QuantizeOptions) -> tuple[int, str]:
    subset_size = options.subset_size or manifest.quantize.subset_size
    if subset_size < 1:
        raise UsageError(f"--subset-size must be at least 1, got {subset_size}.")
    preset = options.preset or manifest.quantize.preset
    if preset not in ("performance", "mixed"):
        raise UsageError(f"--preset must be 'performance' or 'mixed', got {preset!r}.")
    if options.max_drop is not None and not 0 <= options.max_drop < 1:
        raise UsageError(
            f"--max-drop is an absolute drop of a 0..1 metric (e.g. 0.01), got {options.max_drop}."
        )
    return subset_size, preset


class Int8Stage(Stage):
    """The INT8 IR, quantized by NNCF from the FP32 IR; its stamp records every option and figure."""

    name = STAGE
    requires = ("FP32",)

    def __init__(
        self,
        options: QuantizeOptions,
        subset_size: int,
        preset: str,
        samples: list[Sample],
        calibration: tuple[str, str],
        labelled: tuple[list[Sample] | None, str | None],
    ):
        self.options = options
        self.subset_size = subset_size
        self.preset = preset
        self.samples = samples
        self.calibration_how, self.calibration_digest = calibration
        self.labelled, self.dataset_digest = labelled
        self.result: QuantizeResult | None = None

    def key(self, run: ModelRun) -> dict:
        return stage_key(
            run.manifest,
            run.layout,
            self.options,
            self.subset_size,
            self.preset,
            self.calibration_digest,
            self.dataset_digest,
        )

    def always(self, run: ModelRun) -> bool:
        return self.options.force

    def reuse(self, run: ModelRun) -> bool:
        stamp = run.stamp(STAGE)
        if stamp is None:
            return False
        facts = stamp.fact("quantization") or {}
        self.result = QuantizeResult(
            run.manifest.name,
            "up to date",
            mode=run.manifest.quantize.mode,
            calibration=self.calibration_how,
            subset_size=self.subset_size,
            preset=self.preset,
            quantizers=facts.get("quantizers"),
            agreement=facts.get("agreement"),
            agreement_metric=facts.get("agreement_metric"),
            qdq_agreement=facts.get("qdq_agreement"),
            accuracy_control=facts.get("accuracy_control"),
            outputs=sorted(stamp.outputs),
        )
        return True

    def work(self, run: ModelRun) -> tuple[list[Path], dict]:
        manifest, layout, options = run.manifest, run.layout, self.options
        run.log(f"{manifest.name}: INT8: calibrating on {self.calibration_how}")
        controlled = options.max_drop is not None or options.dataset is not None
        with nncf_to_stderr(verbose=options.debug or controlled):
            result = _quantize(
                manifest, layout, options, self.samples, self.labelled, self.subset_size, self.preset, run.log
            )
        result.calibration = self.calibration_how
        outputs = [layout.ir_xml(STAGE), layout.ir_bin(STAGE)]
        if manifest.quantize.onnx_qdq:
            outputs.append(qdq_path(layout))
        facts = {
            "mode": result.mode,
            "preset": self.preset,
            "subset_size": self.subset_size,
            "calibration": self.calibration_how,
            "quantizers": result.quantizers,
            "agreement": result.agreement,
            "agreement_metric": result.agreement_metric,
            "qdq_agreement": result.qdq_agreement,
            "accuracy_control": result.accuracy_control,
            "ignored_scope": manifest.quantize.ignored_scope.model_dump(mode="json"),
        }
        result.outputs = [p.relative_to(layout.root).as_posix() for p in outputs]
        self.result = result
        return outputs, {"quantization": facts}


def quantize_model(manifest, options: QuantizeOptions, log: Callable[[str], None]) -> QuantizeResult:
    """Make (or confirm up to date) the INT8 IR of one model; the engine converts what is missing first."""
    from zoo.pipeline import conversion_stages
    from zoo.stages.engine import ModelRun, RunOptions, run_model

    name = manifest.name
    if not manifest.quantize.enabled:
        log(f"{name}: INT8: skipped (quantize.enabled is false in its manifest)")
        return QuantizeResult(name, "skipped", detail="quantize.enabled: false")
    subset_size, preset = resolve(manifest, options)
    controlled = options.max_drop is not None or options.dataset is not None
    if controlled and manifest.quantize.mode == "weights":
        raise UsageError(
            f"{manifest.path}: quantize.mode is 'weights' (weights-only compression, no calibration), which "
            "has no accuracy control; drop --max-drop/--dataset or set quantize.mode: full."
        )
    max_drop = options.max_drop if options.max_drop is not None else (0.01 if controlled else None)
    options = QuantizeOptions(**{**options.__dict__, "max_drop": max_drop})

    samples, calibration_how, calibration_digest = calibration_samples(manifest, options, subset_size)
    labelled, dataset_digest = (None, None)
    if options.dataset is not None:
        labelled, dataset_digest = labelled_samples(manifest, Path(options.out), Path(options.dataset))
    run = ModelRun(
        manifest,
        RunOptions(
            out=Path(options.out),
            weights=options.weights,
            reference_weights=options.reference_weights,
            seed=options.seed,
            debug=options.debug,
        ),
        log,
    )
    int8 = Int8Stage(
        options,
        subset_size,
        preset,
        samples,
        (calibration_how, calibration_digest),
        (labelled, dataset_digest),
    )
    # what `zoo convert` makes (the INT8 IR is quantized from the FP32 IR, the QDQ model from the ONNX)
    precisions = [p for p in IR_PRECISIONS if p == "FP32" or p in manifest.convert.openvino.precisions]
    result = run_model(run, [*conversion_stages(manifest, precisions), int8])
    if result.error is not None:
        stage = result.failed_stage or "?"
        message = result.error if stage == STAGE else f"{stage} (before quantizing): {result.error}"
        raise (UsageError if result.exit_code == 2 else ZooError)(message, result.exit_code)
    if int8.result is None:
        raise ZooError(f"{name}: INT8: the stage made no result.")
    int8.result.seconds = sum(s.seconds for s in result.stages if s.stage == STAGE)
    if int8.result.status == "done":
        log(
            f"{name}: INT8: done in {int8.result.seconds:.1f} s "
            f"({int8.result.agreement_metric} {int8.result.agreement:.4f})"
        )
    return int8.result


def qdq_path(layout: ModelLayout) -> Path:
    return layout.ir_dir(STAGE) / f"{layout.name}.onnx"


def _quantize(
    manifest,
    layout: ModelLayout,
    options: QuantizeOptions,
    samples: list[Sample],
    labelled: list[Sample] | None,
    subset_size: int,
    preset: str,
    log,
) -> QuantizeResult:
    import nncf

    from zoo.runtimes import OnnxRuntimeRunner, openvino_core

    core = openvino_core()
    fp32_model = core.read_model(str(layout.ir_xml("FP32")))
    reference = compile_f32(fp32_model)
    mode = manifest.quantize.mode
    result = QuantizeResult(manifest.name, "done", mode=mode, subset_size=subset_size, preset=preset)
    scope = ignored_scope(manifest)
    items = calibration_items(reference, manifest, samples, subset_size) if mode == "full" else []
    nncf_preset = nncf.QuantizationPreset.MIXED if preset == "mixed" else nncf.QuantizationPreset.PERFORMANCE

    if mode == "weights":
        quantized = nncf.compress_weights(
            fp32_model, mode=nncf.CompressWeightsMode.INT8_ASYM, ignored_scope=scope
        )
    elif options.max_drop is None:
        quantized = nncf.quantize(
            fp32_model, nncf.Dataset(items), preset=nncf_preset, subset_size=len(items), ignored_scope=scope
        )
    else:
        quantized, result.accuracy_control = _accuracy_controlled(
            manifest,
            fp32_model,
            reference,
            items,
            labelled or samples,
            options.max_drop,
            nncf_preset,
            scope,
            log,
        )
    result.quantizers = count_quantizers(quantized)
    if result.quantizers == 0:
        raise ZooError(
            f"{manifest.name}: NNCF quantized nothing (no FakeQuantize and no INT8 weights in the result): the "
            "ignored scope in quantize.ignored_scope may cover every layer. Nothing was written.",
            EXIT_FAILED,
        )
    int8 = compile_f32(quantized)
    agreement = Metric(manifest, samples, reference)
    result.agreement, _ = agreement.evaluate(int8, describe=f"{manifest.name}: INT8 agreement with FP32")
    result.agreement_metric = agreement.name.replace(" with FP32", "")

    qdq = None
    if manifest.quantize.onnx_qdq:
        qdq = _quantize_onnx(manifest, layout, items, nncf_preset, subset_size)
        result.qdq_agreement, _ = agreement.evaluate(OnnxRuntimeRunner(qdq, label="QDQ ONNX model"))
        log(f"{manifest.name}: INT8: QDQ ONNX {result.agreement_metric} {result.qdq_agreement:.4f}")
    _save(manifest, layout, quantized, qdq, result, options)
    return result


def _accuracy_controlled(
    manifest, fp32_model, reference, items, validation: list[Sample], max_drop: float, preset, scope, log
) -> tuple[object, dict]:
    """nncf.quantize_with_accuracy_control, then our own measurement of the drop it reached."""
    import nncf
    from nncf.quantization.advanced_parameters import AdvancedAccuracyRestorerParameters

    metric = Metric(manifest, validation, reference)
    initial, _ = metric.evaluate(reference)
    log(
        f"{manifest.name}: INT8: accuracy control on {len(validation)} samples, metric {metric.name}, "
        f"FP32 {initial:.4f}, --max-drop {max_drop:g}"
    )
    quantized = nncf.quantize_with_accuracy_control(
        fp32_model,
        calibration_dataset=nncf.Dataset(items),
        validation_dataset=nncf.Dataset(list(range(len(validation)))),
        validation_fn=metric.validation_fn,
        max_drop=max_drop,
        drop_type=nncf.DropType.ABSOLUTE,
        preset=preset,
        subset_size=len(items),
        ignored_scope=scope,
        advanced_accuracy_restorer_parameters=AdvancedAccuracyRestorerParameters(num_ranking_workers=1),
    )
    plain = nncf.quantize(
        fp32_model, nncf.Dataset(items), preset=preset, subset_size=len(items), ignored_scope=scope
    )
    full_count, kept = count_quantizers(plain), count_quantizers(quantized)
    final, _ = metric.evaluate(
        compile_f32(quantized), describe=f"{manifest.name}: {metric.name}, controlled INT8"
    )
    plain_metric, _ = metric.evaluate(
        compile_f32(plain), describe=f"{manifest.name}: {metric.name}, plain INT8"
    )
    facts = {
        "metric": metric.name,
        "samples": len(validation),
        "max_drop": max_drop,
        "fp32": initial,
        "int8_plain": plain_metric,
        "int8": final,
        "drop": initial - final,
        "quantizers_plain": full_count,
        "quantizers_kept": kept,
        "reverted": full_count - kept,
    }
    check_drop(manifest.name, facts)
    log(
        f"{manifest.name}: INT8: {metric.name}: FP32 {initial:.4f}, plain INT8 {plain_metric:.4f}, "
        f"controlled INT8 {final:.4f} (drop {facts['drop']:.4f} <= {max_drop:g}); {full_count - kept} of "
        f"{full_count} quantizers reverted"
    )
    return quantized, facts


def check_drop(model: str, facts: dict) -> None:
    """Fail loudly when accuracy control missed its bound or fell back to floating point everywhere.

    NNCF only logs these outcomes and returns a model anyway; an INT8 artifact must not be written
    on a bound that does not hold, nor be an FP32 model under the INT8 name.
    """
    name, bound = facts["metric"], facts["max_drop"]
    if facts["quantizers_kept"] == 0:
        raise ZooError(
            f"{model}: accuracy-controlled quantization fell back to floating point everywhere: to keep the "
            f"drop of {name} within --max-drop {bound:g} (FP32 {facts['fp32']:.4f}, plain INT8 "
            f"{facts['int8_plain']:.4f}) NNCF reverted all {facts['quantizers_plain']} quantizers, so there is no "
            "INT8 model. Nothing was written; loosen --max-drop, calibrate on more representative audio, or use "
            "quantize.mode: weights.",
            EXIT_FAILED,
        )
    if facts["drop"] > bound + 1e-9:
        raise ZooError(
            f"{model}: accuracy-controlled quantization missed --max-drop {bound:g}: {name} FP32 "
            f"{facts['fp32']:.4f}, INT8 {facts['int8']:.4f} (drop {facts['drop']:.4f}) with "
            f"{facts['quantizers_kept']} of {facts['quantizers_plain']} quantizers kept. Nothing was written; "
            "loosen --max-drop or calibrate on more representative audio.",
            EXIT_FAILED,
        )


def _quantize_onnx(manifest, layout: ModelLayout, items, preset, subset_size: int):
    """The QDQ ONNX model (nncf.quantize on the ONNX export, same calibration items)."""
    import nncf
    import onnx

    model = onnx.load(str(layout.onnx))
    names = {i.name for i in model.graph.input}
    feeds = [{k: v for k, v in item.items() if k in names} for item in items]
    return nncf.quantize(
        model,
        nncf.Dataset(feeds),
        preset=preset,
        subset_size=min(subset_size, len(feeds)),
        ignored_scope=ignored_scope(manifest, onnx=True),
    )


def _save(
    manifest, layout: ModelLayout, quantized, qdq, result: QuantizeResult, options: QuantizeOptions
) -> None:
    """The INT8 folder, built aside and swapped into place: IR (+ QDQ ONNX), labels and options in rt_info."""
    import json
    import os

    import openvino as ov

    from zoo.atomic import atomic_dir
    from zoo.ir import annotate

    try:
        labels = read_classes(manifest, Path(options.out))
    except ZooError:
        labels = None
    annotate(quantized, manifest, labels)
    quantized.set_rt_info(
        json.dumps(
            {
                "tool": "nncf",
                "mode": result.mode,
                "preset": result.preset,
                "subset_size": result.subset_size,
                "ignored_scope": manifest.quantize.ignored_scope.model_dump(mode="json"),
                "max_drop": options.max_drop,
            },
            sort_keys=True,
        ),
        ["zoo", "quantization"],
    )
    with atomic_dir(layout.ir_dir(STAGE)) as folder:
        target = folder / layout.ir_xml(STAGE).name
        ov.save_model(quantized, str(target), compress_to_fp16=False)
        written = [target, target.with_suffix(".bin")]
        if qdq is not None:
            import onnx

            onnx_target = folder / qdq_path(layout).name
            onnx.save(qdq, str(onnx_target))
            written.append(onnx_target)
        for path in written:
            with open(path, "rb") as handle:
                os.fsync(handle.fileno())


def quantize_many(
    manifests: list, options: QuantizeOptions, log: Callable[[str], None]
) -> list[QuantizeResult]:
    """Quantize each selected model; a failure is recorded and the others still run (bad input stops all)."""
    if options.calibration is not None:
        audio_files(Path(options.calibration))  # a bad folder fails before any work
    if options.weights is not None and len(manifests) != 1:
        raise UsageError("--weights PATH applies to one model: select exactly one with --name.")
    results = []
    for manifest in manifests:
        try:
            results.append(quantize_model(manifest, options, log))
        except UsageError:
            raise
        except ZooError as exc:
            log(f"{manifest.name}: INT8: FAILED: {exc.message}")
            results.append(
                QuantizeResult(manifest.name, "failed", error=exc.message, exit_code=exc.exit_code)
            )
    return results
