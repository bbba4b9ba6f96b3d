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
    typer.Option("--manifests", envvar="ZOO_MANIFESTS", help="Catalog folder (default: the bundled catalog)."),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


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
            row["name"], row["version"], row["framework"], row["task"], str(row["classes"]), licence, row["weights"]
        )
    _console().print(table)


@app.command()
def info(
    names: Annotated[list[str] | None, typer.Argument(help="Entry names or patterns.", show_default=False)] = None,
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
    head.add_row("weights", item["weights"]["availability"] + (
        f"  ({item['weights']['format']})" if item["weights"].get("format") else ""))
    head.add_row("labels", f"{item['labels']['count']} classes from "
                 f"{item['labels'].get('file') or 'source file ' + str(item['labels'].get('source'))}")
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
        checksum = (f"sha256:{f['sha256']}" if "sha256" in f else
                    f"sha384:{f['sha384']}" if "sha384" in f else "unpinned")
        where = "\n".join(s.get("url") or f"pypi {s['pypi']['package']}=={s['pypi']['version']}:{s['pypi']['member']}"
                          for s in f["sources"])
        files.add_row(f["name"], f"{f['size']:,}" if f["size"] else "?", checksum, where)
    if item["files"]:
        console.print(files)
    else:
        console.print("source files: none published; use --weights PATH with your own checkpoint")


# -- download, pin, mirror, cache (zoo/fetch.py and friends) ---------------------------------


# -- convert, verify (zoo/pipeline.py, zoo/verify.py) -----------------------------------------


# -- quantize, evaluate, bench (zoo/quantize.py, zoo/evaluate.py, zoo/bench.py) ---------------


# -- bundle, publish, pull (zoo/bundle.py, zoo/publish.py) -------------------------------------


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
