"""Bundles in an OCI registry, through ORAS: push, list tags, fetch one version's tarball.

One artifact per bundle version (the tag defaults to the version): its config blob is bundle.json
with media type CONFIG_MEDIA_TYPE (the artifact's type), its one layer the tarball
(LAYER_MEDIA_TYPE), and the manifest's annotations carry the name, version, creation time and
models. Plain HTTP is used for loopback hosts (127.0.0.1, localhost) or with `--plain-http`;
credentials come from the usual container-tool login file.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from zoo.bundle.names import BundleCheckError, bundle_dir_name, version_key
from zoo.bundle.record import PublishedRecord
from zoo.bundle.targets import OciTarget
from zoo.errors import UsageError, ZooError
from zoo.integrity import sha256_file

CONFIG_MEDIA_TYPE = "application/vnd.zoo.bundle.config.v1+json"
LAYER_MEDIA_TYPE = "application/vnd.zoo.bundle.layer.v1.tar+gzip"
ANNOTATION_MODELS = "dev.zoo.bundle.models"
ANNOTATION_SIGNED = "dev.zoo.bundle.signed"
ANNOTATION_REFERENCE = "dev.zoo.bundle.reference-weights"
ANNOTATION_LICENSES = "dev.zoo.bundle.licenses"


def _oras_client(target: OciTarget) -> Any:
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


def _manifest_status(client: Any, target: OciTarget) -> tuple[int, dict[str, Any] | None]:
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


def _oci_call(what: str, target: OciTarget, function: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    try:
        return function(*args, **kwargs)
    except ZooError:
        raise
    except Exception as exc:  # ORAS raises ValueError / requests errors with the registry's reason
        raise ZooError(f"{target}: {what} failed: {exc.__class__.__name__}: {exc}") from exc


def push_oci(
    target: OciTarget, tarball: Path, config: Path, record: PublishedRecord, force: bool
) -> tuple[OciTarget, bool, str | None]:
    """Push one bundle version (tag: the target's, else the version); (where, replaced, manifest digest)."""
    tagged = target.with_tag(target.tag or record.version)
    _registry_reachable(tagged)
    client = _oras_client(tagged)
    status, _ = _oci_call("reading the tag", tagged, _manifest_status, client, tagged)
    replaced = status == 200
    if replaced and not force:
        raise UsageError(
            f"{tagged}: the tag {tagged.tag} already exists; pass --force to replace it (or publish a new --version)."
        )
    annotations = {
        "org.opencontainers.image.title": record.name,
        "org.opencontainers.image.version": record.version,
        "org.opencontainers.image.description": f"zoo model bundle: {', '.join(record.models)}",
        ANNOTATION_MODELS: ",".join(record.models),
        ANNOTATION_SIGNED: "true" if record.signed else "false",
        ANNOTATION_REFERENCE: "true" if record.reference_weights else "false",
        ANNOTATION_LICENSES: ",".join(record.licenses),
    }
    if record.created:
        annotations["org.opencontainers.image.created"] = record.created
    with tempfile.TemporaryDirectory(prefix="zoo-push-") as scratch:
        # ORAS names the layer after the file: give it the bundle's name, whatever the local file is called
        layer = Path(scratch) / f"{bundle_dir_name(record.name, record.version)}.tar.gz"
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
    return tagged, replaced, response.headers.get("Docker-Content-Digest")


def list_oci(target: OciTarget) -> list[dict[str, Any]]:
    """One row per zoo bundle tag in the repository (other artifacts are skipped)."""
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
        if manifest is None or (manifest.get("config") or {}).get("mediaType") != CONFIG_MEDIA_TYPE:
            continue  # not a zoo bundle (or not readable)
        notes = manifest.get("annotations") or {}
        layer: dict[str, Any] = next(
            (x for x in manifest.get("layers", []) if x.get("mediaType") == LAYER_MEDIA_TYPE), {}
        )
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
    return sorted(rows, key=lambda r: (r["name"] or "", version_key(r["version"] or "")))


def fetch_oci(target: OciTarget, dest: Path, version: str | None) -> str:
    """Download one version's tarball to dest, checked against the layer digest; returns where from."""
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
    if status != 200 or manifest is None:
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
