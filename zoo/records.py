"""The files that pass between stages, each with one typed definition used to write AND to read it.

- ``SOURCES.json`` (`SourcesRecord`): what `<out>/<name>/source/` holds; written last by the
  source stage, so its presence means the folder is complete.
- ``stamps/<stage>.json`` (`Stamp`): what a stage's outputs were made from (its key) and their
  checksums, so a re-run can skip what is up to date.
- ``report.json`` (`Report`): what `zoo verify` measured; read by bundle, bench and model cards.

Each record carries a schema version. A file that does not parse, or whose schema is not the one
this code writes, reads as None (a stage treats that as "never made") or, where a user handed the
file in, as an error that names the file and the field.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from zoo.atomic import write_text
from zoo.errors import ZooError

SOURCES_SCHEMA = 1
STAMP_SCHEMA = 1
REPORT_SCHEMA = 1


def utc_now() -> str:
    """The creation time every record uses: UTC, seconds, ISO 8601 with a Z."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class Record(BaseModel):
    """Base of the records: unknown keys are kept (newer zoo versions may add facts)."""

    model_config = ConfigDict(extra="allow")

    def write(self, path: Path) -> None:
        """Atomically write the record as indented JSON (None fields are kept: readers see the keys)."""
        write_text(path, json.dumps(self.model_dump(mode="json"), indent=2) + "\n")


R = TypeVar("R", bound=Record)


def read_record(cls: type[R], path: Path, schema: int | None = None) -> R | None:
    """The record at *path*, or None when it is missing, not JSON, or not this schema."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or (schema is not None and data.get("schema") != schema):
        return None
    try:
        return cls.model_validate(data)
    except ValidationError:
        return None


def load_record(cls: type[R], path: Path, what: str) -> R:
    """The record at *path*; a missing or malformed file is an error naming the file and the field."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise ZooError(f"{path}: cannot read the {what}: {exc.strerror or exc}.") from exc
    except ValueError as exc:
        raise ZooError(f"{path}: the {what} is not valid JSON: {exc}.") from exc
    if not isinstance(data, dict):
        raise ZooError(f"{path}: the {what} must be a JSON object, got {type(data).__name__}.")
    try:
        return cls.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"]) or "(top level)"
        raise ZooError(f"{path}: the {what} is malformed: field {field}: {first['msg']}.") from exc


# -- SOURCES.json -----------------------------------------------------------------------------


class SourceFileRecord(Record):
    """One file of the source folder: its name there, checksum, size and where it came from."""

    sha256: str
    size: int
    path: str
    origin: str = Field(description="downloaded | in cache | reference | user")
    url: str | None = None
    unpinned: bool | None = None


class SourcesRecord(Record):
    """`<out>/<name>/source/SOURCES.json`."""

    schema_: int = Field(default=SOURCES_SCHEMA, alias="schema")
    files: dict[str, SourceFileRecord]
    reference_weights: bool = False
    seed: int | None = None
    zoo: str | None = None
    model: str | None = None
    manifest_version: str | None = None
    manifest_sha256: str | None = None
    created: str = Field(default_factory=utc_now)

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    def write(self, path: Path) -> None:
        write_text(path, json.dumps(self.model_dump(mode="json", by_alias=True), indent=2) + "\n")


# -- stamps -----------------------------------------------------------------------------------


class FileFacts(Record):
    sha256: str
    size: int


class Stamp(Record):
    """`<out>/<name>/stamps/<stage>.json`: a stage's key and the checksums of what it wrote.

    Facts a stage adds about its result (the ONNX opset, the ops an FP16 IR keeps in FP32, the
    quantization figures) are extra keys at the top level.
    """

    schema_: int = Field(default=STAMP_SCHEMA, alias="schema")
    stage: str
    key: dict[str, Any]
    outputs: dict[str, FileFacts]
    seconds: float = 0.0
    created: str = Field(default_factory=utc_now)
    model: str | None = None
    manifest_version: str | None = None
    manifest_sha256: str | None = None
    reference_weights: bool | None = None

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    def write(self, path: Path) -> None:
        write_text(path, json.dumps(self.model_dump(mode="json", by_alias=True), indent=2) + "\n")

    def fact(self, name: str, default: Any = None) -> Any:
        """An extra fact the stage recorded (None when absent)."""
        return (self.model_extra or {}).get(name, default)


# -- report.json ------------------------------------------------------------------------------


class ArtifactReport(Record):
    """One artifact's verification: where it is, what ran it, what was measured and the verdict."""

    path: str
    sha256: str
    runtime: str
    metrics: dict[str, Any]
    tolerance: dict[str, Any] = Field(default_factory=dict)
    passed: bool
    failures: list[dict[str, Any]] = Field(default_factory=list)
    other_outputs: dict[str, Any] = Field(default_factory=dict)
    precision: str | None = None
    hint: str | None = None
    files: list[dict[str, Any]] = Field(default_factory=list)
    default_precision: dict[str, Any] | None = None
    note: str | None = None


class Report(Record):
    """`<out>/<name>/report.json`, written by `zoo verify`."""

    schema_: int = Field(default=REPORT_SCHEMA, alias="schema")
    model: str
    manifest_version: str
    manifest_sha256: str
    reference_weights: bool
    sources: dict[str, str] = Field(default_factory=dict)
    versions: dict[str, Any] = Field(default_factory=dict)
    created: str = Field(default_factory=utc_now)
    reference: dict[str, Any] = Field(default_factory=dict)
    probes: dict[str, Any] = Field(default_factory=dict)
    artifacts: dict[str, ArtifactReport] = Field(default_factory=dict)
    expectations: list[dict[str, Any]] = Field(default_factory=list)
    golden: dict[str, Any] = Field(default_factory=dict)
    failures: list[str] = Field(default_factory=list)
    passed: bool
    seconds: float = 0.0

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    def write(self, path: Path) -> None:
        write_text(path, json.dumps(self.as_dict(), indent=2) + "\n")

    def as_dict(self) -> dict[str, Any]:
        """The JSON form, as `zoo verify --json` prints it (optional facts an artifact lacks are left out)."""
        data: dict[str, Any] = self.model_dump(mode="json", by_alias=True, exclude_none=True)
        return data


def read_report(path: Path) -> Report:
    """A report.json handed in (a model folder, a bundle): malformed is an error naming the field."""
    return load_record(Report, path, "verification report")


__all__ = [
    "ArtifactReport",
    "FileFacts",
    "Report",
    "SourceFileRecord",
    "SourcesRecord",
    "Stamp",
    "read_record",
    "load_record",
    "read_report",
    "utc_now",
]
