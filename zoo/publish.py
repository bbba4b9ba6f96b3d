"""Publish bundles to a folder or an OCI registry, list what a target holds, pull and verify.

Targets:
- a folder: a path or `file:///path`. Each version is `<bundle>-<version>.tar.gz` with a record
  `<bundle>-<version>.json` beside it (bundle, version, models, sha256 and size of the tarball).
- an OCI registry: `oci://host[:port]/repository[:tag]`, through ORAS. One artifact per bundle
  version (the tag defaults to the version): its config blob is bundle.json with media type
  CONFIG_MEDIA_TYPE (the artifact's type), its one layer the tarball (LAYER_MEDIA_TYPE), and the
  manifest's annotations carry the name, version, creation time and models. Plain HTTP is used for
  loopback hosts (127.0.0.1, localhost) or with `--plain-http`; credentials come from the usual
  container-tool login file.

Nothing is overwritten unless asked (`force`), and a pull is verified before it is kept.
"""

from __future__ import annotations

import json
import logging
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from zoo.atomic import atomic_dir, copy_file, write_json
from zoo.bundle import (
    BUNDLE_JSON,
    BundleCheckError,
    VerifyResult,
    bundle_dir_name,
    extract_tarball,
    opened_bundle,
    parse_time,
    read_bundle_json,
    sha256_file,
    verify_folder,
    write_tarball,
)
from zoo.errors import UsageError, ZooError

CONFIG_MEDIA_TYPE = "application/vnd.zoo.bundle.config.v1+json"
LAYER_MEDIA_TYPE = "application/vnd.zoo.bundle.layer.v1.tar+gzip"
ANNOTATION_MODELS = "dev.zoo.bundle.models"
ANNOTATION_SIGNED = "dev.zoo.bundle.signed"
ANNOTATION_REFERENCE = "dev.zoo.bundle.reference-weights"
ANNOTATION_LICENSES = "dev.zoo.bundle.licenses"
LOOPBACK = ("127.0.0.1", "localhost", "::1", "[::1]")
_TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]{0,127}$")
_REPOSITORY = re.compile(
    r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*$"
)


# -- targets ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FolderTarget:
    path: Path

    def __str__(self) -> str:
        return str(self.path)


@dataclass(frozen=True)
class OciTarget:
    host: str
    repository: str
    tag: str | None
    plain_http: bool

    @property
    def reference(self) -> str:
        return f"{self.host}/{self.repository}" + (f":{self.tag}" if self.tag else "")

    def with_tag(self, tag: str) -> OciTarget:
        return OciTarget(self.host, self.repository, tag, self.plain_http)

    def __str__(self) -> str:
        return f"oci://{self.reference}"


def parse_target(text: str, plain_http: bool = False) -> FolderTarget | OciTarget:
    """`oci://host[:port]/repo[:tag]`, `file:///path` or a plain path."""
    if text.startswith("oci://"):
        rest = text[len("oci://") :]
        host, _, path = rest.partition("/")
        if not host or not path:
            raise UsageError(
                f"{text}: expected oci://HOST[:PORT]/REPOSITORY[:TAG], e.g. oci://127.0.0.1:5000/zoo:1.0.0."
            )
        repository, tag = path, None
        last = path.rsplit("/", 1)[-1]
        if ":" in last:
            repository, tag = path.rsplit(":", 1)
        if "@" in path:
            raise UsageError(f"{text}: digests are not supported here; name a tag (the bundle version).")
        if not _REPOSITORY.match(repository):
            raise UsageError(
                f"{text}: repository {repository!r} is not a valid OCI repository name (lower-case letters, digits, "
                f"'.', '_', '-', separated by '/')."
            )
        if tag is not None and not _TAG.match(tag):
            raise UsageError(f"{text}: tag {tag!r} is not a valid OCI tag.")
        hostname = host.rsplit(":", 1)[0] if not host.startswith("[") else host.split("]")[0] + "]"
        return OciTarget(host, repository, tag, plain_http or hostname in LOOPBACK)
    if text.startswith("file://"):
        parsed = urlparse(text)
        if parsed.netloc not in ("", "localhost"):
            raise UsageError(f"{text}: file:// targets must be local (file:///path).")
        return FolderTarget(Path(unquote(parsed.path)))
    if "://" in text:
        raise UsageError(
            f"{text}: unknown target; expected a folder, file:///path or oci://host:port/repository:tag."
        )
    return FolderTarget(Path(text))


