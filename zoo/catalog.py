"""The catalog: where manifests live and how commands select entries.

Every command selects models the same way: `--name` (comma-separated names and
shell-style patterns), `--all`, `--list FILE`; `--manifests DIR` or
ZOO_MANIFESTS points at another catalog folder.
"""

from __future__ import annotations

import fnmatch
import os
from pathlib import Path

from zoo.errors import UsageError
from zoo.manifest import Manifest, load_manifest

ENV_MANIFESTS = "ZOO_MANIFESTS"


def default_manifests_dir() -> Path:
    """ZOO_MANIFESTS, else the catalog shipped beside the package, else ./manifests."""
    env = os.environ.get(ENV_MANIFESTS)
    if env:
        return Path(env)
    shipped = Path(__file__).resolve().parent.parent / "manifests"
    if shipped.is_dir():
        return shipped
    return Path("manifests")


class Catalog:
    """The manifests of one folder, loaded lazily and validated on load."""

    def __init__(self, directory: Path | str | None = None):
        self.directory = Path(directory) if directory is not None else default_manifests_dir()
        if not self.directory.is_dir():
            raise UsageError(
                f"{self.directory}: manifests folder does not exist (set --manifests DIR or {ENV_MANIFESTS})."
            )
        self._cache: dict[str, Manifest] = {}

    def paths(self) -> dict[str, Path]:
        """{entry name: manifest path}, sorted by name."""
        found = {p.stem: p for p in self.directory.glob("*.yaml")}
        found.update({p.stem: p for p in self.directory.glob("*.yml") if p.stem not in found})
        return dict(sorted(found.items()))

    def names(self) -> list[str]:
        return list(self.paths())

    def get(self, name: str) -> Manifest:
        if name not in self._cache:
            paths = self.paths()
            if name not in paths:
                raise UsageError(self._unknown(name, list(paths)))
            if not paths[name].resolve().is_relative_to(self.directory.resolve()):
                raise UsageError(
                    f"{paths[name]}: the manifest is a link out of the catalog folder {self.directory}; "
                    "a catalog's files must live inside it."
                )
            self._cache[name] = load_manifest(paths[name])
        return self._cache[name]

    def _unknown(self, name: str, known: list[str]) -> str:
        close = fnmatch.filter(known, f"*{name}*") or [
            k for k in known if k.split("-")[0] == name.split("-")[0]
        ]
        hint = f" Did you mean: {', '.join(close[:5])}?" if close else ""
        return (
            f"--name: no catalog entry {name!r} in {self.directory}.{hint} "
            f"Known entries: {', '.join(known) or '(none)'}."
        )

    def all(self) -> list[Manifest]:
        return [self.get(name) for name in self.names()]

    def select(
        self,
        names: list[str] | None = None,
        all_: bool = False,
        list_file: Path | None = None,
        default_all: bool = False,
    ) -> list[Manifest]:
        """Resolve the shared selection flags into manifests, in catalog order, without repeats."""
        patterns: list[tuple[str, str]] = []
        for value in names or []:
            patterns += [("--name", p.strip()) for p in value.split(",") if p.strip()]
        if list_file is not None:
            patterns += [(f"--list {list_file}", p) for p in read_list_file(list_file)]
        known = self.names()
        if all_:
            chosen = list(known)
        elif not patterns:
            if default_all:
                chosen = list(known)
            else:
                raise UsageError("no models selected: give --name NAME[,PATTERN...], --all, or --list FILE.")
        else:
            chosen = []
            for origin, pattern in patterns:
                if any(ch in pattern for ch in "*?["):
                    matched = fnmatch.filter(known, pattern)
                    if not matched:
                        raise UsageError(
                            f"{origin}: pattern {pattern!r} matches no catalog entry in {self.directory}. "
                            f"Known entries: {', '.join(known)}."
                        )
                elif pattern in known:
                    matched = [pattern]
                else:
                    raise UsageError(self._unknown(pattern, known).replace("--name", origin, 1))
                chosen += [m for m in matched if m not in chosen]
            chosen.sort(key=known.index)
        return [self.get(name) for name in chosen]


def read_list_file(path: Path) -> list[str]:
    """One name or pattern per line; '#' starts a comment."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"{path}: --list: cannot read file: {exc.strerror or exc}.") from exc
    except UnicodeDecodeError as exc:
        raise UsageError(f"{path}: --list: not UTF-8 text ({exc.reason} at byte {exc.start}).") from None
    entries = []
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        entries += [p.strip() for p in line.split(",") if p.strip()]
    return entries
