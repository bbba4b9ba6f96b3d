"""Versioned model bundles: assemble, checksum, sign, tar reproducibly, verify.

A bundle is a folder `<bundle>-<version>/` (and a `.tar.gz` of it) made from the
verified outputs of `zoo convert` / `zoo verify`:

    bundle.json                      what is inside, where it came from, how it was checked
    SHA256SUMS                       every file but itself and the signature (`sha256sum -c` format)
    bundle.sig                       OpenSSF model-signing signature over every other file (optional)
    models/<name>/MODEL_CARD.md      model card
    models/<name>/labels.txt         class names in output order
    models/<name>/report.json        the verification report the artifacts passed
    models/<name>/onnx/, FP32/ ...   the artifacts, laid out as in the output folder
    models/<name>/test_data/         golden vectors (ONNX test-data layout)

The same inputs give the same tarball bytes: entries sorted, one fixed mtime (the
bundle's creation time, itself taken from the inputs), uid/gid 0, no user names, a
gzip header without name or time. ECDSA signatures are randomized, so a signature is
reused when a re-run produces the same content with the same key.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import json
import os
import re
import shutil
import tarfile
import tempfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Any

from zoo.atomic import atomic_dir, atomic_open, copy_file, write_bytes, write_text
from zoo.errors import UsageError, ZooError
from zoo.integrity import sha256_file
from zoo.layout import ModelLayout
from zoo.manifest import ARTIFACTS, Manifest

SCHEMA = 1
BUNDLE_JSON = "bundle.json"
SUMS = "SHA256SUMS"
SIGNATURE = "bundle.sig"
MODELS_DIR = "models"
VERSION_PATTERN = re.compile(r"^\d+\.\d+\.\d+(?:-[0-9A-Za-z][0-9A-Za-z.\-]*)?$")
BUNDLE_NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9._\-]*$")
ENV_SIGN_PASSWORD = "ZOO_SIGN_PASSWORD"
_CHUNK = 1 << 20


class BundleCheckError(ZooError):
    """A bundle failed a check; `file` names the first file that differs (relative to the bundle)."""

    def __init__(self, message: str, file: str | None = None):
        super().__init__(message)
        self.file = file


# -- small helpers ----------------------------------------------------------------------------


def check_version(version: str) -> str:
    if not VERSION_PATTERN.match(version or ""):
        raise UsageError(
            f"--version: expected a semantic version such as 1.0.0 or 1.2.0-rc.1 (it is also the OCI tag), "
            f"got {version!r}."
        )
    return version


def bundle_dir_name(name: str, version: str) -> str:
    return f"{name}-{version}"


def _iso(epoch: int) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(value: Any, origin: str) -> int:
    try:
        stamp = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        raise UsageError(f"{origin}: field created: expected an ISO-8601 time, got {value!r}.") from None
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=UTC)
    return int(stamp.timestamp())


def _relative_files(root: Path) -> list[str]:
    """Every regular file under root as sorted posix paths; links and special files are refused."""
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            rel = path.relative_to(root).as_posix()
            if path.is_symlink():
                raise BundleCheckError(
                    f"{root}: {rel} is a symbolic link; bundles hold regular files only.", rel
                )
            if name in filenames and not path.is_file():
                raise BundleCheckError(f"{root}: {rel} is not a regular file.", rel)
        found += [(Path(dirpath) / n).relative_to(root).as_posix() for n in filenames]
    return sorted(found)


def _safe_relative(path: str, origin: str) -> str:
    pure = PurePosixPath(path)
    if not path or pure.is_absolute() or ".." in pure.parts or "\\" in path:
        raise BundleCheckError(f"{origin}: unsafe path {path!r} (absolute or with '..').", path)
    return pure.as_posix()


# -- inputs: the verified outputs of one model ------------------------------------------------


@dataclass
class ModelInput:
    """One model's verified outputs, checked and ready to copy into a bundle."""

    manifest: Manifest
    layout: ModelLayout
    report: dict[str, Any]
    kinds: list[str]
    files: dict[str, list[str]] = field(
        default_factory=dict
    )  # artifact kind -> paths relative to the model root
    golden: list[str] = field(default_factory=list)
    labels: list[str] = field(default_factory=list)
    created: int = 0


