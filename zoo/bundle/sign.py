"""Signing bundles offline with OpenSSF model-signing (an elliptic-curve key pair), and checking them.

The signature (bundle.sig) covers every other file in the bundle folder. ECDSA signatures are
randomized, so a re-run that produces the same content with the same key keeps the previous
signature: the tarball's bytes then stay the same too.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from zoo.atomic import atomic_open, copy_file, write_bytes
from zoo.bundle.names import BUNDLE_JSON, SIGNATURE, SUMS, BundleCheckError, relative_files
from zoo.bundle.record import SignatureRecord
from zoo.errors import UsageError
from zoo.integrity import sha256_file

ENV_SIGN_PASSWORD = "ZOO_SIGN_PASSWORD"


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

    def describe(self) -> SignatureRecord:
        """What bundle.json records about the signature."""
        return SignatureRecord(
            file=SIGNATURE,
            method="OpenSSF model-signing (sigstore bundle, DSSE in-toto statement, key pair)",
            key=f"ecdsa-{self.curve}",
            public_key_sha256=_public_key_hint(self.public_pem),
        )

    def sign(self, folder: Path) -> None:
        from model_signing import hashing, signing

        # model-signing's Config classes are not annotated; their methods are
        hashing_type: Any = hashing.Config
        signing_type: Any = signing.Config
        hashing_config = hashing_type().set_ignored_paths(paths=[SIGNATURE], ignore_git_paths=False)
        config = signing_type().set_hashing_config(hashing_config)
        # model-signing hands the password straight to cryptography, which wants bytes (it says str)
        password: Any = self.password.encode() if self.password else None
        config.use_elliptic_key_signer(private_key=self.path, password=password)
        # written in place: the folder is still the unpublished temporary one, and the signature is
        # the one file the hashing leaves out (a temporary name beside it would be signed too)
        config.sign(folder, folder / SIGNATURE)


def load_private_key(path: Path) -> Signer:
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


def reuse_signature(previous: Path, new: Path, signer: Signer) -> bool:
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
            check_signature(new, old_sig, public)
        except BundleCheckError:
            return False
    copy_file(old_sig, new / SIGNATURE)
    return True


def check_signature(folder: Path, signature: Path, public_key: Path, shown: Path | None = None) -> None:
    from model_signing import verifying

    shown = shown or folder
    verifying_type: Any = verifying.Config  # not annotated
    try:
        config = verifying_type().use_elliptic_key_verifier(public_key=public_key)
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
    try:
        envelope = json.loads(signature.read_text())["dsseEnvelope"]
        statement = json.loads(base64.b64decode(envelope["payload"]))
        signed = {r["name"]: r["digest"] for r in statement["predicate"]["resources"]}
    except (KeyError, ValueError, TypeError):
        return None
    actual = {rel: None for rel in relative_files(folder) if rel != SIGNATURE}
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
    if path.is_dir():
        raise UsageError(
            f"{path}: is a folder; give the path of the private key file to write (e.g. {path}/zoo.pem)."
        )
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
