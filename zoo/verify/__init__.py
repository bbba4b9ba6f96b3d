"""`zoo verify`: every converted artifact against the ORIGINAL framework, output by output.

- `inputs`: the probe set and the user's own recordings (--audio), through the host preprocessing;
- `metrics`: parity and agreement metrics (max abs/rel error, cosine, top-1/top-5, decisions);
- `judging`: the rule per artifact kind (numeric budgets from zoo.numerics, agreement minimums);
- `golden`: golden vectors in ONNX test-data layout, and re-checking an artifact against them;
- `report`: upstream self-tests, table rows; `stage`: the verify stage and the command's job.
"""

from zoo.verify.golden import check_golden, read_golden, write_golden
from zoo.verify.inputs import ProbeInputs, audio_inputs, build_inputs, verify_seconds
from zoo.verify.metrics import compare, describe_failure, judge
from zoo.verify.report import report_json, summary_rows
from zoo.verify.stage import VerifyStage, verify_many, verify_model

__all__ = [
    "ProbeInputs",
    "VerifyStage",
    "audio_inputs",
    "build_inputs",
    "check_golden",
    "compare",
    "describe_failure",
    "judge",
    "read_golden",
    "report_json",
    "summary_rows",
    "verify_many",
    "verify_model",
    "verify_seconds",
    "write_golden",
]
