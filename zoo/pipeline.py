"""`zoo convert`: the stages from sources to ONNX and OpenVINO IR, with stamps and parallel jobs.

Stages of one model, each recorded in `<out>/<name>/stamps/<stage>.json`:

- ``source``: the verified source files (zoo.fetch.obtain_sources), or reference weights;
- ``onnx``: the ONNX export by the framework's converter (`<out>/<name>/onnx/<name>.onnx`);
- ``FP32`` / ``FP16``: OpenVINO IR made from the ONNX export (or from the source model when the
  converter declares `direct_ir`), with labels and preprocessing in its runtime info.

A stage whose key (inputs, options, tool versions) and outputs are unchanged is skipped and
reported "up to date"; anything it depends on changing redoes it and what comes after.
Models run one after another, or in N worker processes with ``-j N``; a lock per model
folder keeps two runs from writing the same outputs.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from zoo.errors import EXIT_FAILED, UsageError, ZooError
from zoo.layout import ModelLayout
from zoo.stamps import digest, manifest_part, read_stamp, sha256_file, why_stale, write_stamp

IR_PRECISIONS = ("FP32", "FP16")
SOURCE_FIELDS = {"name", "framework", "files", "weights"}
ONNX_FIELDS = {"framework", "network", "inputs", "outputs", "primary_output", "weights"}
IR_FIELDS = {"name", "version", "task", "license", "inputs", "outputs", "primary_output", "audio", "labels"}


@dataclass
class ConvertOptions:
    """Everything `zoo convert` was asked, in a form that can cross to a worker process."""

    out: Path
    precisions: list[str] | None = None  # None: the manifest's convert.openvino.precisions
    weights: Path | None = None
    reference_weights: bool = False
    seed: int = 0
    cache_dir: Path | None = None
    mirrors: list[str] = field(default_factory=list)
    allow_unpinned: bool = False
    offline: bool = False
    threads: int | None = None
    debug: bool = False


@dataclass
class StageResult:
    model: str
    stage: str
    status: str  # done | up to date | failed | skipped
    seconds: float = 0.0
    detail: str = ""


@dataclass
class ModelResult:
    model: str
    stages: list[StageResult] = field(default_factory=list)
    error: str | None = None
    exit_code: int = 0

    @property
    def seconds(self) -> float:
        return sum(s.seconds for s in self.stages)

    @property
    def up_to_date(self) -> bool:
        return self.error is None and all(s.status == "up to date" for s in self.stages)


def precisions_for(manifest, requested: list[str] | None) -> list[str]:
    """The IR precisions to make: those asked for, else the manifest's."""
    if requested is None:
        return list(manifest.convert.openvino.precisions)
    for value in requested:
        if value == "INT8":
            raise UsageError(
                "--precisions: INT8 is made by `zoo quantize`, not `zoo convert`; give FP32 and/or FP16."
            )
        if value not in IR_PRECISIONS:
            raise UsageError(f"--precisions: expected a comma-separated list of FP32, FP16; got {value!r}.")
    return [p for p in IR_PRECISIONS if p in requested]


def parse_precisions(text: str | None) -> list[str] | None:
    if text is None:
        return None
    values = [v.strip().upper() for v in text.split(",") if v.strip()]
    if not values:
        raise UsageError("--precisions: give at least one of FP32, FP16.")
    return values


def _code_digest(paths: list[Path]) -> str:
    """Digest of the sha256 of each code file (sorted): changing any of them redoes the exports."""
    return digest(sorted(sha256_file(path) for path in paths))


