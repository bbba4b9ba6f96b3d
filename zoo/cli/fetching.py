"""`zoo download`, `pin`, `mirror` and `cache`: source files, their checksums and the shared cache."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from zoo.cli.failures import failure, literal_names, report, split_unpublished
from zoo.cli.options import (
    AllOpt,
    AllowLocalOpt,
    AllowUnpinnedOpt,
    CacheOpt,
    JsonOpt,
    ListOpt,
    ManifestsOpt,
    MirrorOpt,
    NameOpt,
    OfflineOpt,
    OutOpt,
    ReferenceWeightsOpt,
    SeedOpt,
    WeightsOpt,
    folder_option,
    select,
)
from zoo.cli.render import print_json
from zoo.errors import ZooError

if TYPE_CHECKING:
    from zoo.progress import Progress

AttemptsOpt = Annotated[
    int, typer.Option("--num-attempts", min=1, help="Attempts per source on network errors, 5xx and 429.")
]
ProgressOpt = Annotated[
    str | None,
    typer.Option(
        "--progress", help="text: one line per event; json: JSON lines; default: bars on a terminal."
    ),
]
TimeoutOpt = Annotated[
    float, typer.Option("--timeout", min=1, help="Seconds to wait for a connection or data.")
]


def _progress(kind: str | None) -> Progress:
    from zoo.progress import make_progress

    if kind not in (None, "text", "json"):
        from zoo.errors import UsageError

        raise UsageError(f"--progress: expected 'text' or 'json', got {kind!r}.")
    return make_progress(kind)


def download(
    name: NameOpt = None,
    all_: AllOpt = False,
    list_file: ListOpt = None,
    manifests: ManifestsOpt = None,
    output_dir: OutOpt = None,
    cache_dir: CacheOpt = None,
    jobs: Annotated[int, typer.Option("--jobs", "-j", min=1, help="Download this many models at once.")] = 1,
    num_attempts: AttemptsOpt = 3,
    mirror: MirrorOpt = None,
    allow_local: AllowLocalOpt = None,
    progress: ProgressOpt = None,
    allow_unpinned: AllowUnpinnedOpt = False,
    offline: OfflineOpt = False,
    reference_weights: ReferenceWeightsOpt = False,
    seed: SeedOpt = 0,
    weights: WeightsOpt = None,
    timeout: TimeoutOpt = 60.0,
) -> None:
    """Download and verify source files into <out>/<name>/source/, through the shared cache."""
    from zoo.layout import default_output_dir
    from zoo.stages.source import Outcome, download_all

    folder_option(output_dir or default_output_dir(), "--output-dir")
    chosen = select(name, all_, list_file, manifests)
    run, skipped = split_unpublished(
        chosen, literal_names(name, list_file), weights=weights, reference_weights=reference_weights
    )
    out = output_dir or default_output_dir()
    outcomes: list[Outcome] = []
    with _progress(progress) as reporter:
        for item in skipped:
            reporter.note(item.model, None, f"skipped: {item.message}; give {item.hint}")
        outcomes = download_all(
            run,
            out,
            jobs=jobs,
            weights=weights,
            reference_weights=reference_weights,
            seed=seed,
            cache_dir=cache_dir,
            mirrors=tuple(mirror or ()),
            allow_local=tuple(allow_local or ()),
            allow_unpinned=allow_unpinned,
            offline=offline,
            num_attempts=num_attempts,
            progress=reporter,
            timeout=timeout,
        )
        for outcome in outcomes:
            if outcome.sources is None:
                if progress == "json" and outcome.error is not None:  # as an event too; reported below
                    reporter.fail(outcome.name, None, outcome.error.message)
                continue
            unpinned = [f.name for m in run if m.name == outcome.name for f in m.files if not f.pinned]
            kind = (
                "reference weights (seeded, NOT the upstream weights)"
                if outcome.sources.reference_weights
                else f"in place, {len(unpinned)} of them NOT verified (unpinned: {', '.join(unpinned)})"
                if unpinned
                else "verified"
            )
            reporter.note(
                outcome.name,
                None,
                f"{len(outcome.sources.files)} file(s) {kind} in {outcome.sources.directory}",
            )
    report(
        [
            failure(o.name, "source", o.error.message, o.error.exit_code)
            for o in outcomes
            if o.error is not None
        ]
        + skipped,
        len(chosen),
    )


def pin(
    name: NameOpt = None,
    all_: AllOpt = False,
    list_file: ListOpt = None,
    manifests: ManifestsOpt = None,
    cache_dir: CacheOpt = None,
    num_attempts: AttemptsOpt = 3,
    progress: ProgressOpt = None,
    timeout: TimeoutOpt = 60.0,
    allow_local: AllowLocalOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Download unpinned files once and write their sha256 and size into the manifest (trust on first use)."""
    from zoo.cache import Cache
    from zoo.fetch import Fetcher
    from zoo.pin import pin_manifest

    chosen = select(name, all_, list_file, manifests)
    results = []
    with _progress("json" if as_json else progress) as reporter:
        fetcher = Fetcher(
            Cache(cache_dir),
            allow_local=tuple(allow_local or ()),
            num_attempts=num_attempts,
            progress=reporter,
            timeout=timeout,
        )
        for manifest in chosen:
            for result in pin_manifest(manifest, fetcher):
                results.append(result)
                reporter.note(
                    result.model,
                    result.file,
                    f"{result.status}: sha256 {result.sha256 or '-'}, "
                    f"{result.size if result.size is not None else '?'} bytes"
                    + (f" -> {manifest.path}" if result.status == "pinned" else ""),
                )


