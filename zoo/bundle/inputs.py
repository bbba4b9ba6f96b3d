"""What goes into a bundle: one model's verified outputs, checked against its manifest and report.

Only what `zoo verify` passed is bundled, and only while it is unchanged: the report must be of
this very manifest, every artifact must still have the sha256 the report recorded, and the golden
vectors must be there. report.json is read in one place, `read_verified_report`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from zoo.bundle.names import parse_time, relative_files, safe_relative
from zoo.errors import UsageError, ZooError
from zoo.integrity import sha256_file
from zoo.layout import ModelLayout
from zoo.manifest import Manifest
from zoo.records import REPORT_SCHEMA, Report, load_record
from zoo.vocab import ARTIFACTS


@dataclass
class ModelInput:
    """One model's verified outputs, checked and ready to copy into a bundle."""

    manifest: Manifest
    layout: ModelLayout
    report: dict[str, Any]
    kinds: list[str]
    #: artifact kind -> paths relative to the model root
    files: dict[str, list[str]] = field(default_factory=dict)
    golden: list[str] = field(default_factory=list)
    labels: list[str] = field(default_factory=list)
    created: int = 0


def read_verified_report(path: Path, manifest: Manifest) -> dict[str, Any]:
    """report.json as `zoo verify` wrote it for this manifest; UsageError when missing, unreadable or stale."""
    name = manifest.name
    if not path.is_file():
        raise UsageError(
            f"{path}: no verification report for {name}; run `zoo convert --name {name}` and "
            f"`zoo verify --name {name}` first (or point -o at the output folder they wrote)."
        )
    try:
        record = load_record(Report, path, "verification report")
    except ZooError as exc:
        raise UsageError(f"{exc.message} Run `zoo verify --name {name}` again.") from exc
    if record.schema_ != REPORT_SCHEMA:
        raise UsageError(
            f"{path}: field schema: expected a zoo report with schema {REPORT_SCHEMA}, got {record.schema_!r}."
        )
    report = record.as_dict()
    if report.get("model") != name:
        raise UsageError(f"{path}: field model: expected {name!r}, got {report.get('model')!r}.")
    if report.get("manifest_version") != manifest.version:
        raise UsageError(
            f"{path}: field manifest_version: the report was made from version {report.get('manifest_version')!r} "
            f"of the manifest, the catalog has {manifest.version!r}; run `zoo convert` and `zoo verify` again."
        )
    recorded = report.get("manifest_sha256")
    if recorded not in (manifest.digest, manifest._raw_sha256):
        raise UsageError(
            f"{path}: field manifest_sha256: the report was made from a different manifest than "
            f"{manifest.path}; run `zoo convert --name {name}` and `zoo verify --name {name}` again."
        )
    if not isinstance(report.get("artifacts"), dict) or not report["artifacts"]:
        raise UsageError(f"{path}: field artifacts: expected the verified artifacts, found none.")
    return report


def _failure_text(failure: Any) -> str:
    if isinstance(failure, dict) and "metric" in failure:
        measured = failure.get("measured")
        measured = f"{measured:.4g}" if isinstance(measured, float) else measured
        return (
            f"{failure['metric']} {measured} vs {failure.get('rule', 'tolerance')} {failure.get('tolerance')}"
        )
    return str(failure)


def _failures(report: dict[str, Any]) -> str:
    found = []
    for kind, entry in (report.get("artifacts") or {}).items():
        if isinstance(entry, dict) and entry.get("passed") is not True:
            detail = "; ".join(_failure_text(f) for f in (entry.get("failures") or [])[:2])
            found.append(f"{kind}" + (f": {detail}" if detail else ""))
    for item in report.get("expectations") or []:
        if isinstance(item, dict) and item.get("passed") is False:
            found.append(f"expectation {item.get('probe')} -> {item.get('label')}")
    return ", ".join(found) or "see the report"