class ModelPipeline:
    """The stages of one model, run in order, each skipped when up to date."""

    def __init__(self, manifest, options: ConvertOptions, log: Callable[[str], None]):
        self.manifest = manifest
        self.options = options
        self.log = log
        # absolute, so stamps can record outputs relative to the model folder whatever the cwd
        self.layout = ModelLayout(Path(options.out).resolve(), manifest.name)
        self.result = ModelResult(manifest.name)
        self.current = "source"
        self._converter = None
        self._source_model = None
        self.sources = None

    # -- helpers ------------------------------------------------------------------------
    @property
    def converter(self):
        if self._converter is None:
            from zoo.plugins import converter_for

            self._converter = converter_for(self.manifest)
        return self._converter

    def source_model(self):
        if self._source_model is None:
            self._source_model = self.converter.load(self.sources.files, self.manifest)
        return self._source_model

    def _stage(
        self, stage: str, key: dict, work: Callable[[], tuple[list[Path], dict | None]]
    ) -> StageResult:
        """Run *work* unless the stamp says the stage is up to date; stamp what it wrote."""
        self.current = stage
        stamp_path = self.layout.stamp(stage)
        reason = why_stale(stamp_path, key, self.layout.root)
        if reason is None:
            entry = StageResult(self.manifest.name, stage, "up to date")
            self.log(f"{self.manifest.name}: {stage}: up to date")
        else:
            self.log(f"{self.manifest.name}: {stage}: {reason}; making it")
            started = time.perf_counter()
            outputs, extra = work()
            seconds = time.perf_counter() - started
            facts = {
                "model": self.manifest.name,
                "manifest_version": self.manifest.version,
                "manifest_sha256": self.manifest.digest,
                "reference_weights": bool(self.sources.reference_weights) if self.sources else None,
                **(extra or {}),
            }
            write_stamp(stamp_path, stage, key, outputs, self.layout.root, seconds, facts)
            entry = StageResult(self.manifest.name, stage, "done", seconds)
            self.log(f"{self.manifest.name}: {stage}: done in {seconds:.1f} s")
        self.result.stages.append(entry)
        return entry

    def _versions(self) -> dict:
        from zoo.versions import versions

        return {k: v for k, v in versions().items() if k not in ("python", "platform")}

    # -- stages -------------------------------------------------------------------------
    def run(self, precisions: list[str]) -> ModelResult:
        from filelock import FileLock

        self.layout.root.mkdir(parents=True, exist_ok=True)
        with FileLock(str(self.layout.root / ".lock")):
            self._remove_partials()
            self.source_stage()
            onnx_stamp = self.onnx_stage()
            self.ir_stages(precisions, onnx_stamp)
        return self.result

    def _remove_partials(self) -> None:
        """Temporary files and folders a killed convert of this model left (never finished-looking names)."""
        import shutil

        leftovers = [p for precision in IR_PRECISIONS for p in self.layout.root.glob(f".{precision}.*.part")]
        leftovers += list(self.layout.onnx_dir.glob(f".{self.layout.onnx.stem}.*.part.onnx"))
        leftovers += list(self.layout.stamp("source").parent.glob(".*.json.*.part"))
        leftovers += list(self.layout.source_dir.glob(".*.part"))  # SOURCES.json or a file being placed
        for path in leftovers:
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            else:
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()

    def source_stage(self) -> None:
        from zoo import fetch

        options = self.options
        if options.weights and options.reference_weights:
            raise UsageError("give either --weights PATH or --reference-weights, not both.")
        if options.weights and not Path(options.weights).is_file():
            raise UsageError(
                f"--weights: {options.weights} is not a file (expected your own weights file: "
                f"{self.manifest.weights.format or 'the format of the published weights'})."
            )
        weights_sha = sha256_file(options.weights) if options.weights else None
        key = {
            "manifest": manifest_part(self.manifest, SOURCE_FIELDS),
            "reference_weights": options.reference_weights,
            "seed": options.seed if options.reference_weights else None,
            "weights": weights_sha,
        }
        if why_stale(self.layout.stamp("source"), key, self.layout.root) is None:
            self.sources = fetch.read_source_set(self.manifest, Path(options.out))
        if self.sources is not None:
            self.result.stages.append(StageResult(self.manifest.name, "source", "up to date"))
            self.log(f"{self.manifest.name}: source: up to date")
            return

        def work():
            self.sources = fetch.obtain_sources(
                self.manifest,
                Path(options.out),
                reference_weights=options.reference_weights,
                weights=Path(options.weights) if options.weights else None,
                seed=options.seed,
                cache_dir=options.cache_dir,
                mirrors=tuple(options.mirrors),
                allow_unpinned=options.allow_unpinned,
                offline=options.offline,
            )
            root = self.layout.root.resolve()
            outputs = [p for p in self.sources.files.values() if Path(p).resolve().is_relative_to(root)]
            return [Path(p).resolve() for p in outputs], {"reference_weights": self.sources.reference_weights}

        self._stage("source", key, work)

    def _source_checksums(self) -> dict:
        stamp = read_stamp(self.layout.stamp("source")) or {}
        return {name: facts["sha256"] for name, facts in sorted(stamp.get("outputs", {}).items())}

    def onnx_stage(self) -> dict:
        manifest = self.manifest
        converter = self.converter
        key = {
            "manifest": manifest_part(manifest, ONNX_FIELDS),
            "onnx": manifest.convert.onnx.model_dump(mode="json"),
            "sources": self._source_checksums(),
            "converter": _code_digest(converter.code_files(manifest)),
            "versions": self._versions(),
        }

        def work():
            from zoo.ir import check_interface

            target = self.layout.onnx
            target.parent.mkdir(parents=True, exist_ok=True)
            partial = target.with_name(f".{target.stem}.{os.getpid()}.part.onnx")
            try:
                converter.export_onnx(self.source_model(), partial, manifest)
                if not partial.is_file():
                    raise ZooError(f"{manifest.name}: the {manifest.framework} converter wrote no ONNX file.")
                check_interface(partial, manifest)
                with open(partial, "rb") as handle:
                    os.fsync(handle.fileno())
                os.replace(partial, target)
            finally:
                with contextlib.suppress(FileNotFoundError):
                    partial.unlink()
            return [target], {"opset": manifest.convert.onnx.opset}

        self._stage("onnx", key, work)
        return read_stamp(self.layout.stamp("onnx")) or {}

    def ir_stages(self, precisions: list[str], onnx_stamp: dict) -> None:
        manifest = self.manifest
        direct = self.converter.direct_ir
        if direct:
            made_from = {
                "sources": self._source_checksums(),
                "converter": _code_digest(self.converter.code_files(manifest)),
            }
        else:
            made_from = {"onnx": onnx_stamp.get("outputs", {})}
        labels = manifest.read_labels(self.sources.directory)

        def ir_model():
            # a fresh ov.Model for each precision: saving must not see the other precision's changes
            if direct:
                return self.converter.to_openvino(self.source_model(), self.sources.files, manifest)
            from zoo.ir import onnx_to_ir

            return onnx_to_ir(self.layout.onnx, manifest)

        import zoo.ir as ov_converter

        for precision in precisions:
            options = manifest.convert.openvino.model_dump(mode="json", exclude={"precisions"})
            if precision != "FP16":
                options.pop("fp16_keep_fp32", None)
            key = {
                "manifest": manifest_part(manifest, IR_FIELDS),
                "openvino": options,
                "labels": digest(labels),
                "from": made_from,
                "converter": _code_digest([Path(ov_converter.__file__)]),
                "versions": self._versions(),
                "precision": precision,
            }

            def work(precision=precision):
                xml = self.layout.ir_xml(precision)
                facts = ov_converter.save_ir(ir_model(), xml, precision, manifest, labels=labels)
                return [xml, xml.with_suffix(".bin")], facts

            self._stage(precision, key, work)


