"""Error budgets grounded in float32 arithmetic: how far a converted artifact may be from its source.

A fixed ``atol`` measured on one CPU is not a specification: kernels, thread counts and
instruction sets change the order of float32 sums. The yardstick here is the source
framework's OWN float32 error, measured against a float64 evaluation of the same model:

- PyTorch (also Lasagne, which runs on its PyTorch rebuild, and silero-vad, whose
  TorchScript is mirrored by ``SileroVad16k``): the module deep-copied and ``.double()``;
- Keras: the rebuild built again under a float64 dtype policy with the weights cast
  (its TensorFlow front end then computes STFT and mel matrix in float64 too);
- TFLite and ONNX sources (no float64 path of their own): the ONNX graph (the exported
  or the published file) with every float tensor type, initializer, constant and cast
  made float64, run by ONNX Runtime, or by ``onnx.reference.ReferenceEvaluator`` when
  ONNX Runtime has no float64 kernel for an op (``engine="reference"`` forces it); its pools
  are replaced by whole-array ones (``reference_pools``), its per-element loops being the
  slowest part of a verify.

The budget rule, per probe and per output, for an error measured against the source::

    |artifact - source|  <=  k * |source_f32 - reference_f64|  +  floor

- ``k = 4`` for FP32: if the artifact's kernels are as accurate as the source's, the two
  float32 errors are independent draws of the same size and their difference is at most
  about 2x one of them; OpenVINO and ONNX Runtime may legitimately be up to 2x less
  accurate than the source (Winograd and blocked convolutions, polynomial exp/tanh/sigmoid,
  other reduction blocking), so 1 (source) + 3 (artifact) = 4. A 1e-3 relative change of a
  weight tensor moves the outputs by ~1e-4..1e-3 relative, 100-1000x the ~1e-6 relative
  float32 error, so k = 4 keeps such defects far outside the budget.
- ``floor`` covers probes where the source is exact by luck (silence, constants): the
  rounding error of a dot product of length n has standard deviation about
  ``u * sqrt(n / 3) * |value|`` (u the unit roundoff, each rounding uniform in [-u, u]);
  over D such layers in sequence the independent errors add to ``u * sqrt(n * D / 3)``.
  The floor is 4 standard deviations of that: ``4 * u * sqrt(n * D / 3) * scale`` with n
  the longest reduction and D the number of reducing layers of the exported graph
  (``reduction_profile``). ``scale`` is ``max |reference|`` of the output on that probe;
  for log-domain outputs (logits, log-probabilities, log-mel spectrograms) it is at least 1,
  since a log carries the RELATIVE error of its argument as an absolute error.
- FP16 (weights rounded to float16, arithmetic still float32): float16 rounding is a relative
  perturbation of u16 = 2^-11 per weight where float32 arithmetic is one of u32 = 2^-24 per
  operation, through the same network, so the FP16 budget is the FP32 one with yardstick and
  floor scaled by u16 / u32 = 8192 (k = 4 stays). One rounding per weight rather than per
  operation makes this an upper estimate. What rounding the weights costs can also be MEASURED
  (``reference_f64(..., weights="float16")``: every float weight rounded to float16, evaluated
  in float64); ``Yardstick.error16`` reports it beside the budget. It is not the budget: an
  OpenVINO FP16 IR is not exactly "the weights rounded" (measured on AclNet: the IR differs from
  the ONNX with IEEE-rounded weights by as much as that rounding costs, although its compressed
  weight tensors are bit-identical to IEEE rounding; on BirdNET, whose FP16 IR keeps its front
  end in float32, rounding every weight costs 7 logits), so a budget on it would fail genuine IRs.
- Runtimes without float64: where the source computes a step in float64 (TFLite's RFFT2D runs
  Ooura's FFT in double, so BirdNET's export keeps its DFT in float64), an artifact whose runtime
  has no float64 (an OpenVINO IR: the CPU plugin lowers float64 to float32, RDFT takes float32
  only) cannot be as accurate as the source there, whatever its kernels do. Its yardstick is then
  the larger of the source's float32 error and the error of the exported graph evaluated WHOLLY
  in float32 (``Float32Graph``: every float64 step narrowed, on ONNX Runtime, against the same
  float64 evaluation), per probe: what float32 arithmetic must cost on that graph. k = 4 stays
  (the IR's float32 steps are one more independent float32 evaluation of the same graph). The
  ONNX artifact, whose runtime keeps the float64 steps, is judged by the source's error alone.
  On BirdNET this matters on pure tones only, where the true spectrum between harmonics is far
  below float32's noise floor and the front end's power law (|mel|^0.46) lifts that floor into
  the logits; noise, speech and real recordings have a spectrum above it.
- QDQ graphs (a published INT8 ONNX): the float64 evaluation keeps the quantizers and makes the
  arithmetic between them exact (``zoo.numerics.qdq``). There, honest float32 runtimes differ by
  whole quantization steps: an element near a half step rounds either way on the last bits of a
  float32 sum, and the flip spreads through later layers. The source's float32 error is one draw
  of such flips and may show none by luck, so the yardstick also takes the largest error of
  ``QuantizerSteps.DRAWS`` float64 evaluations whose quantized activations carry float32-sized
  relative noise (uniform within the floor's 4 standard deviations, ``4 * u32 * sqrt(n / 3)``).
- INT8 is not judged here: 8-bit quantization error is a design choice, judged by the
  manifest's agreement metrics (top-k, decision, cosine).

Output kinds: probabilities, embeddings and state use ``max |reference|`` as scale;
logits, log-probabilities and spectrogram use ``max(1, max |reference|)`` (see above).

Two float32 implementations that round the same values in the same order (an ONNX export run
by ONNX Runtime next to its source) agree far better than either agrees with float64; the
budget is an upper bound on honest differences, not a prediction of them.

Use (every output of every artifact, per probe; streams carry their own state)::

    source_f32 = run_probes(source, feeds, manifest)        # feeds: per probe, its calls
    sticks = yardstick(manifest, source_f32, reference_f64(manifest, source, feeds, onnx_path))
    profile = reduction_profile(onnx_path)
    got = run_probes(runner, feeds, manifest)
    verdict = judge_artifact("FP32", sticks[name], source_f32, got, profile)  # .passed, .used
"""