def _load_report(layout: ModelLayout, manifest: Manifest) -> dict[str, Any]:
    path = layout.report
    name = manifest.name
    if not path.is_file():
        raise UsageError(
            f"{path}: no verification report for {name}; run `zoo convert --name {name}` and "
            f"`zoo verify --name {name}` first (or point -o at the output folder they wrote)."
        )
    try:
        report = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UsageError(
            f"{path}: not a readable JSON report ({exc}); run `zoo verify --name {name}` again."
        ) from exc
    if not isinstance(report, dict) or report.get("schema") != 1:
        raise UsageError(
            f"{path}: field schema: expected a zoo report with schema 1, got {report.get('schema')!r}."
        )
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


def _normalize_kinds(precisions: list[str] | None) -> list[str] | None:
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
    report = _load_report(layout, manifest)
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
    main = _safe_relative(entry["path"], where + ".path")
    files = [main]
    if main.endswith(".xml"):
        files.append(main[: -len(".xml")] + ".bin")
    for extra in entry.get("files") or []:
        rel = _safe_relative(extra["path"] if isinstance(extra, dict) else str(extra), where + ".files")
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
    return [f"test_data/{rel}" for rel in _relative_files(root)]


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
    if sizes and max(sizes, key=sizes.get) == onnx.TensorProto.FLOAT16:
        return "FP16"
    return "FP32"


def _file_entry(root: Path, prefix: str, rel: str) -> dict[str, Any]:
    path = root / rel
    return {"path": f"{prefix}/{rel}", "size": path.stat().st_size, "sha256": sha256_file(path)}


def _artifact_entry(model: ModelInput, kind: str, prefix: str) -> dict[str, Any]:
    entry = model.report["artifacts"][kind]
    files = [_file_entry(model.layout.root, prefix, rel) for rel in model.files[kind]]
    main = files[0]
    if kind == "onnx":
        fmt, precision = "onnx", _onnx_precision(model.layout.root / model.files[kind][0])
    else:
        fmt, precision = "openvino-ir", kind
    item: dict[str, Any] = {
        "kind": kind,
        "format": fmt,
        "precision": precision,
        "path": main["path"],
        "size": sum(f["size"] for f in files),
        "sha256": main["sha256"],
        "files": files,
        "runtime": entry.get("runtime"),
        "parity": {
            key: entry[key]
            for key in ("hint", "metrics", "tolerance", "passed", "failures", "default_precision")
            if key in entry
        },
    }
    if "accuracy" in entry:
        item["accuracy"] = entry["accuracy"]
    quantization = (
        _quantization_facts(model.layout, model.files[kind][0], main["sha256"]) if kind == "INT8" else None
    )
    if quantization:
        item["quantization"] = quantization
    return item


