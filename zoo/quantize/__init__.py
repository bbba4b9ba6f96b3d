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

The package: options (what was asked and answered), calibration (the audio and its
digests), metric (accuracy control and agreement), nncf_run (the NNCF calls), stage
(the INT8 stage and the per-model loop).
"""

from __future__ import annotations

from zoo.quantize.calibration import Sample, audio_files, calibration_items, calibration_samples, files_digest
from zoo.quantize.metric import Metric, call_agreement, check_drop
from zoo.quantize.nncf_run import count_quantizers, nncf_to_stderr
from zoo.quantize.options import QuantizeOptions, QuantizeResult
from zoo.quantize.scope import front_end_ops, ignored_scope
from zoo.quantize.stage import STAGE, Int8Stage, quantize_many, quantize_model, stage_key

__all__ = [
    "STAGE",
    "Int8Stage",
    "Metric",
    "QuantizeOptions",
    "QuantizeResult",
    "Sample",
    "audio_files",
    "calibration_items",
    "calibration_samples",
    "call_agreement",
    "check_drop",
    "count_quantizers",
    "files_digest",
    "front_end_ops",
    "ignored_scope",
    "nncf_to_stderr",
    "quantize_many",
    "quantize_model",
    "stage_key",
]