from zoo.numerics.budget import (
    FLOOR_SIGMAS,
    LOG_DOMAIN,
    NO_FLOAT64,
    RATIO,
    U16,
    U32,
    Alternative,
    K,
    Verdict,
    Yardstick,
    budget,
    floor32,
    judge_artifact,
    max_abs,
    reduction_profile,
    scale_of,
    yardstick,
)
from zoo.numerics.float64 import (
    Float32Graph,
    Float64Model,
    KerasFloat64,
    OnnxFloat64,
    QuantizerSteps,
    TorchFloat64,
    alternatives,
    float64_model,
    float64_steps,
    onnx_to_float32,
    onnx_to_float64,
    reference_f64,
    run_probes,
)

__all__ = [
    "FLOOR_SIGMAS",
    "Alternative",
    "QuantizerSteps",
    "alternatives",
    "K",
    "LOG_DOMAIN",
    "NO_FLOAT64",
    "RATIO",
    "U16",
    "U32",
    "Float32Graph",
    "Float64Model",
    "KerasFloat64",
    "OnnxFloat64",
    "TorchFloat64",
    "Verdict",
    "Yardstick",
    "budget",
    "float64_model",
    "float64_steps",
    "floor32",
    "judge_artifact",
    "max_abs",
    "onnx_to_float32",
    "onnx_to_float64",
    "reduction_profile",
    "reference_f64",
    "run_probes",
    "scale_of",
    "yardstick",
]