def mirror(
    output_dir: Annotated[
        Path, typer.Option("--output-dir", "-o", help="Mirror folder to write (required).")
    ],
    name: NameOpt = None,
    all_: AllOpt = False,
    list_file: ListOpt = None,
    manifests: ManifestsOpt = None,
    cache_dir: CacheOpt = None,
    jobs: Annotated[int, typer.Option("--jobs", "-j", min=1, help="Fetch this many files at once.")] = 1,
    num_attempts: AttemptsOpt = 3,
    upstream_mirror: MirrorOpt = None,
    allow_local: AllowLocalOpt = None,
    progress: ProgressOpt = None,
    offline: Annotated[bool, typer.Option("--offline", help="Mirror from the cache only.")] = False,
    timeout: TimeoutOpt = 60.0,
) -> None:
    """Write every verified source file into a folder that `--mirror DIR` or a static web server serves."""
    from zoo.cache import Cache
    from zoo.fetch import Fetcher
    from zoo.mirror import mirror_models

    folder_option(output_dir, "--output-dir")
    chosen = select(name, all_, list_file, manifests)
    with _progress(progress) as reporter:
        fetcher = Fetcher(
            Cache(cache_dir),
            mirrors=tuple(upstream_mirror or ()),
            allow_local=tuple(allow_local or ()),
            offline=offline,
            num_attempts=num_attempts,
            progress=reporter,
            timeout=timeout,
        )
        entries = mirror_models(chosen, output_dir, fetcher, jobs=jobs)
        for entry in entries:
            if entry.status == "mirrored":
                reporter.note(entry.model, entry.file, f"mirrored as {output_dir / (entry.path or '')}")
            elif entry.status != "failed":
                reporter.note(entry.model, entry.file, f"{entry.status}: {entry.message}")
    failed = [e for e in entries if e.status == "failed"]
    if failed:
        raise ZooError(
            " ".join(e.message or "" for e in failed) + f" ({len(failed)} of {len(entries)} files failed.)"
        )


cache_app = typer.Typer(help="Inspect or empty the download cache.", no_args_is_help=True)


@cache_app.command("info")
def cache_info(cache_dir: CacheOpt = None, as_json: JsonOpt = False) -> None:
    """Where the cache is, how many verified files and partial downloads it holds, and their size."""
    from zoo.cache import Cache
    from zoo.progress import human_bytes

    info = Cache(cache_dir).info()
    if as_json:
        print_json(info)
        return
    typer.echo(f"cache: {info['path']}")
    typer.echo(f"verified files: {info['entries']} ({human_bytes(info['bytes'])})")
    typer.echo(f"partial downloads: {info['partial_downloads']} ({human_bytes(info['partial_bytes'])})")


@cache_app.command("clean")
def cache_clean(
    cache_dir: CacheOpt = None,
    partial: Annotated[bool, typer.Option("--partial", help="Only delete partial downloads.")] = False,
    older_than: Annotated[
        float | None, typer.Option("--older-than", min=0, help="Only entries older than this many days.")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Delete cached files (entries another process is using are skipped)."""
    from zoo.cache import Cache
    from zoo.progress import human_bytes

    removed = Cache(cache_dir).clean(partial_only=partial, older_than_days=older_than)
    if as_json:
        print_json(removed)
        return
    busy = f", {removed['skipped_busy']} in use skipped" if removed["skipped_busy"] else ""
    typer.echo(
        f"removed {removed['entries']} verified file(s) and {removed['partial_downloads']} partial "
        f"download(s), {human_bytes(removed['bytes'])}{busy}"
    )
