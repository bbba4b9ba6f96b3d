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
from pathlib import Path
from typing import TYPE_CHECKING, Any

from zoo.integrity import sha256_file as sha256_file  # re-exported: later stages hash files through here
from zoo.records import STAMP_SCHEMA, FileFacts, Stamp, read_record

if TYPE_CHECKING:
    from zoo.manifest import Manifest


def digest(value: Any) -> str:
    """sha256 of a JSON-able value in canonical form."""
    canonical = json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def manifest_part(manifest: Manifest, fields: set[str]) -> str:
    """Digest of only the manifest fields a stage reads (a new description redoes nothing)."""
    return digest(manifest.model_dump(mode="json", include=fields))


def read_stamp(path: Path) -> Stamp | None:
    """The stamp at *path*, or None when there is none (or it is unreadable, or of another schema)."""
    return read_record(Stamp, path, STAMP_SCHEMA)


def outputs_intact(stamp: Stamp, root: Path) -> bool:
    """Every file the stamp lists exists under *root* with its recorded size and sha256."""
    if not stamp.outputs:
        return False
    for relative, facts in stamp.outputs.items():
        path = root / relative
        try:
            if path.stat().st_size != facts.size:
                return False
        except OSError:
            return False
        if sha256_file(path) != facts.sha256:
            return False
    return True


def why_stale(path: Path, key: dict[str, Any], root: Path) -> str | None:
    """None when the stamp at *path* matches *key* and its outputs are intact, else the reason."""
    stamp = read_stamp(path)
    if stamp is None:
        return "never made"
    old = stamp.key
    if old != key:
        changed = sorted(k for k in set(old) | set(key) if old.get(k) != key.get(k))
        return "changed: " + ", ".join(changed)
    if not outputs_intact(stamp, root):
        return "outputs missing or modified"
    return None


def write_stamp(
    path: Path,
    stage: str,
    key: dict[str, Any],
    outputs: list[Path],
    root: Path,
    seconds: float,
    extra: dict[str, Any] | None = None,
) -> Stamp:
    """Record the stage's key and its outputs' checksums (relative to *root*), atomically."""
    stamp = Stamp(
        stage=stage,
        key=key,
        outputs={
            Path(p).relative_to(root).as_posix(): FileFacts(
                sha256=sha256_file(p), size=Path(p).stat().st_size
            )
            for p in outputs
        },
        seconds=round(seconds, 3),
        **(extra or {}),
    )
    stamp.write(path)
    return stamp


def output_checksums(stamp: Stamp | None) -> dict[str, str]:
    """{relative path: sha256} of a stamp's outputs, sorted (empty without a stamp)."""
    if stamp is None:
        return {}
    return {name: facts.sha256 for name, facts in sorted(stamp.outputs.items())}
