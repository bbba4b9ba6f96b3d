"""What `zoo quantize` was asked and what it answers: shared by the calibration, NNCF and stage modules."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class QuantizeOptions:
    """What `zoo quantize` was asked."""

    out: Path
    calibration: list[Path] = field(default_factory=list)  # folders of recordings (--calibration, repeatable)
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
class QuantizeResult:
    """One model's outcome, as the table and `--json` show it."""

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
    accuracy_control: dict[str, Any] | None = None
    front_end: list[str] = field(default_factory=list)  # ops kept in float by structure
    outputs: list[str] = field(default_factory=list)
    error: str | None = None
    exit_code: int = 0
