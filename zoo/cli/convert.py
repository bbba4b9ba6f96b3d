"""`zoo convert`, `verify` and `quantize`: make the artifacts and check them against the source model."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from zoo.cli.failures import Failure, failure, literal_names, report, split_unpublished
from zoo.cli.options import (
    AllOpt,
    AllowLocalOpt,
    AllowUnpinnedOpt,
    CacheOpt,
    ExecutorOpt,
    JsonOpt,
    ListOpt,
    ManifestsOpt,
    MirrorOpt,
    NameOpt,
    OfflineOpt,
    OutOpt,
    RayAddressOpt,
    ReferenceWeightsOpt,
    SeedOpt,
    ShardOpt,
    WeightsOpt,
    catalog,
    folder_option,
    select,
    state,
)
from zoo.cli.render import print_convert_table, print_json, print_quantize_table, print_verify_table
from zoo.cli.runs import save_run

if TYPE_CHECKING:
    from zoo.manifest import Manifest
    from zoo.pipeline import ModelResult


ChainOpt = Annotated[
    bool,
    typer.Option(
        "--chain",
        help="Composites: also the entries their chain runs first (audioset-attention-* from a waveform: vggish).",
    ),
]


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
    allow_local: AllowLocalOpt = None,
    allow_unpinned: AllowUnpinnedOpt = False,
    offline: OfflineOpt = False,
    executor: ExecutorOpt = "local",
    ray_address: RayAddressOpt = None,
    shard: ShardOpt = None,
    chain: ChainOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Convert models to ONNX and OpenVINO IR (FP32, FP16); stages that are up to date are skipped."""
    from zoo.executors import ConvertJob, make_executor
    from zoo.layout import default_output_dir
    from zoo.pipeline import ConvertOptions, parse_precisions, stdout_to_stderr
    from zoo.shards import parse_shard, take_shard

    folder_option(output_dir or default_output_dir(), "--output-dir")
    part = parse_shard(shard)
    runner = make_executor(executor, jobs, ray_address)
    chosen = take_shard(select(name, all_, list_file, manifests), part)
    if chain:  # after sharding: a shard converts the embedders its own composites need
        chosen = with_chains(chosen, manifests)
    run, skipped = split_unpublished(
        chosen, literal_names(name, list_file), weights=weights, reference_weights=reference_weights
    )
    options = ConvertOptions(
        out=output_dir or default_output_dir(),
        precisions=parse_precisions(precisions),
        weights=weights,
        reference_weights=reference_weights,
        seed=seed,
        cache_dir=cache_dir,
        mirrors=list(mirror or []),
        allow_local=list(allow_local or []),
        allow_unpinned=allow_unpinned,
        offline=offline,
        debug=state["debug"],
    )
    results = []
    if run:
        with stdout_to_stderr():
            results = runner.run(ConvertJob(options), run)
    from dataclasses import asdict

    rows = [{**asdict(r), "seconds": round(r.seconds, 3)} for r in results]
    rows += [{"model": s.model, "skipped": f"{s.message}; give {s.hint}"} for s in skipped]
    rows.sort(key=_order(chosen))
    if as_json:
        print_json(rows)
    else:
        print_convert_table(
            results, skipped=[(s.model, s.message) for s in skipped], order=[m.name for m in chosen]
        )
    failures = [
        failure(r.model, _failed_stage(r), r.error, r.exit_code) for r in results if r.error is not None
    ] + skipped
    save_run(options.out, "convert", part, runner, chosen, rows, failures)
    report(failures, len(chosen))


def with_chains(chosen: list[Manifest], manifests: Path | None) -> list[Manifest]:
    """The selection with every composite's embedder in front of it (zoo.composite)."""
    from zoo.composite.runner import with_stages

    return with_stages(chosen, catalog(manifests))


def _order(chosen: list[Manifest]) -> Callable[[dict[str, Any]], int]:
    """Sort key: rows in catalog (selection) order."""
    index = {m.name: i for i, m in enumerate(chosen)}
    return lambda row: index.get(row["model"], len(index))


def _failed_stage(result: ModelResult) -> str:
    return next((s.stage for s in reversed(result.stages) if s.status == "failed"), "-")


