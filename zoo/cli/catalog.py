"""`zoo list` and `zoo info`: the catalog, without importing any framework."""

from __future__ import annotations

from typing import Annotated

import typer

from zoo.cli.options import AllOpt, JsonOpt, ListOpt, ManifestsOpt, NameOpt, select
from zoo.cli.render import console, print_info, print_json


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
        print_json(rows)
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
    console().print(table)


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
        print_json(data if len(data) != 1 else data[0])
        return
    out = console()
    for item in data:
        print_info(out, item)
