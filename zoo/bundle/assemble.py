"""Assemble a bundle folder from verified model outputs: copy, describe, checksum, sign, tar.

Each model's artifacts, golden vectors, labels, report and model card go under
`models/<name>/`; bundle.json (a BundleRecord) says what they are and how they were
checked, SHA256SUMS lists every file, and bundle.sig signs them when a key is given.
The creation time comes from the inputs (or SOURCE_DATE_EPOCH), so the same inputs
give the same bytes.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from zoo.atomic import atomic_dir, copy_file, write_text
from zoo.bundle.archive import write_tarball
from zoo.bundle.inputs import ModelInput, collect_model, normalize_kinds
from zoo.bundle.names import (
    BUNDLE_JSON,
    BUNDLE_NAME_PATTERN,
    MODELS_DIR,
    SIGNATURE,
    SUMS,
    bundle_dir_name,
    check_version,
    iso,
    relative_files,
)
from zoo.bundle.record import (
    SCHEMA,
    ArtifactRecord,
    BundleRecord,
    FileRecord,
    GoldenRecord,
    LabelsRecord,
    LicenseRecord,
    ModelRecord,
    ParityRecord,
    VerificationRecord,
    dump_bundle,
)
from zoo.bundle.sign import load_private_key, reuse_signature
from zoo.errors import UsageError
from zoo.integrity import sha256_file
from zoo.layout import ModelLayout
from zoo.manifest import Manifest
from zoo.stamps import read_stamp

#: the report's artifact facts copied into an artifact's parity record, in this order
_PARITY_KEYS = ("hint", "metrics", "tolerance", "passed", "failures", "default_precision")


# -- describing what goes in ------------------------------------------------------------------


def _onnx_precision(path: Path) -> str:
    """What an ONNX file computes in, read off its graph: INT8 when quantized, FP16 or FP32 from its weights."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    ops = {node.op_type for node in model.graph.node}
    if ops & {
        "QuantizeLinear",
        "DequantizeLinear",
        "QLinearConv",
        "QLinearMatMul",
        "ConvInteger",
        "MatMulInteger",
    }:
        return "INT8"
    sizes: dict[int, int] = {}
    for tensor in model.graph.initializer:
        count = 1
        for dim in tensor.dims:
            count *= dim
        sizes[tensor.data_type] = sizes.get(tensor.data_type, 0) + count
    if sizes and max(sizes, key=lambda k: sizes[k]) == onnx.TensorProto.FLOAT16:
        return "FP16"
    return "FP32"


def _file_record(root: Path, prefix: str, rel: str) -> FileRecord:
    path = root / rel
    return FileRecord(path=f"{prefix}/{rel}", size=path.stat().st_size, sha256=sha256_file(path))


def _artifact_record(model: ModelInput, kind: str, prefix: str) -> ArtifactRecord:
    entry = model.report["artifacts"][kind]
    files = [_file_record(model.layout.root, prefix, rel) for rel in model.files[kind]]
    main = files[0]
    if kind == "onnx":
        fmt, precision = "onnx", _onnx_precision(model.layout.root / model.files[kind][0])
    else:
        fmt, precision = "openvino-ir", kind
    optional: dict[str, Any] = {}
    if "accuracy" in entry:
        optional["accuracy"] = entry["accuracy"]
    quantization = (
        _quantization_facts(model.layout, model.files[kind][0], main.sha256) if kind == "INT8" else None
    )
    if quantization:
        optional["quantization"] = quantization
    return ArtifactRecord(
        kind=kind,
        format=fmt,
        precision=precision,
        path=main.path,
        size=sum(f.size for f in files),
        sha256=main.sha256,
        files=files,
        runtime=entry.get("runtime"),
        parity=ParityRecord(**{key: entry[key] for key in _PARITY_KEYS if key in entry}),
        **optional,
    )


def _quantization_facts(layout: ModelLayout, rel: str, sha256: str) -> dict[str, Any] | None:
    """What `zoo quantize` measured (agreement with FP32, accuracy control), when its stamp is of this file."""
    stamp = read_stamp(layout.stamp("INT8"))
    if stamp is None or rel not in stamp.outputs or stamp.outputs[rel].sha256 != sha256:
        return None
    facts = stamp.fact("quantization")
    return facts if isinstance(facts, dict) else None


def _without_passwords(manifest: dict[str, Any]) -> dict[str, Any]:
    """The manifest as bundled: a password in a source URL is masked (a bundle is meant for others)."""
    from zoo.sources import redact_url

    for entry in manifest.get("files") or []:
        for source in entry.get("sources") or []:
            if source.get("url"):
                source["url"] = redact_url(source["url"])
    return manifest


def _model_record(model: ModelInput, card_path: str, labels_path: str) -> ModelRecord:
    manifest, report = model.manifest, model.report
    prefix = f"{MODELS_DIR}/{manifest.name}"
    golden = [_file_record(model.layout.root, prefix, rel) for rel in model.golden]
    sets = {
        part for f in golden for part in PurePosixPath(f.path).parts[3:4] if part.startswith("test_data_set_")
    }
    return ModelRecord(
        name=manifest.name,
        version=manifest.version,
        task=manifest.task,
        framework=manifest.framework,
        license=LicenseRecord(**manifest.license.model_dump(mode="json")),
        reference_weights=bool(report.get("reference_weights")),
        manifest_sha256=manifest.digest,
        manifest=_without_passwords(manifest.model_dump(mode="json")),
        sources=report.get("sources") or {},
        labels=LabelsRecord(count=len(model.labels), file=labels_path, names=model.labels),
        model_card=card_path,
        report=f"{prefix}/report.json",
        verification=VerificationRecord(
            created=report.get("created"),
            passed=report.get("passed"),
            probes=report.get("probes"),
            expectations=report.get("expectations") or [],
            versions=report.get("versions") or {},
        ),
        artifacts=[_artifact_record(model, kind, prefix) for kind in model.kinds],
        golden_vectors=GoldenRecord(path=f"{prefix}/test_data", sets=len(sets), files=golden),
    )


