"""`zoo report merge`, and the run report a sharded or Ray run of a many-model command writes."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from zoo.cli.failures import Failure, report
from zoo.cli.options import JsonOpt
from zoo.cli.render import (
    print_bench_table,
    print_convert_table,
    print_json,
    print_quantize_table,
    print_verify_table,
)

if TYPE_CHECKING:
    from zoo.executors import Executor
    from zoo.manifest import Manifest

report_app = typer.Typer(
    help="Work with the run reports of sharded and Ray runs.", no_args_is_help=True, rich_markup_mode=None
)


def save_run(
    out: Path,
    command: str,
    shard: tuple[int, int] | None,
    executor: Executor,
    models: Sequence[Manifest],
    results: list[dict[str, Any]],
    failures: Sequence[Failure],
    extra: dict[str, Any] | None = None,
) -> None:
    """`<out>/runs/<command>[-shard-I-of-N].json`, for runs with --shard or --executor ray (else nothing)."""
    if shard is None and executor.name == "local":
        return
    from zoo.runs import RunReport, run_report_path
    from zoo.shards import shard_label

    RunReport(
        command=command,
        shard=shard_label(shard),
        executor=executor.name,
        models=[m.name for m in models],
        results=results,
        failures=[asdict(f) for f in failures],
        tasks=executor.tasks,
        extra=extra or {},
    ).write(run_report_path(out, command, shard))


@report_app.command("merge")
def merge(
    places: Annotated[
        list[Path],
        typer.Argument(
            metavar="DIR_OR_FILE",
            help="Output folders of the shards (their runs/*.json) or run report files.",
        ),
    ],
    command: Annotated[
        str | None,
        typer.Option("--command", help="convert | verify | quantize | bench: when the folders hold several."),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Merge the run reports of shards (or of a Ray run) into one table; exit 1 if any model failed."""
    from zoo.errors import UsageError
    from zoo.runs import COMMANDS, find_run_reports, merge_runs

    if command is not None and command not in COMMANDS:
        raise UsageError(f"--command: expected one of {', '.join(COMMANDS)}, got {command!r}.")
    merged = merge_runs(find_run_reports(places, command))
    if as_json:
        print_json(merged.model_dump(mode="json", by_alias=True))
    else:
        _table(merged.command, merged.results, merged.extra)
    report([Failure(**f) for f in merged.failures], len(merged.models))


def _table(command: str, rows: list[dict[str, Any]], extra: dict[str, Any]) -> None:
    """The command's own table over the merged rows."""
    if command == "convert":
        from zoo.stages.engine import ModelResult, StageResult

        results = [
            ModelResult(
                **{k: v for k, v in r.items() if k not in ("seconds", "stages")},
                stages=[StageResult(**s) for s in r["stages"]],
            )
            for r in rows
            if "skipped" not in r
        ]
        skipped = [(r["model"], r["skipped"]) for r in rows if "skipped" in r]
        print_convert_table(results, skipped=skipped, order=[r["model"] for r in rows])
    elif command == "verify":
        if rows:
            print_verify_table(rows)
    elif command == "quantize":
        from zoo.quantize.options import QuantizeResult

        print_quantize_table([QuantizeResult(**r) for r in rows if "skipped" not in r])
    else:
        print_bench_table({**extra, "rows": rows})
