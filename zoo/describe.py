"""What `zoo list` and `zoo info` show about catalog entries (plain data, no I/O beyond labels)."""

from __future__ import annotations

from typing import Any

from zoo.manifest import Manifest, Source, TensorSpec


def summary(manifest: Manifest) -> dict[str, Any]:
    """One row of `zoo list`."""
    return {
        "name": manifest.name,
        "version": manifest.version,
        "framework": manifest.framework,
        "task": manifest.task,
        "classes": manifest.labels.count,
        "license": manifest.license.name,
        "commercial_use": manifest.license.commercial_use,
        "weights": manifest.weights_available,
        "tags": list(manifest.tags),
    }


def _tensor(spec: TensorSpec) -> dict[str, Any]:
    data = {"name": spec.name, "shape": list(spec.shape), "dtype": spec.dtype}
    for key in ("layout", "kind", "description"):
        value = getattr(spec, key)
        if value is not None:
            data[key] = value
    return data


def _source(source: Source) -> dict[str, Any]:
    """A source as shown: a password in its URL is masked."""
    from zoo.sources import redact_url

    shown: dict[str, Any] = source.model_dump(mode="json", exclude_none=True)
    if source.url is not None:
        shown["url"] = redact_url(source.url)
    return shown


def details(manifest: Manifest) -> dict[str, Any]:
    """Everything `zoo info` shows."""
    files = []
    for entry in manifest.files:
        item: dict[str, Any] = {"name": entry.name, "role": entry.role, "size": entry.size}
        if entry.sha256:
            item["sha256"] = entry.sha256
        if entry.sha384:
            item["sha384"] = entry.sha384
        item["pinned"] = entry.pinned
        item["sources"] = [_source(s) for s in entry.sources]
        files.append(item)
    labels: dict[str, Any] = {"count": manifest.labels.count}
    if manifest.labels.file:
        labels["file"] = manifest.labels.file
        labels["first"] = manifest.read_labels()[:5]
    else:
        labels["source"] = manifest.labels.source
    return {
        "name": manifest.name,
        "version": manifest.version,
        "description": manifest.description.strip(),
        "task": manifest.task,
        "tags": list(manifest.tags),
        "framework": manifest.framework,
        "license": manifest.license.model_dump(mode="json", exclude_none=True),
        "weights": {"availability": manifest.weights_available}
        | manifest.weights.model_dump(mode="json", exclude_none=True),
        "files": files,
        "network": manifest.network.model_dump(mode="json") if manifest.network else None,
        "inputs": [_tensor(t) for t in manifest.inputs],
        "outputs": [_tensor(t) for t in manifest.outputs],
        "audio": manifest.audio.model_dump(mode="json", exclude_none=True),
        "labels": labels,
        "precisions": manifest.precisions,
        "parameters": manifest.parameters,
        "flops": manifest.flops,
        "manifest": str(manifest.path) if manifest.path else None,
        "manifest_sha256": manifest.digest,
    }
