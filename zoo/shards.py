"""`--shard I/N`: a stable split of a selection, so N CI jobs each run their part of one catalog job.

A model's shard is the SHA-256 of its name modulo N: it depends on nothing but the name and N, so
adding or removing catalog entries never moves the others between shards (each shard's caches stay
warm), and every machine computes the same split. Shards of a small selection can be uneven or empty.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING

from zoo.errors import UsageError

if TYPE_CHECKING:
    from zoo.manifest import Manifest

_SPEC = re.compile(r"^\s*(\d+)\s*/\s*(\d+)\s*$")


def parse_shard(text: str | None) -> tuple[int, int] | None:
    """'I/N' (1 <= I <= N) as (I, N); None when not given."""
    if text is None:
        return None
    match = _SPEC.match(text)
    if match is None or not 1 <= int(match.group(1)) <= int(match.group(2)):
        raise UsageError(f"--shard: expected I/N with 1 <= I <= N (e.g. 1/4), got {text!r}.")
    return int(match.group(1)), int(match.group(2))


def shard_of(name: str, count: int) -> int:
    """The shard (1..count) a model name belongs to."""
    return int.from_bytes(hashlib.sha256(name.encode("utf-8")).digest()[:8], "big") % count + 1


def take_shard(manifests: Sequence[Manifest], shard: tuple[int, int] | None) -> list[Manifest]:
    """The selected models in this shard, in selection order."""
    if shard is None:
        return list(manifests)
    index, count = shard
    return [m for m in manifests if shard_of(m.name, count) == index]


def shard_label(shard: tuple[int, int] | None) -> str | None:
    return None if shard is None else f"{shard[0]}/{shard[1]}"