def _quantization_facts(layout: ModelLayout, rel: str, sha256: str) -> dict[str, Any] | None:
    """What `zoo quantize` measured (agreement with FP32, accuracy control), when its stamp is of this file."""
    try:
        stamp = json.loads(layout.stamp("INT8").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(stamp, dict) or (stamp.get("outputs") or {}).get(rel, {}).get("sha256") != sha256:
        return None
    facts = stamp.get("quantization")
    return facts if isinstance(facts, dict) else None


def _model_entry(model: ModelInput, card_path: str, labels_path: str) -> dict[str, Any]:
    manifest, report = model.manifest, model.report
    prefix = f"{MODELS_DIR}/{manifest.name}"
    golden = [_file_entry(model.layout.root, prefix, rel) for rel in model.golden]
    sets = sorted(
        {
            part
            for f in golden
            for part in PurePosixPath(f["path"]).parts[3:4]
            if part.startswith("test_data_set_")
        }
    )
    return {
        "name": manifest.name,
        "version": manifest.version,
        "task": manifest.task,
        "framework": manifest.framework,
        "license": manifest.license.model_dump(mode="json"),
        "reference_weights": bool(report.get("reference_weights")),
        "manifest_sha256": manifest.digest,
        "manifest": manifest.model_dump(mode="json"),
        "sources": report.get("sources") or {},
        "labels": {"count": len(model.labels), "file": labels_path, "names": model.labels},
        "model_card": card_path,
        "report": f"{prefix}/report.json",
        "verification": {
            "created": report.get("created"),
            "passed": report.get("passed"),
            "probes": report.get("probes"),
            "expectations": report.get("expectations") or [],
            "versions": report.get("versions") or {},
        },
        "artifacts": [_artifact_entry(model, kind, prefix) for kind in model.kinds],
        "golden_vectors": {"path": f"{prefix}/test_data", "sets": len(sets), "files": golden},
    }


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
    from zoo.model_card import render_model_card
    from zoo.versions import versions

    check_version(version)
    if not manifests:
        raise UsageError("no models selected: give --name NAME[,PATTERN...], --all, or --list FILE.")
    name = default_bundle_name(manifests, bundle_name, name_prefix)
    kinds = _normalize_kinds(precisions)
    signer = _load_private_key(sign_key) if sign_key is not None else None
    models = [collect_model(m, out, kinds, allow_reference_weights) for m in manifests]
    epoch, created_from = creation_time(models)
    created = _iso(epoch)
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
            entry = _model_entry(model, card_path, labels_path)
            card = render_model_card(
                model.manifest, model.report, entry, bundle={"name": name, "version": version}
            )
            write_text(tmp / card_path, card)
            write_text(model.layout.model_card, card)
            entries.append(entry)
        document = {
            "schema": SCHEMA,
            "kind": "zoo-bundle",
            "name": name,
            "version": version,
            "created": created,
            "created_from": created_from,
            "versions": versions(),
            "reference_weights": any(e["reference_weights"] for e in entries),
            "licenses": sorted({e["license"]["name"] for e in entries}),
            "non_commercial": sorted(
                e["name"] for e in entries if not e["license"].get("commercial_use", True)
            ),
            "signature": signer.describe() if signer else None,
            "models": entries,
        }
        write_text(tmp / BUNDLE_JSON, json.dumps(document, indent=2) + "\n")
        write_text(tmp / SUMS, _sums_text(tmp))
        if signer is not None:
            reused = _reuse_signature(folder, tmp, signer)
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
        created=created,
        created_from=created_from,
        models=[m.manifest.name for m in models],
        signed=signer is not None,
        signature_reused=reused,
        reference_weights=document["reference_weights"],
        non_commercial=document["non_commercial"],
    )


def _sums_text(root: Path) -> str:
    lines = [
        f"{sha256_file(root / rel)}  {rel}\n" for rel in _relative_files(root) if rel not in (SUMS, SIGNATURE)
    ]
    return "".join(lines)


def write_tarball(folder: Path, target: Path, mtime: int) -> None:
    """A .tar.gz of folder whose bytes depend only on the files' names and contents and on mtime."""
    top = folder.name
    with atomic_open(target, "wb") as raw:
        with gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=6) as zipped:
            with tarfile.open(fileobj=zipped, mode="w", format=tarfile.PAX_FORMAT) as tar:
                tar.addfile(_tar_info(top, mtime, directory=True))
                for rel in _tar_entries(folder):
                    path = folder / rel
                    if path.is_dir():
                        tar.addfile(_tar_info(f"{top}/{rel}", mtime, directory=True))
                    else:
                        info = _tar_info(f"{top}/{rel}", mtime, size=path.stat().st_size)
                        with open(path, "rb") as handle:
                            tar.addfile(info, handle)


