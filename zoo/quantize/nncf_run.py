"""The NNCF calls: full INT8, weights-only compression, accuracy control, and the QDQ ONNX model.

NNCF and OpenVINO are imported inside the functions (the CLI's light commands must not
load them). NNCF logs and draws bars on stdout; nncf_to_stderr keeps stdout for tables
and --json.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from zoo.errors import EXIT_FAILED, ZooError
from zoo.quantize.calibration import Feeds, Sample, calibration_items
from zoo.quantize.metric import Metric, check_drop
from zoo.quantize.options import QuantizeOptions, QuantizeResult
from zoo.quantize.scope import front_end_ops, ignored_scope

if TYPE_CHECKING:
    from zoo.layout import ModelLayout
    from zoo.manifest import Manifest
    from zoo.runtimes import OpenVinoRunner, Runner


def compile_f32(model: Any) -> OpenVinoRunner:
    """An ov.Model compiled on the CPU plugin at f32, as a Runner."""
    from zoo.runtimes import OpenVinoRunner

    return OpenVinoRunner(model, hint="f32", label=f"{model.get_friendly_name()} (OpenVINO, f32)")


def quantized_ops(model: Any) -> set[str]:
    """Names of the ops a FakeQuantize feeds (on their activations or their weights)."""
    found = set()
    for op in model.get_ordered_ops():
        if op.get_type_name() == "FakeQuantize":
            for target in op.output(0).get_target_inputs():
                node = target.get_node()
                while node.get_type_name() in ("Convert", "Reshape", "Transpose") and node.outputs():
                    nxt = [t.get_node() for t in node.output(0).get_target_inputs()]
                    if len(nxt) != 1:
                        break
                    node = nxt[0]
                found.add(node.get_friendly_name())
    return found


def count_quantizers(model: Any) -> int:
    """FakeQuantize ops (full INT8) or compressed-weight constants (weights-only)."""
    quantizers = 0
    for op in model.get_ordered_ops():
        kind = op.get_type_name()
        if kind == "FakeQuantize" or (
            kind == "Constant" and op.get_element_type().get_type_name() in ("i8", "u8")
        ):
            quantizers += 1
    return quantizers


def recipe(
    manifest: Manifest, model: Any, onnx: bool = False, front: list[str] | None = None
) -> dict[str, Any]:
    """The manifest's INT8 recipe as keyword arguments of nncf.quantize (and its accuracy-control twin).

    The ignored scope holds the front end found by structure; bias correction (fast or full, or
    none), SmoothQuant (NNCF applies it to transformer-type models only) and the layers with 7-bit
    weights (the overflow fix for CPUs without VNNI) come from the manifest.
    """
    import nncf
    from nncf.quantization.advanced_parameters import (
        AdvancedQuantizationParameters,
        AdvancedSmoothQuantParameters,
        OverflowFix,
    )

    settings = manifest.quantize
    advanced = AdvancedQuantizationParameters(
        overflow_fix=OverflowFix(settings.overflow_fix),
        disable_bias_correction=not settings.bias_correction,
        smooth_quant_alphas=AdvancedSmoothQuantParameters()
        if settings.smooth_quant
        else AdvancedSmoothQuantParameters(matmul=-1, convolution=-1),
    )
    found: dict[str, Any] = {
        "ignored_scope": ignored_scope(manifest, model, onnx=onnx, front=front),
        "fast_bias_correction": settings.fast_bias_correction,
        "advanced_parameters": advanced,
    }
    if settings.smooth_quant:
        found["model_type"] = nncf.ModelType.TRANSFORMER
    return found


@contextlib.contextmanager
def nncf_to_stderr(verbose: bool) -> Iterator[None]:
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


def quantize_ir(
    manifest: Manifest,
    layout: ModelLayout,
    options: QuantizeOptions,
    samples: list[Sample],
    labelled: list[Sample] | None,
    subset_size: int,
    preset: str,
    log: Callable[[str], None],
) -> tuple[QuantizeResult, Any, Any]:
    """(result, the quantized ov.Model, the QDQ ONNX model or None), measured but not yet written."""
    import nncf

    from zoo.runtimes import OnnxRuntimeRunner, openvino_core

    core = openvino_core()
    fp32_model = core.read_model(str(layout.ir_xml("FP32")))
    reference = compile_f32(fp32_model)
    mode = manifest.quantize.mode
    result = QuantizeResult(manifest.name, "done", mode=mode, subset_size=subset_size, preset=preset)
    result.front_end = front_end_ops(fp32_model, manifest)  # walked once: the scope and the report
    settings = recipe(manifest, fp32_model, front=result.front_end)
    items = calibration_items(reference, manifest, samples, subset_size) if mode == "full" else []
    nncf_preset = nncf.QuantizationPreset.MIXED if preset == "mixed" else nncf.QuantizationPreset.PERFORMANCE

    if mode == "weights":
        quantized = nncf.compress_weights(
            fp32_model, mode=nncf.CompressWeightsMode.INT8_ASYM, ignored_scope=settings["ignored_scope"]
        )
    elif options.max_drop is None:
        quantized = nncf.quantize(
            fp32_model, nncf.Dataset(items), preset=nncf_preset, subset_size=len(items), **settings
        )
    else:
        quantized, result.accuracy_control = accuracy_controlled(
            manifest,
            fp32_model,
            reference,
            items,
            labelled or samples,
            options.max_drop,
            nncf_preset,
            settings,
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
        qdq = quantize_onnx(manifest, layout, items, nncf_preset, subset_size)
        result.qdq_agreement, _ = agreement.evaluate(OnnxRuntimeRunner(qdq, label="QDQ ONNX model"))
        log(f"{manifest.name}: INT8: QDQ ONNX {result.agreement_metric} {result.qdq_agreement:.4f}")
    return result, quantized, qdq


def accuracy_controlled(
    manifest: Manifest,
    fp32_model: Any,
    reference: Runner,
    items: list[Feeds],
    validation: list[Sample],
    max_drop: float,
    preset: Any,
    settings: dict[str, Any],
    log: Callable[[str], None],
) -> tuple[Any, dict[str, Any]]:
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
        ignored_scope=settings["ignored_scope"],
        model_type=settings.get("model_type"),
        fast_bias_correction=settings["fast_bias_correction"],
        advanced_quantization_parameters=settings["advanced_parameters"],
        advanced_accuracy_restorer_parameters=AdvancedAccuracyRestorerParameters(num_ranking_workers=1),
    )
    plain = nncf.quantize(fp32_model, nncf.Dataset(items), preset=preset, subset_size=len(items), **settings)
    full_count, kept = count_quantizers(plain), count_quantizers(quantized)
    # the layers mixed precision keeps in float: quantized in plain INT8, not in the result
    float_ops = sorted(quantized_ops(plain) - quantized_ops(quantized))
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
        "float_ops": float_ops,
    }
    check_drop(manifest.name, facts)
    log(
        f"{manifest.name}: INT8: {metric.name}: FP32 {initial:.4f}, plain INT8 {plain_metric:.4f}, "
        f"controlled INT8 {final:.4f} (drop {facts['drop']:.4f} <= {max_drop:g}); {full_count - kept} of "
        f"{full_count} quantizers reverted" + (f"; in float: {', '.join(float_ops)}" if float_ops else "")
    )
    return quantized, facts


def quantize_onnx(
    manifest: Manifest, layout: ModelLayout, items: list[Feeds], preset: Any, subset_size: int
) -> Any:
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
        **recipe(manifest, model, onnx=True),
    )
