"""`zoo evaluate` and `zoo bench`: accuracy on a labelled folder, speed per runtime and precision."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from zoo.cli.failures import failure, report
from zoo.cli.options import (
    AllOpt,
    ExecutorOpt,
    JsonOpt,
    ListOpt,
    ManifestsOpt,
    NameOpt,
    OutOpt,
    RayAddressOpt,
    ShardOpt,
    select,
)
from zoo.cli.render import print_bench_table, print_evaluate_table, print_json, print_throughput_table
from zoo.cli.runs import save_run
from zoo.errors import EXIT_USAGE, ZooError


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
        print_json(reports if len(reports) != 1 else reports[0])
        return
    print_evaluate_table(reports)


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
        list[str] | None,
        typer.Option(
            "--threads",
            help="Threads per runtime, or several counts measured in one run (1,2); default: the "
            "runtime's choice. With --throughput: the cores the configurations share (default: all).",
        ),
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
    profile: Annotated[
        int,
        typer.Option(
            "--profile",
            min=0,
            help="Also list the N slowest operations of each IR, from OpenVINO's per-op counters.",
        ),
    ] = 0,
    throughput: Annotated[
        bool,
        typer.Option(
            "--throughput",
            help="Archive processing: audio seconds per wall second of each subject at its best "
            "configuration (one instance on every thread, one per core, OpenVINO's throughput streams).",
        ),
    ] = False,
    executor: ExecutorOpt = "local",
    ray_address: RayAddressOpt = None,
    shard: ShardOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Latency (p50/p90), throughput, size and speed-up over the source framework, per runtime and precision."""
    from zoo.bench.throughput import bench_throughput
    from zoo.executors import BenchJob, make_executor
    from zoo.layout import default_output_dir
    from zoo.shards import parse_shard, take_shard
    from zoo.vocab import ALL_IR_PRECISIONS as PRECISIONS
    from zoo.vocab import RUNTIMES, parse_list

    if hint not in ("f32", "default"):
        raise ZooError(f"--hint: expected 'f32' or 'default', got {hint!r}.", EXIT_USAGE)
    counts = parse_thread_counts(threads)
    part = parse_shard(shard)
    chosen = take_shard(select(name, all_, list_file, manifests), part)
    out = output_dir or default_output_dir()
    chosen_runtimes = parse_list(runtimes, RUNTIMES, "--runtimes")
    chosen_precisions = parse_list(precisions, PRECISIONS, "--precisions")
    if throughput:
        if len(counts) > 1 or batch != 1 or profile or executor != "local" or part is not None:
            raise ZooError(
                "--throughput runs on this machine with one --threads count, and takes neither "
                "--batch, --profile, --shard nor --executor ray.",
                EXIT_USAGE,
            )
        result = bench_throughput(
            chosen,
            out,
            runtimes=chosen_runtimes,
            precisions=chosen_precisions,
            threads=counts[0] if counts else None,
            seconds=seconds,
            hint=None if hint == "default" else hint,
        )
        print_json(result) if as_json else print_throughput_table(result)
        errors = [row for row in result["rows"] if row["error"]]
        report(
            [failure(r["model"], f"{r['artifact']} on {r['runtime']}", r["error"]) for r in errors],
            len(chosen),
        )
        return
    runner = make_executor(executor, 1, ray_address)
    settings = {
        "runtimes": chosen_runtimes,
        "precisions": chosen_precisions,
        "batch": batch,
        "threads": counts or None,
        "seconds": seconds,
        "rounds": rounds,
        "hint": None if hint == "default" else hint,
        "profile": profile,
    }
    result = runner.run(BenchJob(out, settings), chosen)
    if as_json:
        print_json(result)
    else:
        print_bench_table(result)
    errors = [row for row in result["rows"] if row["error"]]
    failures = [failure(r["model"], f"{r['artifact']} on {r['runtime']}", r["error"]) for r in errors]
    extra = {key: value for key, value in result.items() if key != "rows"}
    save_run(out, "bench", part, runner, chosen, result["rows"], failures, extra)
    report(failures, len(chosen))


def parse_thread_counts(values: list[str] | None) -> list[int]:
    """--threads 1,2 (or repeated): positive thread counts in the order given, no repeats."""
    counts: list[int] = []
    for value in values or []:
        for part in value.split(","):
            part = part.strip()
            if not part.isdigit() or int(part) < 1:
                raise ZooError(
                    f"--threads: expected positive whole numbers like 1,2; got {part!r}.", EXIT_USAGE
                )
            if int(part) not in counts:
                counts.append(int(part))
    return counts
