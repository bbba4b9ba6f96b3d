"""The stage engine: every stage of every command runs through one loop with one result shape.

A stage (source, onnx, FP32/FP16 IR, INT8, verify) declares the stages it needs, a key (every
input its outputs depend on: source checksums, the manifest fields it reads, options, tool
versions, and the digest of every code file it runs) and the work that writes its outputs. The
engine, per model:

- takes the model folder's lock (two runs never write one model's outputs at once);
- removes the partial files a killed run left (never a finished-looking name);
- runs each wanted stage after its requirements, skipping it when its stamp's key equals the key
  it would have now and its outputs are intact ("up to date"), else doing the work and writing a
  stamp (`zoo.stamps`);
- records one `StageResult` per stage and, on an error, one failure (stage, message, exit code)
  without stopping the other models.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from zoo.errors import EXIT_FAILED, NoSpace, ZooError, is_disk_full
from zoo.layout import ModelLayout
from zoo.stamps import read_stamp, sha256_file, why_stale, write_stamp

if TYPE_CHECKING:
    from zoo.manifest import Manifest
    from zoo.plugins import Converter
    from zoo.records import Stamp
    from zoo.source_folder import SourceSet

Log = Callable[[str], None]


@dataclass
class RunOptions:
    """Everything the stages of one command were asked, in a form that can cross to a worker process."""

    out: Path
    precisions: list[str] | None = None  # None: the manifest's convert.openvino.precisions
    weights: Path | None = None
    reference_weights: bool = False
    seed: int = 0
    cache_dir: Path | None = None
    mirrors: list[str] = field(default_factory=list)
    allow_local: list[Path] = field(default_factory=list)  # folders file:// sources may be read from
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

    @property
    def failed_stage(self) -> str | None:
        return next((s.stage for s in self.stages if s.status == "failed"), None)


def tool_versions() -> dict[str, str]:
    """Versions a stage's outputs depend on (zoo and the frameworks), not the Python build or the OS."""
    from zoo.versions import versions

    return {k: v for k, v in versions().items() if k not in ("python", "platform")}


def code_digest(paths: Sequence[Path | str]) -> dict[str, str]:
    """{file: sha256} of the code a stage runs (paths relative to the project): editing one redoes it."""
    project = Path(__file__).resolve().parents[2]
    found: dict[str, str] = {}
    for path in sorted({Path(p).resolve() for p in paths}):
        if path.is_file():
            name = path.relative_to(project).as_posix() if path.is_relative_to(project) else path.name
            found[name] = sha256_file(path)
    return found


class ModelRun:
    """One model's run: its manifest, options, layout, log, and what earlier stages made."""

    def __init__(self, manifest: Manifest, options: RunOptions, log: Log):
        self.manifest = manifest
        self.options = options
        self.log = log
        # absolute, so stamps record outputs relative to the model folder whatever the cwd
        self.layout = ModelLayout(Path(options.out).resolve(), manifest.name)
        self.result = ModelResult(manifest.name)
        self.current = "source"
        self.sources: SourceSet | None = None
        self._converter: Converter[Any] | None = None
        self._source_model: Any = None

    # -- what stages share ------------------------------------------------------------------
    @property
    def converter(self) -> Converter[Any]:
        """The manifest framework's converter (through the registry)."""
        if self._converter is None:
            from zoo.plugins import converter_for

            self._converter = converter_for(self.manifest)
        return self._converter

    @property
    def converts_directly_to_ir(self) -> bool:
        """The converter makes the IR from the source model itself instead of from the ONNX export."""
        return self.converter.direct_ir

    def converter_code(self) -> dict[str, str]:
        """Digest of every code file the converter runs for this model (adapter, network, helpers)."""
        return code_digest(self.converter.code_files(self.manifest))

    def source_model(self) -> Any:
        if self._source_model is None:
            if self.sources is None:
                raise ZooError(f"{self.manifest.name}: the source stage has not run.")
            self._source_model = self.converter.load(self.sources.files, self.manifest)
        return self._source_model

    def stamp(self, stage: str) -> Stamp | None:
        return read_stamp(self.layout.stamp(stage))

    def provenance(self) -> dict[str, Any]:
        """Facts every stamp records besides its key."""
        return {
            "model": self.manifest.name,
            "manifest_version": self.manifest.version,
            "manifest_sha256": self.manifest.digest,
            "reference_weights": bool(self.sources.reference_weights) if self.sources else None,
        }