# -- publishing ---------------------------------------------------------------------------------


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


def _record(document: dict[str, Any], verified: VerifyResult, sha256: str, size: int) -> dict[str, Any]:
    return {
        "name": document["name"],
        "version": document["version"],
        "created": document.get("created"),
        "models": [f"{m['name']}@{m.get('version')}" for m in document.get("models", [])],
        "licenses": document.get("licenses") or [],
        "signed": verified.signed,
        "reference_weights": bool(document.get("reference_weights")),
        "sha256": sha256,
        "size": size,
    }


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
    with tempfile.TemporaryDirectory(prefix="zoo-publish-") as scratch:
        scratch = Path(scratch)
        with opened_bundle(Path(bundle)) as folder:
            verified = verify_folder(folder, public_key=public_key, shown=Path(bundle))
            document = read_bundle_json(folder)
            config = scratch / BUNDLE_JSON
            copy_file(folder / BUNDLE_JSON, config)
            if Path(bundle).is_dir():
                tarball = scratch / f"{folder.name}.tar.gz"
                write_tarball(folder, tarball, parse_time(document["created"], str(folder / BUNDLE_JSON)))
            else:
                tarball = Path(bundle)
            if folder.name != bundle_dir_name(document["name"], document["version"]):
                raise UsageError(
                    f"{bundle}: the bundle folder is {folder.name!r}, but {BUNDLE_JSON} names "
                    f"{bundle_dir_name(document['name'], document['version'])!r}; keep the name the bundle was made with."
                )
        record = _record(document, verified, sha256_file(tarball), tarball.stat().st_size)
        if isinstance(target, FolderTarget):
            return _publish_folder(target, tarball, record, force)
        return _publish_oci(target, tarball, config, record, force)


def _publish_folder(target: FolderTarget, tarball: Path, record: dict[str, Any], force: bool) -> Published:
    base = bundle_dir_name(record["name"], record["version"])
    destination = target.path / f"{base}.tar.gz"
    index = target.path / f"{base}.json"
    if target.path.exists() and not target.path.is_dir():
        raise UsageError(f"{target.path}: --to: expected a folder, found a file.")
    replaced = destination.exists() or index.exists()
    if replaced and not force:
        raise UsageError(
            f"{destination}: version {record['version']} of {record['name']} is already published there; "
            f"pass --force to replace it (or publish a new --version)."
        )
    copy_file(tarball, destination)
    write_json(index, record)
    return Published(
        str(target.path),
        record["name"],
        record["version"],
        record["sha256"],
        record["size"],
        record["models"],
        record["signed"],
        replaced,
    )


def _oras_client(target: OciTarget):
    import oras.client
    import oras.logger

    oras.logger.setup_logger(quiet=True)
    logging.getLogger("oras").setLevel(logging.ERROR)
    return oras.client.OrasClient(hostname=target.host, insecure=target.plain_http)


def _registry_reachable(target: OciTarget) -> None:
    """Fail fast with a clear message (the ORAS client retries for minutes on a dead host)."""
    import requests

    scheme = "http" if target.plain_http else "https"
    url = f"{scheme}://{target.host}/v2/"
    try:
        response = requests.get(url, timeout=10)
    except requests.exceptions.SSLError as exc:
        raise ZooError(
            f"{target}: TLS failed talking to {target.host} ({exc.__class__.__name__}); a registry without TLS "
            f"needs --plain-http."
        ) from exc
    except requests.exceptions.RequestException as exc:
        reason = exc.__class__.__name__
        root = exc.__context__ or exc.__cause__
        while root is not None and (root.__context__ or root.__cause__) is not None:
            root = root.__context__ or root.__cause__
        if isinstance(root, OSError) and root.strerror:
            reason = root.strerror.lower()
        raise ZooError(f"{target}: cannot reach the registry at {url} ({reason}); is it running?") from exc
    if response.status_code not in (200, 401):
        raise ZooError(f"{target}: {url} answered HTTP {response.status_code}; is this an OCI registry?")


def _manifest_status(client, target: OciTarget) -> tuple[int, dict[str, Any] | None]:
    from oras.container import Container

    container = Container(target.reference, registry=target.host)
    client.auth.load_configs(container)
    url = f"{client.prefix}://{container.manifest_url()}"
    accept = (
        "application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json"
    )
    response = client.do_request(url, "GET", headers={"Accept": accept})
    if response.status_code == 200:
        return 200, response.json()
    return response.status_code, None