def creation_time(models: list[ModelInput]) -> tuple[int, str]:
    """(epoch seconds, where it came from): SOURCE_DATE_EPOCH when set, else the newest report."""
    env = os.environ.get("SOURCE_DATE_EPOCH")
    if env:
        if not env.strip().isdigit():
            raise UsageError(f"SOURCE_DATE_EPOCH: expected whole seconds since 1970, got {env!r}.")
        return int(env), "SOURCE_DATE_EPOCH"
    newest = max(models, key=lambda m: m.created)
    return newest.created, f"newest report.json 'created' ({newest.manifest.name})"


# -- building -----------------------------------------------------------------------------------


@dataclass
class BundleResult:
    name: str
    version: str
    directory: Path
    tarball: Path
    tarball_sha256: str
    tarball_size: int
    created: str
    created_from: str
    models: list[str]
    signed: bool
    signature_reused: bool = False
    reference_weights: bool = False
    non_commercial: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "directory": str(self.directory),
            "tarball": str(self.tarball),
            "tarball_sha256": self.tarball_sha256,
            "tarball_size": self.tarball_size,
            "created": self.created,
            "created_from": self.created_from,
            "models": self.models,
            "signed": self.signed,
            "signature_reused": self.signature_reused,
            "reference_weights": self.reference_weights,
            "non_commercial": self.non_commercial,
        }


def default_bundle_name(manifests: list[Manifest], name: str | None, prefix: str) -> str:
    base = name or (manifests[0].name if len(manifests) == 1 else "zoo")
    full = f"{prefix}{base}"
    if not BUNDLE_NAME_PATTERN.match(full):
        raise UsageError(
            f"--bundle-name/--name-prefix: {full!r} is not a usable bundle name "
            f"(lower-case letters, digits, '.', '-', '_'; it starts with a letter or digit)."
        )
    return full


def build_bundle(
    manifests: list[Manifest],
    out: Path,
    dist: Path,
    version: str,
    *,
    bundle_name: str | None = None,
    name_prefix: str = "",
    precisions: list[str] | None = None,
    sign_key: Path | None = None,
    allow_reference_weights: bool = False,
) -> BundleResult:
    """Make `<dist>/<bundle>-<version>/` and its reproducible `.tar.gz` from verified model outputs."""
    from zoo.bundle.model_card import render_model_card
    from zoo.versions import versions

    check_version(version)
    if not manifests:
        raise UsageError("no models selected: give --name NAME[,PATTERN...], --all, or --list FILE.")
    name = default_bundle_name(manifests, bundle_name, name_prefix)
    kinds = normalize_kinds(precisions)
    signer = load_private_key(sign_key) if sign_key is not None else None
    models = [collect_model(m, out, kinds, allow_reference_weights) for m in manifests]
    epoch, created_from = creation_time(models)
    folder = Path(dist) / bundle_dir_name(name, version)
    tarball = Path(dist) / f"{folder.name}.tar.gz"
    reused = False

    with atomic_dir(folder) as tmp:
        entries = []
        for model in models:
            prefix = f"{MODELS_DIR}/{model.manifest.name}"
            target = tmp / prefix
            for rel in [r for kind in model.kinds for r in model.files[kind]] + model.golden:
                copy_file(model.layout.root / rel, target / rel)
            copy_file(model.layout.report, target / "report.json")
            labels_path = f"{prefix}/labels.txt"
            write_text(tmp / labels_path, "".join(f"{label}\n" for label in model.labels))
            card_path = f"{prefix}/MODEL_CARD.md"
            entry = _model_record(model, card_path, labels_path)
            card = render_model_card(
                model.manifest, model.report, entry, bundle={"name": name, "version": version}
            )
            write_text(tmp / card_path, card)
            write_text(model.layout.model_card, card)
            entries.append(entry)
        record = BundleRecord(
            schema=SCHEMA,
            kind="zoo-bundle",
            name=name,
            version=version,
            created=iso(epoch),
            created_from=created_from,
            versions=versions(),
            reference_weights=any(e.reference_weights for e in entries),
            licenses=sorted({e.license.name for e in entries}),
            non_commercial=sorted(e.name for e in entries if not e.license.commercial_use),
            signature=signer.describe() if signer else None,
            models=entries,
        )
        write_text(tmp / BUNDLE_JSON, dump_bundle(record))
        write_text(tmp / SUMS, _sums_text(tmp))
        if signer is not None:
            reused = reuse_signature(folder, tmp, signer)
            if not reused:
                signer.sign(tmp)
    write_tarball(folder, tarball, epoch)
    return BundleResult(
        name=name,
        version=version,
        directory=folder,
        tarball=tarball,
        tarball_sha256=sha256_file(tarball),
        tarball_size=tarball.stat().st_size,
        created=record.created,
        created_from=created_from,
        models=[m.manifest.name for m in models],
        signed=signer is not None,
        signature_reused=reused,
        reference_weights=record.reference_weights,
        non_commercial=record.non_commercial,
    )


def _sums_text(root: Path) -> str:
    lines = [
        f"{sha256_file(root / rel)}  {rel}\n" for rel in relative_files(root) if rel not in (SUMS, SIGNATURE)
    ]
    return "".join(lines)
