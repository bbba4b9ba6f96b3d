"""The `zoo` command line: thin Typer commands over the core modules.

Frameworks (torch, tensorflow, openvino, onnxruntime, nncf) are imported only
inside the stages that need them, so `zoo list`, `zoo info` and `--help` start fast.
This module holds the app, the order commands are listed in, and the one place
errors turn into a paragraph and an exit code; the commands live in one module per group.
"""

from __future__ import annotations

import sys
import traceback
from typing import Annotated, NoReturn

import typer

from zoo import __version__
from zoo.cli import bundles, catalog, convert, fetching, measure, predict, runs
from zoo.cli.options import select, state
from zoo.errors import EXIT_FAILED, EXIT_USAGE, NoSpace, ZooError, is_disk_full

app = typer.Typer(
    name="zoo",
    help="Convert, verify, quantize and package audio-classification models.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


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
    state["debug"] = debug


# the order `zoo --help` lists them in
app.command("list")(catalog.list_)
app.command()(catalog.info)
app.command()(fetching.download)
app.command()(fetching.pin)
app.command()(fetching.mirror)
app.add_typer(fetching.cache_app, name="cache")
app.command()(convert.convert)
app.command()(convert.verify)
app.command()(convert.quantize)
app.command()(measure.evaluate)
app.command("bench")(measure.bench_command)
app.command()(predict.predict)
app.add_typer(bundles.bundle_app, name="bundle")
app.command()(bundles.publish)
app.command()(bundles.pull)
app.add_typer(runs.report_app, name="report")


def main() -> None:
    """Entry point: run the app; turn ZooError into one paragraph and an exit code."""
    try:
        app()
    except ZooError as exc:
        if state["debug"]:
            traceback.print_exc()
        sys.stderr.write(f"zoo: error: {exc.message}\n")
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        sys.stderr.write("zoo: interrupted\n")
        sys.exit(130)
    except OSError as exc:  # the environment failed (a full or read-only disk), not zoo: exit 1
        if exc.strerror is None:
            _internal(exc)
        if state["debug"]:
            traceback.print_exc()
        where = exc.filename or "the output disk"
        if is_disk_full(exc):
            sys.stderr.write(f"zoo: error: {NoSpace(where, f' ({exc.strerror})').message}\n")
        else:
            sys.stderr.write(f"zoo: error: {where}: {exc.strerror}.\n")
        sys.exit(EXIT_FAILED)
    except Exception as exc:  # a bug, not bad input: still no traceback without --debug
        _internal(exc)


def _internal(exc: Exception) -> NoReturn:
    if state["debug"]:
        traceback.print_exc()
        sys.exit(3)
    sys.stderr.write(
        f"zoo: internal error: {type(exc).__name__}: {exc}. Run again with --debug for a traceback.\n"
    )
    sys.exit(3)


__all__ = ["app", "main", "select", "EXIT_USAGE"]