def normalize_kinds(precisions: list[str] | None) -> list[str] | None:
    if not precisions:
        return None
    wanted = []
    for value in precisions:
        for part in value.split(","):
            part = part.strip()
            if not part:
                continue
            match = next((k for k in ARTIFACTS if k.lower() == part.lower()), None)
            if match is None:
                raise UsageError(
                    f"--precisions: unknown artifact {part!r}; expected some of {', '.join(ARTIFACTS)}."
                )
            if match not in wanted:
                wanted.append(match)
    return wanted or None


def collect_model(
    manifest: Manifest, out: Path, kinds: list[str] | None, allow_reference_weights: bool
) -> ModelInput:
    """Check one model's report and files; refuse anything unverified, stale or changed since."""
    layout = ModelLayout(Path(out), manifest.name)
    report = read_verified_report(layout.report, manifest)
    name = manifest.name
    if report.get("passed") is not True:
        raise ZooError(
            f"{layout.report}: field passed: verification of {name} did not pass ({_failures(report)}); "
            f"zoo bundles only verified models. Fix the failures and run `zoo verify --name {name}` again."
        )
    if report.get("reference_weights") and not allow_reference_weights:
        raise UsageError(
            f"{layout.report}: field reference_weights: {name} was made from seeded reference weights, not the "
            f"upstream model; pass --allow-reference-weights to bundle it anyway (it is then marked as such)."
        )
    available = list(report["artifacts"])
    selected = kinds or [k for k in ARTIFACTS if k in available] + [
        k for k in available if k not in ARTIFACTS
    ]
    missing = [k for k in selected if k not in available]
    if missing:
        raise UsageError(
            f"--precisions: {name} has no verified {', '.join(missing)} artifact in {layout.report} "
            f"(it has: {', '.join(available)})."
        )
    model = ModelInput(manifest=manifest, layout=layout, report=report, kinds=selected)
    for kind in selected:
        model.files[kind] = _artifact_files(layout, report, kind)
    model.golden = _golden_files(layout)
    model.labels = manifest.read_labels(layout.source_dir)
    model.created = parse_time(report.get("created"), str(layout.report))
    return model


def _artifact_files(layout: ModelLayout, report: dict[str, Any], kind: str) -> list[str]:
    entry = report["artifacts"][kind]
    where = f"{layout.report}: field artifacts.{kind}"
    if not isinstance(entry, dict) or not isinstance(entry.get("path"), str):
        raise UsageError(f"{where}: expected an object with the artifact's path.")
    if entry.get("passed") is not True:
        raise ZooError(
            f"{where}.passed: the {kind} artifact did not pass verification ({_failures({'artifacts': {kind: entry}})}); "
            f"leave it out with --precisions or fix it and run `zoo verify` again."
        )
    main = safe_relative(entry["path"], where + ".path")
    files = [main]
    if main.endswith(".xml"):
        files.append(main[: -len(".xml")] + ".bin")
    for extra in entry.get("files") or []:
        rel = safe_relative(extra["path"] if isinstance(extra, dict) else str(extra), where + ".files")
        if rel not in files:
            files.append(rel)
    for rel in files:
        path = layout.root / rel
        if not path.is_file():
            raise UsageError(f"{where}: {path} does not exist; run `zoo convert` and `zoo verify` again.")
    recorded = {main: entry.get("sha256")}
    for extra in entry.get("files") or []:
        if isinstance(extra, dict) and extra.get("sha256"):
            recorded[extra["path"]] = extra["sha256"]
    for rel, digest in recorded.items():
        if digest and sha256_file(layout.root / rel) != digest:
            raise ZooError(
                f"{layout.root / rel}: changed since `zoo verify` checked it (sha256 differs from {where}); "
                f"run `zoo verify --name {layout.name}` again."
            )
    return files


def _golden_files(layout: ModelLayout) -> list[str]:
    root = layout.test_data
    sets = sorted(p for p in root.glob("test_data_set_*") if p.is_dir()) if root.is_dir() else []
    if not sets:
        raise UsageError(
            f"{root}: no golden vectors (test_data_set_N folders); run `zoo verify --name {layout.name}` again."
        )
    return [f"test_data/{rel}" for rel in relative_files(root)]
