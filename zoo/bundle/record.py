"""bundle.json as one typed record: `zoo bundle` writes it, verify, publish and pull read it back.

A bundle from someone else is untrusted input, so reading validates every field the code relies on
and turns a malformed file into one BundleCheckError naming the file and the field (exit 1), never
a traceback. The field order here is the order on disk, and keys that were optional when written
(parity facts a report did not have, accuracy, quantization) stay absent: write with `dump_bundle`,
which leaves out what was never set, so the bytes match what earlier versions wrote.
"""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from zoo.bundle.names import BUNDLE_JSON, BundleCheckError, is_safe_relative

#: version of the bundle.json layout; a reader refuses any other
SCHEMA: Literal[1] = 1
KIND = "zoo-bundle"
_SHA256 = r"^[0-9a-f]{64}$"


class _Record(BaseModel):
    # strict: "12" is not a size; extra keys are kept (and written back) so a reader does not drop them
    model_config = ConfigDict(strict=True, extra="allow", validate_by_name=True, validate_by_alias=True)


def _safe_path(value: str) -> str:
    if not is_safe_relative(value):
        raise ValueError(f"unsafe path {value!r} (absolute or with '..')")
    return value


class FileRecord(_Record):
    """One file in the bundle, relative to its top folder."""

    path: str
    size: int = Field(ge=0)
    sha256: str = Field(pattern=_SHA256)

    _check_path = field_validator("path")(_safe_path)


class ParityRecord(_Record):
    """What `zoo verify` measured for an artifact against the source framework (copied from report.json)."""

    hint: str | None = None
    metrics: dict[str, Any] = Field(default_factory=dict)
    tolerance: dict[str, Any] = Field(default_factory=dict)
    passed: bool | None = None
    failures: list[Any] = Field(default_factory=list)
    default_precision: dict[str, Any] | None = None


class ArtifactRecord(_Record):
    """One converted artifact: its main file, every file it needs, its precision and its parity."""

    kind: str
    format: str
    precision: str
    path: str
    size: int = Field(ge=0)
    sha256: str = Field(pattern=_SHA256)
    files: list[FileRecord]
    runtime: str | None
    parity: ParityRecord
    accuracy: Any = None
    quantization: dict[str, Any] | None = None

    _check_path = field_validator("path")(_safe_path)


class LicenseRecord(_Record):
    """The manifest's licence, as the manifest states it."""

    name: str
    url: str | None = None
    commercial_use: bool = True
    notes: str | None = None


class LabelsRecord(_Record):
    count: int = Field(ge=0)
    file: str
    names: list[str]


class VerificationRecord(_Record):
    """The verification run the artifacts passed (the full report is beside them as report.json)."""

    created: str | None
    passed: bool | None
    probes: dict[str, Any] | None
    expectations: list[dict[str, Any]] = Field(default_factory=list)
    versions: dict[str, str] = Field(default_factory=dict)


class GoldenRecord(_Record):
    """Golden vectors in the ONNX test-data layout."""

    path: str
    sets: int = Field(ge=0)
    files: list[FileRecord]


class ModelRecord(_Record):
    """One model in the bundle: its resolved manifest, where its weights came from, what was checked."""

    name: str
    version: str
    task: str
    framework: str
    license: LicenseRecord
    reference_weights: bool
    manifest_sha256: str
    #: the resolved manifest as JSON; kept as written so a bundle stays readable when the manifest
    #: schema grows (the catalog's Manifest validates manifests, this record only carries one)
    manifest: dict[str, Any]
    sources: dict[str, str] = Field(default_factory=dict)
    labels: LabelsRecord
    model_card: str
    report: str
    verification: VerificationRecord
    artifacts: list[ArtifactRecord]
    golden_vectors: GoldenRecord

    def files(self) -> list[FileRecord]:
        """Every file this entry records a size and sha256 for."""
        return [f for a in self.artifacts for f in a.files] + list(self.golden_vectors.files)


class SignatureRecord(_Record):
    file: str
    method: str
    key: str
    public_key_sha256: str


class BundleRecord(_Record):
    """bundle.json: what is inside a bundle, where it came from, how it was checked."""

    schema_version: Literal[1] = Field(alias="schema")
    kind: Literal["zoo-bundle"]
    name: str
    version: str
    created: str
    created_from: str
    versions: dict[str, str] = Field(default_factory=dict)
    reference_weights: bool = False
    licenses: list[str] = Field(default_factory=list)
    non_commercial: list[str] = Field(default_factory=list)
    signature: SignatureRecord | None = None
    models: list[ModelRecord]

    def files(self) -> list[FileRecord]:
        return [f for model in self.models for f in model.files()]


class PublishedRecord(_Record):
    """What a target notes about one published version: a folder's `<bundle>-<version>.json` (the
    same facts go into an OCI manifest's annotations)."""

    name: str
    version: str
    created: str | None = None
    models: list[str] = Field(default_factory=list)  # NAME@VERSION
    licenses: list[str] = Field(default_factory=list)
    signed: bool = False
    reference_weights: bool = False
    sha256: str = Field(pattern=_SHA256)  # of the tarball
    size: int | None = Field(default=None, ge=0)


def dump_bundle(record: BundleRecord) -> str:
    """bundle.json's text: two-space indented, fields in record order, unset optional keys left out."""
    return json.dumps(record.model_dump(mode="json", by_alias=True, exclude_unset=True), indent=2) + "\n"


def parse_bundle(data: bytes, shown: str) -> BundleRecord:
    """Read bundle.json bytes (`shown` names the bundle in messages); BundleCheckError when malformed."""
    try:
        document = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BundleCheckError(f"{shown}: {BUNDLE_JSON} is not valid JSON ({exc}).", BUNDLE_JSON) from exc
    if not isinstance(document, dict) or document.get("schema") != SCHEMA or document.get("kind") != KIND:
        found = (
            f"schema {document.get('schema')!r}, kind {document.get('kind')!r}"
            if isinstance(document, dict)
            else f"a JSON {type(document).__name__}"
        )
        raise BundleCheckError(
            f"{shown}: {BUNDLE_JSON}: expected a zoo bundle with schema {SCHEMA} (kind {KIND}), found {found}.",
            BUNDLE_JSON,
        )
    try:
        return BundleRecord.model_validate(document)
    except ValidationError as exc:
        raise BundleCheckError(f"{shown}: {BUNDLE_JSON}: {describe_errors(exc)}", BUNDLE_JSON) from None


def describe_errors(exc: ValidationError) -> str:
    """The first problem as 'field a.b.0.c: what was expected, got what', and how many more there are."""
    errors = exc.errors(include_url=False)
    first = errors[0]
    where = ".".join(str(part) for part in first["loc"]) or "(top level)"
    if first["type"] == "missing":
        text = f"field {where} is missing."
    else:
        shown = repr(first.get("input"))
        shown = shown if len(shown) <= 80 else shown[:77] + "..."
        text = f"field {where}: {first['msg'][0].lower()}{first['msg'][1:]}, got {shown}."
    if len(errors) > 1:
        text += f" ({len(errors) - 1} more problem{'s' if len(errors) > 2 else ''} after this one.)"
    return text