class Stage:
    """One step of a model's pipeline. Subclasses say what they need, what they depend on and do."""

    name: str  # a class attribute, except where one class makes several stages (IR precisions)
    requires: ClassVar[tuple[str, ...]] = ()
    #: the cores its work keeps busy: what a cluster executor reserves for it (zoo.executors)
    cpus: ClassVar[float] = 1.0

    def key(self, run: ModelRun) -> dict[str, Any]:
        """Everything the outputs depend on; a change of any part redoes the stage."""
        raise NotImplementedError

    def work(self, run: ModelRun) -> tuple[list[Path], dict[str, Any]]:
        """Make the outputs; return them (absolute paths) and facts for the stamp."""
        raise NotImplementedError

    def reuse(self, run: ModelRun) -> bool:
        """Called when the stamp says up to date: load what later stages need; False redoes the stage."""
        return True

    def always(self, run: ModelRun) -> bool:
        """True when this stage runs even when its stamp is current (e.g. a forced re-run)."""
        return False


def run_stage(run: ModelRun, stage: Stage) -> StageResult:
    """Run *stage* for *run* unless its stamp says it is up to date; stamp what it wrote."""
    run.current = stage.name
    name = run.manifest.name
    key = stage.key(run)
    reason = "forced" if stage.always(run) else why_stale(run.layout.stamp(stage.name), key, run.layout.root)
    if reason is None and stage.reuse(run):
        entry = StageResult(name, stage.name, "up to date")
        run.log(f"{name}: {stage.name}: up to date")
    else:
        run.log(f"{name}: {stage.name}: {reason or 'cannot reuse its outputs'}; making it")
        started = time.perf_counter()
        outputs, facts = stage.work(run)
        seconds = time.perf_counter() - started
        write_stamp(
            run.layout.stamp(stage.name),
            stage.name,
            key,
            outputs,
            run.layout.root,
            seconds,
            {**run.provenance(), **facts},
        )
        entry = StageResult(name, stage.name, "done", seconds)
        run.log(f"{name}: {stage.name}: done in {seconds:.1f} s")
    run.result.stages.append(entry)
    return entry


def remove_partials(layout: ModelLayout) -> None:
    """Temporary files and folders a killed run of this model left (never finished-looking names)."""
    root = layout.root
    leftovers = [p for p in root.glob(".*.part")]  # precision folders built aside (atomic_dir)
    leftovers += [p for p in root.glob(".*.old")]
    leftovers += list(layout.onnx_dir.glob(".*.part*"))
    leftovers += list((root / "stamps").glob(".*.part"))
    leftovers += list(layout.source_dir.glob(".*.part"))  # SOURCES.json or a file being placed
    leftovers += list(root.glob(".source-reference.*.tmp"))
    for path in leftovers:
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()


@contextlib.contextmanager
def model_lock(layout: ModelLayout) -> Iterator[None]:
    """The model folder's lock, then the clean-up of what killed runs left under it."""
    from filelock import FileLock

    layout.root.mkdir(parents=True, exist_ok=True)
    with FileLock(str(layout.root / ".lock")):
        remove_partials(layout)
        yield


def run_model(run: ModelRun, stages: Sequence[Stage]) -> ModelResult:
    """Every stage in order under the model's lock; a failure is recorded in the result, never raised."""
    try:
        with model_lock(run.layout):
            for stage in stages:
                run_stage(run, stage)
    except ZooError as exc:
        if run.options.debug:
            traceback.print_exc()
        run.result.error, run.result.exit_code = exc.message, exc.exit_code
    except Exception as exc:  # a bug or a framework failure: say which model, keep the others going
        if run.options.debug:
            traceback.print_exc()
        if is_disk_full(exc):
            full = NoSpace(getattr(exc, "filename", None) or run.layout.root)
            run.result.error, run.result.exit_code = full.message, full.exit_code
        else:
            run.result.error = f"internal error: {type(exc).__name__}: {exc}"
            run.result.exit_code = 3
    if run.result.error is not None:
        run.result.stages.append(StageResult(run.manifest.name, run.current, "failed", 0.0, run.result.error))
        run.log(f"{run.manifest.name}: {run.current}: FAILED: {run.result.error}")
    elif run.result.up_to_date:
        run.log(f"{run.manifest.name}: up to date, nothing to do")
    return run.result


@contextlib.contextmanager
def stdout_to_stderr() -> Iterator[None]:
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


def log_stderr(message: str) -> None:
    sys.stderr.write(f"zoo: {message}\n")
    sys.stderr.flush()


def worker_failure(model: str, exc: BaseException, stage: str = "?") -> ModelResult:
    """The result of a model whose worker process died (killed, out of memory)."""
    return ModelResult(
        model,
        [StageResult(model, stage, "failed", 0.0, f"worker failed: {exc}")],
        error=f"worker failed: {type(exc).__name__}: {exc}",
        exit_code=EXIT_FAILED,
    )