def convert_model(manifest, options: ConvertOptions, log: Callable[[str], None]) -> ModelResult:
    """All stages of one model; a failure is recorded in the result, never raised."""
    pipeline = ModelPipeline(manifest, options, log)
    try:
        pipeline.run(precisions_for(manifest, options.precisions))
    except ZooError as exc:
        if options.debug:
            traceback.print_exc()
        pipeline.result.error = exc.message
        pipeline.result.exit_code = exc.exit_code
    except Exception as exc:  # a bug or a framework failure: say which model, keep the others going
        if options.debug:
            traceback.print_exc()
        pipeline.result.error = f"internal error: {type(exc).__name__}: {exc}"
        pipeline.result.exit_code = 3
    if pipeline.result.error is not None:
        failed_stage = pipeline.current
        pipeline.result.stages.append(
            StageResult(manifest.name, failed_stage, "failed", 0.0, pipeline.result.error)
        )
        log(f"{manifest.name}: {failed_stage}: FAILED: {pipeline.result.error}")
    elif pipeline.result.up_to_date:
        log(f"{manifest.name}: up to date, nothing to do")
    return pipeline.result


@contextlib.contextmanager
def stdout_to_stderr():
    """While stages run, send whatever frameworks print to stdout (progress bars, native logs) to stderr.

    stdout then carries only zoo's own table or JSON. Works at the file-descriptor level, so output
    from native code and from worker processes started inside is moved too.
    """
    sys.stdout.flush()
    saved = os.dup(1)
    try:
        os.dup2(2, 1)
        with contextlib.redirect_stdout(sys.stderr):
            yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 1)
        os.close(saved)


def _log_stderr(message: str) -> None:
    sys.stderr.write(f"zoo: {message}\n")
    sys.stderr.flush()


def _worker_init(threads: int) -> None:
    """Keep each worker's math libraries to its share of the cores."""
    for variable in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[variable] = str(threads)


def _worker(manifest_path: str, options: dict) -> dict:
    from zoo.manifest import load_manifest

    opts = ConvertOptions(**options)
    result = convert_model(load_manifest(manifest_path), opts, _log_stderr)
    return asdict(result)


def convert_many(
    manifests: list, options: ConvertOptions, jobs: int = 1, log: Callable[[str], None] = _log_stderr
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
                results[manifest.name] = ModelResult(
                    manifest.name,
                    [StageResult(manifest.name, "?", "failed", 0.0, f"worker failed: {exc}")],
                    error=f"worker failed: {type(exc).__name__}: {exc}",
                    exit_code=EXIT_FAILED,
                )
    return [results[m.name] for m in manifests]