def _tar_entries(folder: Path) -> list[str]:
    files = _relative_files(folder)
    dirs = {str(PurePosixPath(f).parents[i]) for f in files for i in range(len(PurePosixPath(f).parts) - 1)}
    return sorted(dirs | set(files))


def _tar_info(name: str, mtime: int, *, directory: bool = False, size: int = 0) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.mtime = int(mtime)
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    if directory:
        info.type = tarfile.DIRTYPE
        info.mode = 0o755
    else:
        info.type = tarfile.REGTYPE
        info.mode = 0o644
        info.size = size
    return info


# -- signing ------------------------------------------------------------------------------------


def _public_key_hint(pem: bytes) -> str:
    """sha256 of the PEM public key: the hint model-signing stores in a signature."""
    return hashlib.sha256(pem).hexdigest()


@dataclass
class Signer:
    """An elliptic-curve private key (PEM) used through OpenSSF model-signing, offline."""

    path: Path
    password: str | None
    public_pem: bytes
    curve: str

    def describe(self) -> dict[str, Any]:
        return {
            "file": SIGNATURE,
            "method": "OpenSSF model-signing (sigstore bundle, DSSE in-toto statement, key pair)",
            "key": f"ecdsa-{self.curve}",
            "public_key_sha256": _public_key_hint(self.public_pem),
        }

    def sign(self, folder: Path) -> None:
        from model_signing import hashing, signing

        hashing_config = hashing.Config().set_ignored_paths(paths=[SIGNATURE], ignore_git_paths=False)
        config = signing.Config().set_hashing_config(hashing_config)
        # model-signing hands the password straight to cryptography, which wants bytes
        password = self.password.encode() if self.password else None
        config.use_elliptic_key_signer(private_key=self.path, password=password)
        # written in place: the folder is still the unpublished temporary one, and the signature is
        # the one file the hashing leaves out (a temporary name beside it would be signed too)
        config.sign(folder, folder / SIGNATURE)


def _load_private_key(path: Path) -> Signer:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    password = os.environ.get(ENV_SIGN_PASSWORD)
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise UsageError(f"{path}: --sign-key: cannot read the private key: {exc.strerror or exc}.") from exc
    try:
        key = serialization.load_pem_private_key(data, password.encode() if password else None)
    except TypeError as exc:
        raise UsageError(
            f"{path}: --sign-key: the key is encrypted; put its password in {ENV_SIGN_PASSWORD} ({exc})."
        ) from exc
    except ValueError as exc:
        raise UsageError(
            f"{path}: --sign-key: expected a PEM elliptic-curve private key (make one with `zoo bundle keygen`): {exc}"
        ) from exc
    if not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.name not in (
        "secp256r1",
        "secp384r1",
        "secp521r1",
    ):
        raise UsageError(
            f"{path}: --sign-key: expected an elliptic-curve key on P-256, P-384 or P-521 "
            f"(what model-signing supports), got {type(key).__name__}."
        )
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return Signer(path=Path(path), password=password, public_pem=public, curve=key.curve.name)


def _reuse_signature(previous: Path, new: Path, signer: Signer) -> bool:
    """Keep the previous run's signature when it covers exactly this content and this key."""
    old_sig, old_sums = previous / SIGNATURE, previous / SUMS
    if not (old_sig.is_file() and old_sums.is_file()):
        return False
    if old_sums.read_bytes() != (new / SUMS).read_bytes():
        return False
    with tempfile.TemporaryDirectory() as scratch:
        public = Path(scratch) / "key.pub"
        public.write_bytes(signer.public_pem)
        try:
            _check_signature(new, old_sig, public)
        except BundleCheckError:
            return False
    copy_file(old_sig, new / SIGNATURE)
    return True


