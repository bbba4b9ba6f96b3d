"""Stage stamps: what each output was made from, so a re-run can skip what is up to date.

A stamp `<out>/<name>/stamps/<stage>.json` holds the stage's *key* (everything
the output depends on: source checksums, the manifest fields the stage reads,
options, tool versions) and the sha256 and size of every file it wrote. A stage
is up to date when its stamp's key equals the key it would have now and every
output file is still there with the recorded checksum: a changed input redoes
the stage, and so does an output someone edited or deleted.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from zoo.atomic import write_json
from zoo.integrity import sha256_file  # noqa: F401 - re-exported for the stages

SCHEMA = 1


def digest(value: Any) -> str:
    """sha256 of a JSON-able value in canonical form."""
    canonical = json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def manifest_part(manifest, fields: set[str]) -> str:
    """Digest of only the manifest fields a stage reads (a new description redoes nothing)."""
    return digest(manifest.model_dump(mode="json", include=fields))


def read_stamp(path: Path) -> dict | None:
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and data.get("schema") == SCHEMA else None


def outputs_intact(stamp: dict, root: Path) -> bool:
    """Every file the stamp lists exists under *root* with its recorded size and sha256."""
    outputs = stamp.get("outputs")
    if not isinstance(outputs, dict) or not outputs:
        return False
    for relative, facts in outputs.items():
        path = root / relative
        try:
            if path.stat().st_size != facts.get("size"):
                return False
        except OSError:
            return False
        if sha256_file(path) != facts.get("sha256"):
            return False
    return True


def why_stale(path: Path, key: dict, root: Path) -> str | None:
    """None when the stamp at *path* matches *key* and its outputs are intact, else the reason."""
    stamp = read_stamp(path)
    if stamp is None:
        return "never made"
    old = stamp.get("key", {})
    if old != key:
        changed = sorted(k for k in set(old) | set(key) if old.get(k) != key.get(k))
        return "changed: " + ", ".join(changed)
    if not outputs_intact(stamp, root):
        return "outputs missing or modified"
    return None


def write_stamp(
    path: Path,
    stage: str,
    key: dict,
    outputs: list[Path],
    root: Path,
    seconds: float,
    extra: dict | None = None,
) -> dict:
    """Record the stage's key and its outputs' checksums (relative to *root*), atomically."""
    stamp = {
        "schema": SCHEMA,
        "stage": stage,
        "key": key,
        "outputs": {
            Path(p).relative_to(root).as_posix(): {"sha256": sha256_file(p), "size": Path(p).stat().st_size}
            for p in outputs
        },
        "seconds": round(seconds, 3),
        "created": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    if extra:
        stamp.update(extra)
    write_json(path, stamp)
    return stamp
