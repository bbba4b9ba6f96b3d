"""Publish bundles to a folder or an OCI registry, list what a target holds, pull and verify.

A folder target holds each version as `<bundle>-<version>.tar.gz` with a record
`<bundle>-<version>.json` beside it (bundle, version, models, sha256 and size of the tarball);
an OCI target is described in zoo.bundle.oci. Nothing is overwritten unless asked (`force`),
and a pull is verified before it is kept.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from zoo.atomic import atomic_dir, copy_file, write_json
from zoo.bundle.archive import extract_tarball, opened_bundle, write_tarball
from zoo.bundle.check import VerifyResult, check_key_options, verify_folder
from zoo.bundle.names import BUNDLE_JSON, BundleCheckError, bundle_dir_name, parse_time, version_key
from zoo.bundle.oci import fetch_oci, list_oci, push_oci
from zoo.bundle.record import BundleRecord, PublishedRecord
from zoo.bundle.targets import FolderTarget, OciTarget, parse_target
from zoo.errors import UsageError
from zoo.integrity import sha256_file


@dataclass
class Published:
    target: str
    name: str
    version: str
    sha256: str
    size: int
    models: list[str]
    signed: bool
    replaced: bool
    digest: str | None = None  # OCI manifest digest

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _published_record(document: BundleRecord, signed: bool, sha256: str, size: int) -> PublishedRecord:
    return PublishedRecord(
        name=document.name,
        version=document.version,
        created=document.created,
        models=[f"{m.name}@{m.version}" for m in document.models],
        licenses=list(document.licenses),
        signed=signed,
        reference_weights=document.reference_weights,
        sha256=sha256,
        size=size,
    )


def _published(where: str, record: PublishedRecord, replaced: bool, digest: str | None = None) -> Published:
    return Published(
        where,
        record.name,
        record.version,
        record.sha256,
        record.size or 0,
        record.models,
        record.signed,
        replaced,
        digest,
    )


def publish(
    bundle: Path,
    target_text: str,
    *,
    force: bool = False,
    plain_http: bool = False,
    public_key: Path | None = None,
) -> Published:
    """Verify the bundle (a folder or its .tar.gz), then copy or push it; refuse to replace a version."""
    target = parse_target(target_text, plain_http)
    with tempfile.TemporaryDirectory(prefix="zoo-publish-") as scratch_name:
        scratch = Path(scratch_name)
        with opened_bundle(Path(bundle)) as folder:
            verified = verify_folder(folder, public_key=public_key, shown=Path(bundle))
            document = verified.record
            config = scratch / BUNDLE_JSON
            copy_file(folder / BUNDLE_JSON, config)
            if Path(bundle).is_dir():
                tarball = scratch / f"{folder.name}.tar.gz"
                write_tarball(folder, tarball, parse_time(document.created, str(folder / BUNDLE_JSON)))
            else:
                tarball = Path(bundle)
            expected = bundle_dir_name(document.name, document.version)
            if folder.name != expected:
                raise UsageError(
                    f"{bundle}: the bundle folder is {folder.name!r}, but {BUNDLE_JSON} names "
                    f"{expected!r}; keep the name the bundle was made with."
                )
        record = _published_record(document, verified.signed, sha256_file(tarball), tarball.stat().st_size)
        if isinstance(target, FolderTarget):
            return _publish_folder(target, tarball, record, force)
        tagged, replaced, digest = push_oci(target, tarball, config, record, force)
        return _published(str(tagged), record, replaced, digest)


def _publish_folder(target: FolderTarget, tarball: Path, record: PublishedRecord, force: bool) -> Published:
    base = bundle_dir_name(record.name, record.version)
    destination = target.path / f"{base}.tar.gz"
    index = target.path / f"{base}.json"
    if target.path.exists() and not target.path.is_dir():
        raise UsageError(f"{target.path}: --to: expected a folder, found a file.")
    replaced = destination.exists() or index.exists()
    if replaced and not force:
        raise UsageError(
            f"{destination}: version {record.version} of {record.name} is already published there; "
            f"pass --force to replace it (or publish a new --version)."
        )
    copy_file(tarball, destination)
    write_json(index, record.model_dump(mode="json"))
    return _published(str(target.path), record, replaced)


def list_versions(target_text: str, plain_http: bool = False) -> list[dict[str, Any]]:
    """What a target holds: one row per published version."""
    target = parse_target(target_text, plain_http)
    if isinstance(target, FolderTarget):
        return _list_folder(target)
    return list_oci(target)


def _list_folder(target: FolderTarget) -> list[dict[str, Any]]:
    if not target.path.is_dir():
        raise UsageError(f"{target.path}: no such folder.")
    rows = []
    for index in sorted(target.path.glob("*.json")):
        try:
            record = PublishedRecord.model_validate_json(index.read_bytes())
        except (OSError, ValidationError):
            continue  # some other JSON file beside the bundles
        tarball = index.with_suffix(".tar.gz")
        rows.append(
            {**record.model_dump(), "tag": None, "location": str(tarball), "present": tarball.is_file()}
        )
    return sorted(rows, key=lambda r: (r["name"], version_key(r["version"])))


@dataclass
class Pulled:
    source: str
    directory: Path
    tarball: Path
    verified: VerifyResult

    def as_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "directory": str(self.directory),
            "tarball": str(self.tarball),
            **{k: v for k, v in self.verified.as_dict().items() if k != "path"},
        }


def pull(
    ref: str,
    out: Path,
    *,
    version: str | None = None,
    bundle_name: str | None = None,
    public_key: Path | None = None,
    require_signature: bool = False,
    force: bool = False,
    plain_http: bool = False,
) -> Pulled:
    """Fetch a published bundle into `out`, verify it, keep `<bundle>-<version>/` and its tarball."""
    out = Path(out)
    check_key_options(public_key, require_signature)
    if out.exists() and not out.is_dir():
        raise UsageError(f"{out}: --output-dir: exists and is not a folder.")
    with tempfile.TemporaryDirectory(prefix="zoo-pull-") as scratch_name:
        scratch = Path(scratch_name)
        downloaded = scratch / "bundle.tar.gz"
        source = _fetch(ref, downloaded, version, bundle_name, plain_http)
        folder = extract_tarball(downloaded, scratch / "extracted")
        verified = verify_folder(
            folder, public_key=public_key, require_signature=require_signature, shown=Path(source)
        )
        document = verified.record
        expected = bundle_dir_name(document.name, document.version)
        if folder.name != expected:
            raise BundleCheckError(
                f"{source}: the archive's folder is {folder.name!r}, {BUNDLE_JSON} names {expected!r}."
            )
        if version and document.version != version:
            raise BundleCheckError(
                f"{source}: asked for version {version}, the bundle says {document.version}."
            )
        directory = out / expected
        tarball = out / f"{expected}.tar.gz"
        if (directory.exists() or tarball.exists()) and not force:
            raise UsageError(f"{directory}: already exists; pass --force to replace it.")
        with atomic_dir(directory) as tmp:
            shutil.rmtree(tmp)
            shutil.copytree(folder, tmp)
        copy_file(downloaded, tarball)
    return Pulled(source, directory, tarball, verified)


def _fetch(ref: str, dest: Path, version: str | None, bundle_name: str | None, plain_http: bool) -> str:
    target = parse_target(ref, plain_http)
    if isinstance(target, OciTarget):
        return fetch_oci(target, dest, version)
    path = target.path
    if path.is_file():
        copy_file(path, dest)
        return str(path)
    if not path.is_dir():
        raise UsageError(f"{ref}: no such bundle file or folder target.")
    rows = [r for r in _list_folder(target) if r["present"]]
    if bundle_name:
        rows = [r for r in rows if r["name"] == bundle_name]
    if version:
        rows = [r for r in rows if r["version"] == version]
    names = sorted({r["name"] for r in rows})
    if len(names) > 1:
        raise UsageError(f"{ref}: holds several bundles ({', '.join(names)}); choose one with --bundle NAME.")
    if not rows:
        raise UsageError(
            f"{ref}: no published bundle"
            + (f" {bundle_name}" if bundle_name else "")
            + (f" version {version}" if version else "")
            + " there (see `zoo bundle ls`)."
        )
    if not version and len(rows) > 1:
        raise UsageError(
            f"{ref}: holds versions {', '.join(r['version'] for r in rows)}; choose one with --version."
        )
    record = rows[-1]
    copy_file(record["location"], dest)
    if sha256_file(dest) != record["sha256"]:
        raise BundleCheckError(
            f"{record['location']}: the tarball's sha256 is not the one its record {Path(record['location']).name}"
            f" notes; the published copy was changed.",
            Path(record["location"]).name,
        )
    return str(record["location"])
