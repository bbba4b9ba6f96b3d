"""`zoo pin`: record the checksum of unpinned files in their manifest (trust on first use).

The manifest is parsed with ruamel.yaml's round-trip loader, which knows the line of every key;
the edit then touches only the lines of the pinned entries (drop ``unpinned: true``, add ``size``
and ``sha256`` after ``name``), so comments, order and formatting elsewhere stay exactly as they
were. The result is validated before it replaces the file (atomically).
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from zoo.errors import ManifestError
from zoo.fetch import Fetcher
from zoo.manifest import Manifest

if TYPE_CHECKING:
    from ruamel.yaml import YAML


@dataclass
class PinResult:
    model: str
    file: str
    status: str  # "pinned" | "already pinned"
    sha256: str | None
    size: int | None
    url: str | None = None


def _round_trip_yaml() -> YAML:
    from ruamel.yaml import YAML

    yaml = YAML()
    yaml.preserve_quotes = True
    yaml.width = 4096
    yaml.indent(mapping=2, sequence=4, offset=2)
    return yaml


def apply_pins(text: str, pins: dict[str, tuple[str, int]], origin: Path | str) -> str:
    """The manifest text with ``pins`` ({file name: (sha256, size)}) written into its files[] entries."""
    yaml = _round_trip_yaml()
    data = yaml.load(text)
    files = data.get("files") or []
    lines = text.splitlines(keepends=True)
    edits: list[tuple[int, int, list[str]]] = []  # (first line, lines to remove, lines to insert)
    flow_fallback = False
    for entry in files:
        name = entry.get("name")
        if name not in pins:
            continue
        sha256, size = pins[name]
        if getattr(entry, "fa", None) is not None and entry.fa.flow_style():
            flow_fallback = True
            break
        name_line, name_col = entry.lc.key("name")
        indent = " " * name_col
        newline = "\r\n" if lines[name_line].endswith("\r\n") else "\n"
        insert = []
        if "size" in entry:
            if int(entry["size"]) != size:
                raise ManifestError(
                    f"{origin}: field files[{name}].size says {entry['size']}, the file has {size}."
                )
        else:
            insert.append(f"{indent}size: {size}{newline}")
        insert.append(f"{indent}sha256: {sha256}{newline}")
        edits.append((name_line + 1, 0, insert))
        if "unpinned" in entry:
            line, _ = entry.lc.key("unpinned")
            edits.append((line, 1, []))
        for key in ("sha256", "sha384"):
            if key in entry:
                raise ManifestError(f"{origin}: file {name} already has {key}; nothing to pin.")
    if flow_fallback:
        for entry in files:
            if entry.get("name") in pins:
                sha256, size = pins[entry["name"]]
                entry.pop("unpinned", None)
                entry["size"] = size
                entry["sha256"] = sha256
        out = io.StringIO()
        yaml.dump(data, out)
        return out.getvalue()
    # bottom up, so earlier line numbers stay valid; at one line, the removal goes before the insertion
    for first, remove, insert in sorted(edits, key=lambda e: (e[0], e[1]), reverse=True):
        lines[first : first + remove] = insert
    return "".join(lines)


def _validate(text: str, origin: Path) -> None:
    import yaml
    from pydantic import ValidationError

    from zoo.manifest import Manifest as Schema
    from zoo.manifest import format_validation_error

    try:
        Schema.model_validate(yaml.safe_load(text))
    except ValidationError as exc:  # pragma: no cover - the edit only adds valid fields
        raise ManifestError(format_validation_error(origin, exc)) from exc


def pin_manifest(manifest: Manifest, fetcher: Fetcher) -> list[PinResult]:
    """Download each unpinned file once (into the cache) and write its sha256 and size into the manifest."""
    from zoo.atomic import write_text

    path = manifest.path
    if path is None:
        raise ManifestError(f"{manifest.name}: the manifest was not loaded from a file; nothing to pin.")
    results: list[PinResult] = []
    pins: dict[str, tuple[str, int]] = {}
    for sf in manifest.files:
        if sf.pinned:
            assert sf.checksum is not None, "the manifest's validator gives every pinned file a checksum"
            algo, digest = sf.checksum
            results.append(
                PinResult(
                    manifest.name, sf.name, "already pinned", digest if algo == "sha256" else None, sf.size
                )
            )
            continue
        fetched = fetcher.fetch(manifest.name, sf, pinning=True)
        pins[sf.name] = (fetched.digest.sha256, fetched.digest.size)
        results.append(
            PinResult(
                manifest.name, sf.name, "pinned", fetched.digest.sha256, fetched.digest.size, fetched.url
            )
        )
    if pins:
        try:
            original = path.read_bytes().decode("utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ManifestError(f"{path}: cannot read the manifest to pin it: {exc}.") from exc
        updated = apply_pins(original, pins, path)
        _validate(updated, path)
        write_text(path, updated)
    return results
