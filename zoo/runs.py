"""Run reports: what one run of a many-model command did, so shards' runs can be merged into one.

A run with ``--shard I/N`` or ``--executor ray`` writes ``<out>/runs/<command>.json`` (or
``<command>-shard-I-of-N.json``): the rows ``--json`` printed, the failures (the one-failure shape
of `zoo.cli.failures`), the models it ran and, from Ray, where each stage ran and how many attempts
it took. `zoo report merge` reads them back here (`merge_runs`) and refuses what does not add up:
an unreadable report, reports of different commands, or one model with different outcomes.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import Field

from zoo.errors import UsageError, ZooError
from zoo.records import Record, load_record, utc_now

RUN_SCHEMA = 1
COMMANDS = ("convert", "verify", "quantize", "bench")


class RunReport(Record):
    """`<out>/runs/<command>[-shard-I-of-N].json`."""

    schema_: int = Field(default=RUN_SCHEMA, alias="schema")
    command: str
    shard: str | None = None
    executor: str = "local"
    models: list[str] = Field(default_factory=list)  # the models this run selected (after --shard)
    created: str = Field(default_factory=utc_now)
    results: list[dict[str, Any]] = Field(default_factory=list)  # the rows `--json` prints
    failures: list[dict[str, Any]] = Field(default_factory=list)  # zoo.cli.failures.Failure fields
    tasks: list[dict[str, Any]] = Field(default_factory=list)  # Ray: model, stage, node, attempts
    extra: dict[str, Any] = Field(default_factory=dict)  # bench: machine, versions, options

    def write(self, path: Path) -> None:
        from zoo.atomic import write_json

        write_json(path, self.model_dump(mode="json", by_alias=True))


def run_report_path(out: Path, command: str, shard: tuple[int, int] | None) -> Path:
    suffix = "" if shard is None else f"-shard-{shard[0]}-of-{shard[1]}"
    return Path(out) / "runs" / f"{command}{suffix}.json"


def find_run_reports(places: Sequence[Path], command: str | None) -> list[Path]:
    """The run reports in each output folder (its runs/*.json) or the files given; exit 2 when none."""
    found: list[Path] = []
    for place in places:
        if place.is_file():
            found.append(place)
        elif place.is_dir():
            candidates = sorted((place / "runs").glob("*.json"))
            if command is not None:
                candidates = [
                    p for p in candidates if p.name.split("-shard-")[0].removesuffix(".json") == command
                ]
            if not candidates:
                what = f" of `zoo {command}`" if command else ""
                raise UsageError(
                    f"{place}: no run report{what} in {place / 'runs'}; a run writes one with --shard I/N "
                    "or --executor ray."
                )
            found += candidates
        else:
            raise UsageError(f"{place}: no such folder or file; give output folders (-o) of shard runs.")
    return found


def read_run(path: Path) -> RunReport:
    """A run report handed in: unreadable or malformed is bad input (exit 2) naming the file."""
    try:
        report = load_record(RunReport, path, "run report")
    except ZooError as exc:
        raise UsageError(exc.message) from exc
    if report.schema_ != RUN_SCHEMA or report.command not in COMMANDS:
        raise UsageError(
            f"{path}: not a run report this zoo reads (schema {report.schema_}, command {report.command!r}); "
            f"expected schema {RUN_SCHEMA} and one of {', '.join(COMMANDS)}."
        )
    return report


def outcome(command: str, rows: list[dict[str, Any]], failures: list[dict[str, Any]]) -> Any:
    """What must agree when two reports hold one model: statuses and failures, not timings."""
    if command == "convert":
        status: Any = [
            [(s["stage"], s["status"]) for s in row.get("stages", [])] + [row.get("skipped")] for row in rows
        ]
    elif command == "verify":
        status = [(row.get("passed"), sorted(row.get("failures", []))) for row in rows]
    elif command == "quantize":
        status = [(row.get("status"), row.get("skipped")) for row in rows]
    else:
        status = sorted((row["artifact"], row["runtime"], row.get("error") is None) for row in rows)
    return status, sorted((f["stage"], f["message"], f.get("skipped", False)) for f in failures)


def merge_runs(paths: Sequence[Path]) -> RunReport:
    """One report from several: rows and failures of every model once, in name order."""
    reports = [(path, read_run(path)) for path in paths]
    commands = sorted({r.command for _, r in reports})
    if len(commands) > 1:
        raise UsageError(
            f"the run reports are of different commands ({', '.join(commands)}); give --command "
            "or the reports of one command."
        )
    command = commands[0]
    rows: dict[str, list[dict[str, Any]]] = {}
    failures: dict[str, list[dict[str, Any]]] = {}
    source: dict[str, Path] = {}
    tasks: list[dict[str, Any]] = []
    for path, report in reports:
        mine_rows: dict[str, list[dict[str, Any]]] = {m: [] for m in report.models}
        for row in report.results:
            mine_rows.setdefault(row.get("model", "-"), []).append(row)
        mine_failures: dict[str, list[dict[str, Any]]] = {m: [] for m in mine_rows}
        for item in report.failures:
            mine_failures.setdefault(item.get("model", "-"), []).append(item)
            mine_rows.setdefault(item.get("model", "-"), [])
        for model, model_rows in mine_rows.items():
            if model in rows:
                if outcome(command, rows[model], failures[model]) != outcome(
                    command, model_rows, mine_failures[model]
                ):
                    raise UsageError(
                        f"{model}: {source[model]} and {path} disagree about it (overlapping shards with "
                        "different results); merge the reports of one run's shards, or run it again."
                    )
                continue
            rows[model], failures[model], source[model] = model_rows, mine_failures[model], path
        tasks += report.tasks
    order = sorted(rows)
    return RunReport(
        command=command,
        shard=None,
        executor=",".join(sorted({r.executor for _, r in reports})),
        models=order,
        results=[row for model in order for row in rows[model]],
        failures=[item for model in order for item in failures[model]],
        tasks=tasks,
        extra={"merged": [str(p) for p, _ in reports], **reports[0][1].extra},
    )