def _oci_call(what: str, target: OciTarget, function, *args, **kwargs):
    try:
        return function(*args, **kwargs)
    except ZooError:
        raise
    except Exception as exc:  # ORAS raises ValueError / requests errors with the registry's reason
        raise ZooError(f"{target}: {what} failed: {exc.__class__.__name__}: {exc}") from exc


def _publish_oci(
    target: OciTarget, tarball: Path, config: Path, record: dict[str, Any], force: bool
) -> Published:
    tagged = target.with_tag(target.tag or record["version"])
    _registry_reachable(tagged)
    client = _oras_client(tagged)
    status, _ = _oci_call("reading the tag", tagged, _manifest_status, client, tagged)
    replaced = status == 200
    if replaced and not force:
        raise UsageError(
            f"{tagged}: the tag {tagged.tag} already exists; pass --force to replace it (or publish a new --version)."
        )
    annotations = {
        "org.opencontainers.image.title": record["name"],
        "org.opencontainers.image.version": record["version"],
        "org.opencontainers.image.description": f"zoo model bundle: {', '.join(record['models'])}",
        ANNOTATION_MODELS: ",".join(record["models"]),
        ANNOTATION_SIGNED: "true" if record["signed"] else "false",
        ANNOTATION_REFERENCE: "true" if record["reference_weights"] else "false",
        ANNOTATION_LICENSES: ",".join(record["licenses"]),
    }
    if record.get("created"):
        annotations["org.opencontainers.image.created"] = record["created"]
    with tempfile.TemporaryDirectory(prefix="zoo-push-") as scratch:
        # ORAS names the layer after the file: give it the bundle's name, whatever the local file is called
        layer = Path(scratch) / f"{bundle_dir_name(record['name'], record['version'])}.tar.gz"
        try:
            layer.hardlink_to(tarball)
        except OSError:
            shutil.copyfile(tarball, layer)
        response = _oci_call(
            "push",
            tagged,
            client.push,
            tagged.reference,
            files=[f"{layer}:{LAYER_MEDIA_TYPE}"],
            manifest_config=f"{config}:{CONFIG_MEDIA_TYPE}",
            manifest_annotations=annotations,
            disable_path_validation=True,
            quiet=True,
        )
    digest = response.headers.get("Docker-Content-Digest")
    return Published(
        str(tagged),
        record["name"],
        record["version"],
        record["sha256"],
        record["size"],
        record["models"],
        record["signed"],
        replaced,
        digest,
    )


# -- listing ------------------------------------------------------------------------------------


def list_versions(target_text: str, plain_http: bool = False) -> list[dict[str, Any]]:
    """What a target holds: one row per published version."""
    target = parse_target(target_text, plain_http)
    if isinstance(target, FolderTarget):
        return _list_folder(target)
    return _list_oci(target)