def _check_signature(folder: Path, signature: Path, public_key: Path, shown: Path | None = None) -> None:
    from model_signing import verifying

    shown = shown or folder
    try:
        config = verifying.Config().use_elliptic_key_verifier(public_key=public_key)
    except (ValueError, TypeError) as exc:
        raise UsageError(
            f"{public_key}: --public-key: expected a PEM elliptic-curve public key: {exc}"
        ) from exc
    try:
        config.verify(folder, signature)
    except Exception as exc:  # model-signing raises ValueError, InvalidSignature, JSON and protobuf errors
        from cryptography.exceptions import InvalidSignature

        message = str(exc)
        if message.startswith("Signature mismatch"):
            first = _first_signed_mismatch(folder, signature)
            raise BundleCheckError(
                f"{shown}: {first or 'a file'} differs from what {SIGNATURE} signed.", first or SIGNATURE
            ) from exc
        if isinstance(exc, InvalidSignature) or "Key mismatch" in message:
            raise BundleCheckError(
                f"{shown}: {SIGNATURE}: the signature does not verify with public key {public_key} "
                f"(signed with another key, or the signature was altered).",
                SIGNATURE,
            ) from exc
        detail = message or type(exc).__name__
        raise BundleCheckError(f"{shown}: {SIGNATURE}: not a valid signature ({detail}).", SIGNATURE) from exc


def _first_signed_mismatch(folder: Path, signature: Path) -> str | None:
    """The first file whose digest differs from the (already authenticated) signed statement."""
    import base64

    try:
        envelope = json.loads(signature.read_text())["dsseEnvelope"]
        statement = json.loads(base64.b64decode(envelope["payload"]))
        signed = {r["name"]: r["digest"] for r in statement["predicate"]["resources"]}
    except (KeyError, ValueError, TypeError):
        return None
    actual = {rel: None for rel in _relative_files(folder) if rel != SIGNATURE}
    # content before the lists of sums that describe it: name the file that was changed, not the cover-up
    for rel in sorted(set(signed) | set(actual), key=lambda r: (r in (SUMS, BUNDLE_JSON), r)):
        if rel not in signed or rel not in actual or sha256_file(folder / rel) != signed[rel]:
            return rel
    return None


