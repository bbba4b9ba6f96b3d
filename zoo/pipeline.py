"""`zoo convert`: the source, ONNX and IR stages of each selected model, in parallel jobs if asked.

Stages are run by the engine (zoo.stages.engine): each is recorded in
`<out>/<name>/stamps/<stage>.json`, skipped and reported "up to date" when its key and outputs are
unchanged, and redone (with what comes after) when anything it depends on changed. Models run
one after another, or in N worker processes with ``-j N``; a lock per model folder keeps two runs
from writing the same outputs.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from zoo.errors import UsageError
from zoo.stages.convert import IrStage, OnnxStage
from zoo.stages.engine import (
    Log,
    ModelResult,
    ModelRun,
    RunOptions,
    Stage,
    StageResult,
    log_stderr,
    run_model,
    stdout_to_stderr,
    worker_failure,
)
from zoo.stages.source import SourceStage
from zoo.vocab import IR_PRECISIONS, parse_list

if TYPE_CHECKING:
    from zoo.manifest import Manifest

#: the options `zoo convert` takes are the engine's
ConvertOptions = RunOptions


def precisions_for(manifest: Manifest, requested: list[str] | None) -> list[str]:
    """The IR precisions to make: those asked for, else the manifest's."""
    if requested is None:
        return list(manifest.convert.openvino.precisions)
    for value in requested:
        if value == "INT8":
            raise UsageError(
                "--precisions: INT8 is made by `zoo quantize`, not `zoo convert`; give FP32 and/or FP16."
            )
    return [p for p in IR_PRECISIONS if p in requested]


def parse_precisions(text: str | None) -> list[str] | None:
    """`--precisions FP32,FP16` (INT8 is refused later, with a pointer to `zoo quantize`)."""
    if text is None:
        return None
    if not any(v.strip() for v in text.split(",")):
        raise UsageError("--precisions: give at least one of FP32, FP16.")
    if any(v.strip().upper() == "INT8" for v in text.split(",")):
        return ["INT8"]
    return parse_list(text, IR_PRECISIONS, "--precisions")


def conversion_stages(manifest: Manifest, precisions: Sequence[str]) -> list[Stage]:
    """source -> onnx -> each IR precision."""
    return [SourceStage(), OnnxStage(), *(IrStage(p) for p in precisions)]


def convert_model(manifest: Manifest, options: RunOptions, log: Log) -> ModelResult:
    """All conversion stages of one model; a failure is recorded in the result, never raised."""
    run = ModelRun(manifest, options, log)
    try:
        stages = conversion_stages(manifest, precisions_for(manifest, options.precisions))
    except UsageError as exc:
        run.result.error, run.result.exit_code = exc.message, exc.exit_code
        return run.result
    return run_model(run, stages)


def _worker_init(threads: int) -> None:
    """Keep each worker's math libraries to its share of the cores."""
    for variable in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[variable] = str(threads)


def _worker(manifest_path: str, options: dict[str, Any]) -> dict[str, Any]:
    from zoo.manifest import load_manifest

    result = convert_model(load_manifest(manifest_path), RunOptions(**options), log_stderr)
    return asdict(result)


def convert_many(
    manifests: list[Manifest], options: RunOptions, jobs: int = 1, log: Log = log_stderr
) -> list[ModelResult]:
    """Convert every selected model, in *jobs* worker processes when more than one."""
    for manifest in manifests:
        precisions_for(manifest, options.precisions)  # bad --precisions fail before any work
    if options.weights is not None and len(manifests) != 1:
        raise UsageError("--weights PATH applies to one model: select exactly one with --name.")
    if jobs <= 1 or len(manifests) <= 1:
        return [convert_model(m, options, log) for m in manifests]

    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    workers = min(jobs, len(manifests))
    threads = max(1, (os.cpu_count() or 1) // workers)
    payload = asdict(options)
    results: dict[str, ModelResult] = {}
    with ProcessPoolExecutor(
        max_workers=workers,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=_worker_init,
        initargs=(threads,),
    ) as pool:
        futures = {pool.submit(_worker, str(m.path), payload): m for m in manifests}
        for future, manifest in futures.items():
            try:
                data = future.result()
                stages = [StageResult(**s) for s in data.pop("stages")]
                results[manifest.name] = ModelResult(**data, stages=stages)
            except Exception as exc:  # a worker that died (killed, out of memory)
                results[manifest.name] = worker_failure(manifest.name, exc)
    return [results[m.name] for m in manifests]


__all__ = [
    "ConvertOptions",
    "ModelResult",
    "StageResult",
    "convert_many",
    "convert_model",
    "parse_precisions",
    "precisions_for",
    "stdout_to_stderr",
]