def _list_folder(target: FolderTarget) -> list[dict[str, Any]]:
    if not target.path.is_dir():
        raise UsageError(f"{target.path}: no such folder.")
    rows = []
    for index in sorted(target.path.glob("*.json")):
        try:
            record = json.loads(index.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            continue
        if not isinstance(record, dict) or not {"name", "version", "sha256"} <= set(record):
            continue
        tarball = index.with_suffix(".tar.gz")
        rows.append({**record, "tag": None, "location": str(tarball), "present": tarball.is_file()})
    return sorted(rows, key=lambda r: (r["name"], _version_key(r["version"])))


def _list_oci(target: OciTarget) -> list[dict[str, Any]]:
    _registry_reachable(target)
    client = _oras_client(target)
    repository = OciTarget(target.host, target.repository, None, target.plain_http)
    from oras.container import Container

    container = Container(repository.reference, registry=target.host)
    client.auth.load_configs(container)
    response = _oci_call(
        "listing tags",
        target,
        client.do_request,
        f"{client.prefix}://{container.tags_url()}",
        "GET",
        headers=client.headers,
    )
    if response.status_code == 404:
        return []
    if response.status_code != 200:
        raise ZooError(f"{target}: listing tags failed: HTTP {response.status_code}.")
    tags = response.json().get("tags") or []
    if target.tag:
        tags = [t for t in tags if t == target.tag]
    rows = []
    for tag in tags:
        tagged = repository.with_tag(tag)
        status, manifest = _oci_call("reading a manifest", tagged, _manifest_status, client, tagged)
        if status != 200 or (manifest.get("config") or {}).get("mediaType") != CONFIG_MEDIA_TYPE:
            continue  # not a zoo bundle
        notes = manifest.get("annotations") or {}
        layer = next((x for x in manifest.get("layers", []) if x.get("mediaType") == LAYER_MEDIA_TYPE), {})
        rows.append(
            {
                "name": notes.get("org.opencontainers.image.title"),
                "version": notes.get("org.opencontainers.image.version"),
                "created": notes.get("org.opencontainers.image.created"),
                "models": [m for m in notes.get(ANNOTATION_MODELS, "").split(",") if m],
                "licenses": [m for m in notes.get(ANNOTATION_LICENSES, "").split(",") if m],
                "signed": notes.get(ANNOTATION_SIGNED) == "true",
                "reference_weights": notes.get(ANNOTATION_REFERENCE) == "true",
                "sha256": (layer.get("digest") or "").removeprefix("sha256:"),
                "size": layer.get("size"),
                "tag": tag,
                "location": str(tagged),
                "present": True,
            }
        )
    return sorted(rows, key=lambda r: (r["name"] or "", _version_key(r["version"] or "")))


def _version_key(version: str) -> tuple:
    core, _, pre = version.partition("-")
    numbers = tuple(int(p) if p.isdigit() else 0 for p in core.split("."))
    return numbers, pre == "", pre


# -- pulling ------------------------------------------------------------------------------------


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
    with tempfile.TemporaryDirectory(prefix="zoo-pull-") as scratch:
        scratch = Path(scratch)
        downloaded = scratch / "bundle.tar.gz"
        source = _fetch(ref, downloaded, version, bundle_name, plain_http)
        folder = extract_tarball(downloaded, scratch / "extracted")
        verified = verify_folder(
            folder, public_key=public_key, require_signature=require_signature, shown=Path(source)
        )
        document = read_bundle_json(folder)
        expected = bundle_dir_name(document["name"], document["version"])
        if folder.name != expected:
            raise BundleCheckError(
                f"{source}: the archive's folder is {folder.name!r}, {BUNDLE_JSON} names {expected!r}."
            )
        if version and document["version"] != version:
            raise BundleCheckError(
                f"{source}: asked for version {version}, the bundle says {document['version']}."
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
        return _fetch_oci(target, dest, version)
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
    return record["location"]


def _fetch_oci(target: OciTarget, dest: Path, version: str | None) -> str:
    if target.tag and version and target.tag != version:
        raise UsageError(f"{target}: the reference names tag {target.tag}, --version says {version}.")
    tagged = target if target.tag else target.with_tag(version) if version else None
    if tagged is None:
        raise UsageError(
            f"{target}: name the version as a tag (oci://host/repository:1.0.0) or with --version."
        )
    _registry_reachable(tagged)
    client = _oras_client(tagged)
    status, manifest = _oci_call("reading the manifest", tagged, _manifest_status, client, tagged)
    if status == 404:
        raise UsageError(
            f"{tagged}: no such tag in the registry (see `zoo bundle ls oci://{target.host}/{target.repository}`)."
        )
    if status != 200:
        raise ZooError(f"{tagged}: reading the manifest failed: HTTP {status}.")
    if (manifest.get("config") or {}).get("mediaType") != CONFIG_MEDIA_TYPE:
        raise UsageError(
            f"{tagged}: not a zoo bundle (config media type {manifest.get('config', {}).get('mediaType')!r})."
        )
    layers = [x for x in manifest.get("layers", []) if x.get("mediaType") == LAYER_MEDIA_TYPE]
    if len(layers) != 1:
        raise ZooError(
            f"{tagged}: expected one bundle layer of type {LAYER_MEDIA_TYPE}, found {len(layers)}."
        )
    layer = layers[0]
    from oras.container import Container

    container = Container(tagged.reference, registry=tagged.host)
    _oci_call("download", tagged, client.download_blob, container, layer["digest"], str(dest))
    digest = "sha256:" + sha256_file(dest)
    if digest != layer["digest"] or dest.stat().st_size != layer.get("size"):
        raise BundleCheckError(f"{tagged}: the downloaded layer does not match its digest {layer['digest']}.")
    return str(tagged)
