"""Checking a bundle (a folder or its .tar.gz): every size, every sha256, bundle.json, the signature.

The first file that differs is named (BundleCheckError.file), so a user knows what was changed,
added or removed. bundle.json is read as a BundleRecord: from someone else it is untrusted input.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from zoo.bundle.archive import opened_bundle
from zoo.bundle.names import (
    BUNDLE_JSON,
    SIGNATURE,
    SUMS,
    BundleCheckError,
    relative_files,
    safe_relative,
)
from zoo.bundle.record import BundleRecord, parse_bundle
from zoo.bundle.sign import check_signature
from zoo.errors import UsageError
from zoo.integrity import sha256_file


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
    #: the checked bundle.json, for callers that go on to publish or keep the bundle
    record: BundleRecord = field(repr=False, compare=False)

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


def read_sums(folder: Path) -> dict[str, str]:
    """SHA256SUMS as {relative path: sha256}; every path must stay inside the bundle."""
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
        rel = safe_relative(match.group(2), f"{path}: line {number}")
        sums[rel] = match.group(1)
    return sums


def check_key_options(public_key: Path | None, require_signature: bool) -> None:
    """Requiring a signature means having a key to check it with: a signature nobody checks proves nothing."""
    if require_signature and public_key is None:
        raise UsageError(
            "--require-signature needs --public-key PEM: without the signer's public key any signature "
            "(a forged one too) would pass."
        )
    if public_key is not None and not Path(public_key).is_file():
        raise UsageError(f"{public_key}: --public-key: no such file.")


def verify_bundle(
    path: Path, public_key: Path | None = None, require_signature: bool = False
) -> VerifyResult:
    """Re-check every size, checksum and the signature; raise BundleCheckError naming the first file that differs."""
    check_key_options(public_key, require_signature)
    with opened_bundle(path) as folder:
        return verify_folder(
            folder, public_key=public_key, require_signature=require_signature, shown=Path(path)
        )


def verify_folder(
    folder: Path, public_key: Path | None = None, require_signature: bool = False, shown: Path | None = None
) -> VerifyResult:
    shown = shown or folder
    check_key_options(public_key, require_signature)
    sums = read_sums(folder)
    present = relative_files(folder)
    record = read_checked_record(folder, sums, shown)
    sizes = {f.path: f.size for f in record.files()}
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
    for item in record.files():
        if sums.get(item.path) != item.sha256:
            raise BundleCheckError(
                f"{shown}: {item.path}: {BUNDLE_JSON} and {SUMS} disagree about its sha256.", item.path
            )
    signed = (folder / SIGNATURE).is_file()
    promised = record.signature is not None
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
        check_signature(folder, folder / SIGNATURE, Path(public_key), shown)
    return VerifyResult(
        path=shown,
        name=record.name,
        version=record.version,
        models=[m.name for m in record.models],
        files=len(sums),
        signed=signed,
        signature_checked=signed and public_key is not None,
        reference_weights=record.reference_weights,
        created=record.created,
        non_commercial=list(record.non_commercial),
        record=record,
    )


def read_checked_record(folder: Path, sums: dict[str, str], shown: Path) -> BundleRecord:
    """bundle.json, once SHA256SUMS vouches for its bytes, validated as a BundleRecord."""
    path = folder / BUNDLE_JSON
    if not path.is_file():
        raise BundleCheckError(f"{shown}: {BUNDLE_JSON} is missing.", BUNDLE_JSON)
    if BUNDLE_JSON not in sums:
        raise BundleCheckError(f"{shown}: {BUNDLE_JSON} is not listed in {SUMS}.", BUNDLE_JSON)
    if sha256_file(path) != sums[BUNDLE_JSON]:
        raise BundleCheckError(
            f"{shown}: {BUNDLE_JSON} differs: its sha256 is not the one in {SUMS}.", BUNDLE_JSON
        )
    return parse_bundle(path.read_bytes(), str(shown))