def keygen(path: Path, force: bool = False) -> tuple[Path, Path]:
    """Write a P-256 private key (PATH, mode 600) and its public key (PATH.pub) for offline signing."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    path = Path(path)
    public_path = path.with_name(path.name + ".pub")
    for target in (path, public_path):
        if target.exists() and not force:
            raise UsageError(f"{target}: already exists; pass --force to replace the key pair.")
    key = ec.generate_private_key(ec.SECP256R1())
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    with atomic_open(path, "wb") as handle:
        os.fchmod(handle.fileno(), 0o600)
        handle.write(private)
    write_bytes(public_path, public)
    return path, public_path


# -- verifying ----------------------------------------------------------------------------------


@dataclass
class VerifyResult:
    path: Path
    name: str
    version: str
    models: list[str]
    files: int
    signed: bool
    signature_checked: bool
    reference_weights: bool
    created: str
    non_commercial: list[str]

    def as_dict(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "name": self.name,
            "version": self.version,
            "models": self.models,
            "files": self.files,
            "signed": self.signed,
            "signature_checked": self.signature_checked,
            "reference_weights": self.reference_weights,
            "created": self.created,
            "non_commercial": self.non_commercial,
            "passed": True,
        }


@contextlib.contextmanager
def opened_bundle(path: Path) -> Iterator[Path]:
    """The bundle folder for a folder or a .tar.gz (extracted safely into a temporary folder)."""
    path = Path(path)
    if path.is_dir():
        yield path
        return
    if not path.is_file():
        raise UsageError(f"{path}: no such bundle (expected a bundle folder or its .tar.gz).")
    with tempfile.TemporaryDirectory(prefix="zoo-bundle-") as scratch:
        yield extract_tarball(path, Path(scratch))


def extract_tarball(tarball: Path, dest: Path) -> Path:
    """Extract a bundle tarball into dest; refuse links, devices, absolute paths, '..' and stray tops."""
    try:
        tar = tarfile.open(tarball, "r:gz")
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise BundleCheckError(
            f"{tarball}: not a readable .tar.gz bundle ({exc}).", Path(tarball).name
        ) from exc
    with tar:
        try:
            members = tar.getmembers()
        except (tarfile.TarError, OSError, EOFError, zlib.error) as exc:
            raise BundleCheckError(f"{tarball}: the archive is damaged ({exc}).", Path(tarball).name) from exc
        tops, entries = set(), []
        for member in members:
            rel = _safe_relative(member.name.rstrip("/"), f"{tarball}: member")
            if not (member.isfile() or member.isdir()):
                raise BundleCheckError(
                    f"{tarball}: member {member.name!r} is a link or special file; bundles hold regular files only.",
                    member.name,
                )
            tops.add(PurePosixPath(rel).parts[0])
            entries.append((rel, member))
        if len(tops) != 1:
            raise BundleCheckError(
                f"{tarball}: expected one top folder <bundle>-<version>/, found {sorted(tops)}."
            )
        top = tops.pop()
        for rel, member in entries:
            target = dest / rel
            try:
                if member.isdir():
                    target.mkdir(parents=True, exist_ok=True)
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                with tar.extractfile(member) as source, open(target, "wb") as handle:
                    shutil.copyfileobj(source, handle, _CHUNK)
            except (tarfile.TarError, OSError, EOFError, zlib.error) as exc:
                raise BundleCheckError(
                    f"{tarball}: cannot extract {member.name} (a damaged archive, or a file where a folder "
                    f"belongs): {exc}.",
                    member.name,
                ) from exc
    return dest / top


def _read_sums(folder: Path) -> dict[str, str]:
    path = folder / SUMS
    if not path.is_file():
        raise BundleCheckError(f"{folder}: {SUMS} is missing; this is not a complete zoo bundle.", SUMS)
    sums: dict[str, str] = {}
    for number, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
        match = re.fullmatch(r"([0-9a-f]{64}) [ *](.+)", line)
        if not match:
            raise BundleCheckError(
                f"{path}: line {number}: expected '<sha256>  <path>', got {line[:80]!r}.", SUMS
            )
        rel = _safe_relative(match.group(2), f"{path}: line {number}")
        sums[rel] = match.group(1)
    return sums


def verify_bundle(
    path: Path, public_key: Path | None = None, require_signature: bool = False
) -> VerifyResult:
    """Re-check every size, checksum and the signature; raise BundleCheckError naming the first file that differs."""
    with opened_bundle(path) as folder:
        return verify_folder(
            folder, public_key=public_key, require_signature=require_signature, shown=Path(path)
        )


def verify_folder(
    folder: Path, public_key: Path | None = None, require_signature: bool = False, shown: Path | None = None
) -> VerifyResult:
    shown = shown or folder
    if public_key is not None and not Path(public_key).is_file():
        raise UsageError(f"{public_key}: --public-key: no such file.")
    sums = _read_sums(folder)
    present = _relative_files(folder)
    document = _read_bundle_json(folder, sums, shown)
    sizes = _recorded_sizes(document)
    for rel, digest in sums.items():
        target = folder / rel
        if rel not in present:
            raise BundleCheckError(f"{shown}: {rel} is listed in {SUMS} but missing.", rel)
        if rel in sizes and target.stat().st_size != sizes[rel]:
            raise BundleCheckError(
                f"{shown}: {rel} has {target.stat().st_size} bytes, {BUNDLE_JSON} says {sizes[rel]}.", rel
            )
        if sha256_file(target) != digest:
            raise BundleCheckError(f"{shown}: {rel} differs: its sha256 is not the one in {SUMS}.", rel)
    extra = [rel for rel in present if rel not in sums and rel not in (SUMS, SIGNATURE)]
    if extra:
        raise BundleCheckError(f"{shown}: {extra[0]} is not listed in {SUMS} (an added file).", extra[0])
    for rel, digest in _recorded_digests(document).items():
        if sums.get(rel) != digest:
            raise BundleCheckError(
                f"{shown}: {rel}: {BUNDLE_JSON} and {SUMS} disagree about its sha256.", rel
            )
    signed = (folder / SIGNATURE).is_file()
    promised = document.get("signature")
    if promised and not signed:
        raise BundleCheckError(
            f"{shown}: {BUNDLE_JSON} says the bundle is signed, but {SIGNATURE} is missing.", SIGNATURE
        )
    if signed and not promised:
        raise BundleCheckError(
            f"{shown}: {SIGNATURE} is present, but {BUNDLE_JSON} records no signature.", SIGNATURE
        )
    if require_signature and not signed:
        raise BundleCheckError(f"{shown}: the bundle is not signed (--require-signature).", SIGNATURE)
    if public_key is not None:
        if not signed:
            raise BundleCheckError(f"{shown}: --public-key given, but the bundle is not signed.", SIGNATURE)
        _check_signature(folder, folder / SIGNATURE, Path(public_key), shown)
    return VerifyResult(
        path=shown,
        name=document["name"],
        version=document["version"],
        models=[m.get("name") for m in document.get("models", [])],
        files=len(sums),
        signed=signed,
        signature_checked=signed and public_key is not None,
        reference_weights=bool(document.get("reference_weights")),
        created=document.get("created", ""),
        non_commercial=list(document.get("non_commercial") or []),
    )


def _read_bundle_json(folder: Path, sums: dict[str, str], shown: Path) -> dict[str, Any]:
    path = folder / BUNDLE_JSON
    if not path.is_file():
        raise BundleCheckError(f"{shown}: {BUNDLE_JSON} is missing.", BUNDLE_JSON)
    if BUNDLE_JSON not in sums:
        raise BundleCheckError(f"{shown}: {BUNDLE_JSON} is not listed in {SUMS}.", BUNDLE_JSON)
    if sha256_file(path) != sums[BUNDLE_JSON]:
        raise BundleCheckError(
            f"{shown}: {BUNDLE_JSON} differs: its sha256 is not the one in {SUMS}.", BUNDLE_JSON
        )
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BundleCheckError(f"{shown}: {BUNDLE_JSON} is not valid JSON ({exc}).", BUNDLE_JSON) from exc
    if (
        not isinstance(document, dict)
        or document.get("schema") != SCHEMA
        or document.get("kind") != "zoo-bundle"
    ):
        raise BundleCheckError(
            f"{shown}: {BUNDLE_JSON}: expected a zoo bundle with schema {SCHEMA}.", BUNDLE_JSON
        )
    for key in ("name", "version", "models"):
        if key not in document:
            raise BundleCheckError(f"{shown}: {BUNDLE_JSON}: field {key} is missing.", BUNDLE_JSON)
    return document


def _recorded_files(document: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for model in document.get("models") or []:
        for artifact in model.get("artifacts") or []:
            yield from artifact.get("files") or []
        yield from (model.get("golden_vectors") or {}).get("files") or []


def _recorded_sizes(document: dict[str, Any]) -> dict[str, int]:
    return {f["path"]: f["size"] for f in _recorded_files(document) if "path" in f and "size" in f}


def _recorded_digests(document: dict[str, Any]) -> dict[str, str]:
    return {f["path"]: f["sha256"] for f in _recorded_files(document) if "path" in f and "sha256" in f}


def read_bundle_json(folder: Path) -> dict[str, Any]:
    return json.loads((Path(folder) / BUNDLE_JSON).read_text(encoding="utf-8"))
