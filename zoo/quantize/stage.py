"""The INT8 stage the engine runs after FP32, and the command's per-model loop.

An up-to-date INT8 (same manifest fields, FP32 IR, options, calibration and dataset
digests, code and tool versions) is not redone; its stamp `<out>/<name>/stamps/INT8.json`
records every option and figure. The INT8 folder is built aside and swapped into place.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from zoo.errors import UsageError, ZooError
from zoo.evaluate import read_classes
from zoo.layout import ModelLayout
from zoo.quantize.calibration import Sample, audio_files, calibration_samples, labelled_samples
from zoo.quantize.nncf_run import nncf_to_stderr, quantize_ir
from zoo.quantize.options import QuantizeOptions, QuantizeResult
from zoo.stages.engine import ModelRun, Stage
from zoo.vocab import IR_PRECISIONS

if TYPE_CHECKING:
    from zoo.manifest import Manifest

STAGE = "INT8"
MANIFEST_FIELDS = {"quantize", "inputs", "outputs", "primary_output", "audio", "verify", "labels"}


def _versions() -> dict[str, str]:
    from zoo.versions import versions

    return {
        k: v
        for k, v in versions().items()
        if k in ("zoo", "openvino", "nncf", "onnx", "onnxruntime", "numpy")
    }


def stage_key(
    manifest: Manifest,
    layout: ModelLayout,
    options: QuantizeOptions,
    subset_size: int,
    preset: str,
    calibration_digest: str,
    dataset_digest: str | None,
) -> dict[str, Any]:
    """Everything the INT8 IR depends on: a change to any of it redoes the stage."""
    from zoo.integrity import sha256_file
    from zoo.stages.engine import code_digest
    from zoo.stamps import manifest_part

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
        "code": code_digest(sorted(Path(__file__).parent.glob("*.py"))),
        "versions": _versions(),
    }


def resolve(manifest: Manifest, options: QuantizeOptions) -> tuple[int, str]:
    """(subset size, preset): the options over the manifest's quantize section, checked."""
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
    cpus = 2.0  # NNCF's statistics collection and OpenVINO calibration runs use the cores

    def __init__(
        self,
        options: QuantizeOptions,
        subset_size: int,
        preset: str,
        samples: list[Sample],
        calibration: tuple[str, str],
        labelled: tuple[list[Sample] | None, str | None],
        calibration_parts: list[dict[str, str]] | None = None,
    ):
        self.options = options
        self.subset_size = subset_size
        self.preset = preset
        self.samples = samples
        self.calibration_how, self.calibration_digest = calibration
        self.calibration_files = calibration_parts or []
        self.labelled, self.dataset_digest = labelled
        self.result: QuantizeResult | None = None

    def key(self, run: ModelRun) -> dict[str, Any]:
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

    def work(self, run: ModelRun) -> tuple[list[Path], dict[str, Any]]:
        manifest, layout, options = run.manifest, run.layout, self.options
        run.log(f"{manifest.name}: INT8: calibrating on {self.calibration_how}")
        controlled = options.max_drop is not None or options.dataset is not None
        with nncf_to_stderr(verbose=options.debug or controlled):
            result, quantized, qdq = quantize_ir(
                manifest, layout, options, self.samples, self.labelled, self.subset_size, self.preset, run.log
            )
            _save(manifest, layout, quantized, qdq, result, options)
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
            "recipe": recipe_facts(manifest),
            "front_end": result.front_end,
            "calibration_digest": self.calibration_digest,
            "calibration_files": self.calibration_files,
        }
        result.outputs = [p.relative_to(layout.root).as_posix() for p in outputs]
        self.result = result
        return outputs, {"quantization": facts}


def recipe_facts(manifest: Manifest) -> dict[str, Any]:
    """The manifest's INT8 recipe as the stamp and the IR's rt_info record it."""
    settings = manifest.quantize
    return {
        "preset": settings.preset,
        "front_end": settings.front_end.boundary if settings.front_end else None,
        "bias_correction": settings.bias_correction,
        "fast_bias_correction": settings.fast_bias_correction,
        "smooth_quant": settings.smooth_quant,
        "float_first_layers": settings.float_first_layers,
        "float_last_layers": settings.float_last_layers,
        "max_drop": settings.max_drop,
        "calibration": list(settings.calibration),
    }


def int8_precisions(manifest: Manifest, layout: ModelLayout) -> list[str]:
    """The IR precisions converted before INT8, which is quantized from the FP32 IR (the QDQ model
    from the ONNX): an empty folder gets what `zoo convert` makes; a converted one only FP32."""
    fresh = not layout.ir_xml("FP32").is_file()
    wanted = manifest.convert.openvino.precisions if fresh else []
    return [p for p in IR_PRECISIONS if p == "FP32" or p in wanted]


def quantize_model(
    manifest: Manifest, options: QuantizeOptions, log: Callable[[str], None]
) -> QuantizeResult:
    """Make (or confirm up to date) the INT8 IR of one model; the engine converts what is missing first."""
    from zoo.pipeline import conversion_stages
    from zoo.stages.engine import RunOptions, run_model

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
    if options.max_drop is not None:
        max_drop: float | None = options.max_drop
    elif manifest.quantize.max_drop is not None and manifest.quantize.mode == "full":
        max_drop = manifest.quantize.max_drop  # the recipe's accuracy control
    else:
        max_drop = 0.01 if controlled else None
    options = QuantizeOptions(**{**options.__dict__, "max_drop": max_drop})

    samples, calibration_how, calibration_digest, parts = calibration_samples(manifest, options, subset_size)
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
        parts,
    )
    precisions = int8_precisions(manifest, run.layout)
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
    """Where the QDQ ONNX model goes: next to the INT8 IR."""
    return layout.ir_dir(STAGE) / f"{layout.name}.onnx"


def _save(
    manifest: Manifest,
    layout: ModelLayout,
    quantized: Any,
    qdq: Any,
    result: QuantizeResult,
    options: QuantizeOptions,
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
                "recipe": recipe_facts(manifest),
                "front_end_ops": len(result.front_end),
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


def check_quantize_inputs(manifests: list[Manifest], options: QuantizeOptions) -> None:
    """What is bad input for the whole run, checked before any model's work."""
    for folder in options.calibration:
        audio_files(Path(folder))  # a bad folder fails before any work
    if options.weights is not None and len(manifests) != 1:
        raise UsageError("--weights PATH applies to one model: select exactly one with --name.")


def quantize_many(
    manifests: list[Manifest], options: QuantizeOptions, log: Callable[[str], None]
) -> list[QuantizeResult]:
    """Quantize each selected model; a failure is recorded and the others still run (bad input stops all)."""
    check_quantize_inputs(manifests, options)
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
