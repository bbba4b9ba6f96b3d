"""How good an INT8 model is: labelled accuracy, or agreement with the FP32 model it came from.

Accuracy control (nncf.quantize_with_accuracy_control) optimises this metric, and every
run records the INT8 model's agreement with FP32 on the calibration set. check_drop
refuses a result whose measured drop breaks the bound, since NNCF only logs that.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from zoo.errors import EXIT_FAILED, ZooError
from zoo.evaluate import FileResult, clip_scores, decision_threshold, is_detector, predict
from zoo.streams import run_calls

if TYPE_CHECKING:
    from collections.abc import Iterable

    from zoo.manifest import Manifest
    from zoo.quantize.calibration import Sample
    from zoo.runtimes import Runner


def call_agreement(
    manifest: Manifest, reference: list[dict[str, np.ndarray]], candidate: list[dict[str, np.ndarray]]
) -> list[float]:
    """Per call (window), 1 for full agreement with the reference and less for less.

    Voice activity (one score): the same side of the decision threshold. Classifiers, with the
    manifest's verify.agreement: the same classes at or above `detect` (multi-label), the same
    top-1 where the reference's top score is at least `confident`, and otherwise the overlap of
    the five best classes (those scoring at least `floor`, when given); all three must hold, so the value is the top-5 overlap where the
    others agree and 0 where they do not. Without verify.agreement: the same top-1 class.
    """
    from zoo.verify.metrics import scores_of, top_overlap

    settings = manifest.verify.agreement
    ref = scores_of(clip_scores(manifest, reference), settings.scores)
    got = scores_of(clip_scores(manifest, candidate), settings.scores)
    if is_detector(manifest) or ref.shape[1] == 1:
        threshold = decision_threshold(manifest)
        return [float(a) for a in ((ref[:, 0] >= threshold) == (got[:, 0] >= threshold))]
    same_top = ref.argmax(axis=1) == got.argmax(axis=1)
    if settings.confident is None and settings.detect is None:
        return [float(a) for a in same_top]
    values = []
    for r, g, top in zip(ref, got, same_top, strict=True):
        value = top_overlap(r, g, settings.floor)
        if settings.confident is not None and r.max() >= settings.confident and not top:
            value = 0.0
        if settings.detect is not None and not np.array_equal(r >= settings.detect, g >= settings.detect):
            value = 0.0
        values.append(value)
    return values


class Metric:
    """The accuracy-control metric over samples: labelled accuracy, or agreement with FP32."""

    def __init__(self, manifest: Manifest, samples: list[Sample], reference_model: Runner | None = None):
        self.manifest = manifest
        self.samples = samples
        self.labelled = all(s.label is not None for s in samples)
        self.name = (
            ("accuracy" if is_detector(manifest) else "top1")
            if self.labelled
            else (
                "decision agreement with FP32"
                if is_detector(manifest)
                else (
                    "window agreement with FP32"
                    if manifest.verify.agreement.confident is not None
                    or manifest.verify.agreement.detect is not None
                    else "top-1 agreement with FP32"
                )
            )
        )
        self.reference: list[list[dict[str, np.ndarray]]] = []
        if not self.labelled:
            if reference_model is None:
                raise ZooError("an agreement metric needs the FP32 model's outputs")
            self.reference = [run_calls(reference_model, manifest, s.feeds)[1] for s in samples]

    def item_value(self, model: Runner, index: int) -> tuple[float, int]:
        """(value, weight) of one sample: correct or not for a labelled file; share of agreeing calls."""
        sample = self.samples[index]
        if sample.label is not None and self.labelled:
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
        self, model: Runner, indices: Iterable[int] | None = None, describe: str | None = None
    ) -> tuple[float, list[float]]:
        """(metric, per-sample values): the metric weights each sample by its calls (agreement) or 1.

        With *describe*, a progress bar shows the samples going by.
        """
        from zoo.bars import bar

        values: list[float] = []
        weights: list[int] = []
        chosen = list(range(len(self.samples))) if indices is None else list(indices)
        with bar(describe or "", len(chosen), enabled=describe is not None) as progress:
            for index in chosen:
                value, weight = self.item_value(model, index)
                values.append(value)
                weights.append(weight)
                progress.advance()
        metric = float(np.average(values, weights=weights)) if values else float("nan")
        return metric, values

    def validation_fn(self, compiled: Any, items: Iterable[Any]) -> tuple[float, list[float]]:
        """NNCF's signature: (compiled model, iterable of sample indices) -> (metric, per-item values)."""
        from zoo.runtimes import OpenVinoRunner

        runner = OpenVinoRunner(compiled, label="the model NNCF validates")
        return self.evaluate(runner, [int(i) for i in items])


def check_drop(model: str, facts: dict[str, Any]) -> None:
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