def verify(
    name: NameOpt = None,
    all_: AllOpt = False,
    list_file: ListOpt = None,
    manifests: ManifestsOpt = None,
    output_dir: OutOpt = None,
    reference_weights: Annotated[
        bool, typer.Option("--reference-weights", help="The outputs were converted with --reference-weights.")
    ] = False,
    audio: Annotated[
        list[Path] | None,
        typer.Option(
            "--audio",
            help="Also verify on these recordings (files or folders, any rate soundfile reads); repeatable.",
        ),
    ] = None,
    junit: Annotated[
        Path | None, typer.Option("--junit", help="Also write the results as JUnit XML (for CI systems).")
    ] = None,
    threads: Annotated[
        int | None, typer.Option("--threads", min=1, help="Threads for every runtime and the source model.")
    ] = None,
    executor: ExecutorOpt = "local",
    ray_address: RayAddressOpt = None,
    shard: ShardOpt = None,
    chain: ChainOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Check every converted artifact against the original framework on the probe set; exit 1 on any miss.

    A composite (an entry with a chain) is also checked end to end, waveform to labels, against the
    chained source frameworks, when its embedder is converted in the same output folder.
    """
    from zoo.executors import VerifyJob, make_executor
    from zoo.layout import default_output_dir
    from zoo.pipeline import stdout_to_stderr
    from zoo.shards import parse_shard, take_shard

    part = parse_shard(shard)
    runner = make_executor(executor, 1, ray_address)
    chosen = take_shard(select(name, all_, list_file, manifests), part)
    if chain:  # after sharding: a shard verifies the embedders its own composites need
        chosen = with_chains(chosen, manifests)
    out = output_dir or default_output_dir()
    job = VerifyJob(out, reference_weights=reference_weights, audio=list(audio or ()), threads=threads)
    with stdout_to_stderr():
        reports, errors = runner.run(job, chosen)
    names = [m.name for m in chosen]
    if junit is not None:
        from zoo.junit import write_junit

        write_junit(junit, reports, {_verify_error(names, e).model: e for e in errors})
    if as_json:
        print_json(reports if len(reports) != 1 else reports[0])
    elif reports:
        print_verify_table(reports)
    misses = [_verify_miss(r["model"], text) for r in reports for text in r["failures"]]
    misses += [_verify_error(names, text) for text in errors]
    save_run(out, "verify", part, runner, chosen, reports, misses)
    report(misses, len(chosen))


def _verify_miss(model: str, text: str) -> Failure:
    """'<model>: <artifact>: <what>' from zoo.verify as a Failure at that artifact."""
    rest = text[len(model) + 2 :] if text.startswith(f"{model}: ") else text
    stage, _, what = rest.partition(": ")
    return failure(model, stage, what or rest)


def _verify_error(names: list[str], text: str) -> Failure:
    """'<model>: <message>' of a model that could not be verified at all."""
    model = max((n for n in names if text.startswith(f"{n}: ")), key=len, default="-")
    return failure(model, "verify", text)


def quantize(
    name: NameOpt = None,
    all_: AllOpt = False,
    list_file: ListOpt = None,
    manifests: ManifestsOpt = None,
    output_dir: OutOpt = None,
    calibration: Annotated[
        list[Path] | None,
        typer.Option(
            "--calibration",
            help="Folder of recordings to calibrate on, through the manifest's host preprocessing; repeat for "
            "several (default: the manifest's quantize.calibration mix, else the calibration probes).",
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
    executor: ExecutorOpt = "local",
    ray_address: RayAddressOpt = None,
    shard: ShardOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Quantize the FP32 IR to INT8 with NNCF (<out>/<name>/INT8/), converting first if needed."""
    from dataclasses import asdict

    from zoo.executors import QuantizeJob, make_executor
    from zoo.layout import ModelLayout, default_output_dir
    from zoo.quantize import QuantizeOptions
    from zoo.shards import parse_shard, take_shard

    folder_option(output_dir or default_output_dir(), "--output-dir")
    part = parse_shard(shard)
    runner = make_executor(executor, 1, ray_address)
    chosen = take_shard(select(name, all_, list_file, manifests), part)
    out = output_dir or default_output_dir()
    run, skipped = split_unpublished(
        chosen,
        literal_names(name, list_file),
        weights=weights,
        reference_weights=reference_weights,
        ready=lambda m: ModelLayout(Path(out).resolve(), m.name).ir_xml("FP32").is_file(),
    )
    options = QuantizeOptions(
        out=out,
        calibration=list(calibration or []),
        subset_size=subset_size,
        preset=preset.lower() if preset else None,
        max_drop=max_drop,
        dataset=dataset,
        force=force,
        debug=state["debug"],
        reference_weights=reference_weights,
        weights=weights,
    )

    results = runner.run(QuantizeJob(options), run) if run else []
    rows = [asdict(r) for r in results]
    rows += [{"model": s.model, "skipped": f"{s.message}; give {s.hint}"} for s in skipped]
    rows.sort(key=_order(chosen))
    if as_json:
        print_json(rows)
    else:
        print_quantize_table(results)
    failures = [
        failure(r.model, "INT8", r.error, r.exit_code) for r in results if r.error is not None
    ] + skipped
    save_run(out, "quantize", part, runner, chosen, rows, failures)
    report(failures, len(chosen))
