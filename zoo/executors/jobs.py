"""What each many-model command asks an executor to run: its steps per model and how to read them back.

A job is the bridge between a command and `zoo.executors`: ``local`` is the command's own
many-model function (unchanged behaviour, ``-j N`` processes for convert), ``steps`` the engine's
stages of one model in dependency order (one cluster task each), ``run_step`` runs one of them in a
worker and returns plain data, and ``collect`` turns a model's step results, or the loss of its
worker after the retries, back into the command's result type in the same one-failure shape.

A task for step k runs the engine over stages 1..k: the earlier stages' stamps are current (their
own tasks made them), so the engine only confirms and reloads them ("up to date") before doing k.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Generic, TypeVar

from zoo.errors import EXIT_FAILED, EXIT_USAGE, UsageError, ZooError

if TYPE_CHECKING:
    from zoo.manifest import Manifest
    from zoo.quantize.options import QuantizeOptions, QuantizeResult
    from zoo.stages.engine import ModelResult, RunOptions

T = TypeVar("T")


@dataclass
class Step:
    """One cluster task of a model: a stage name and the cores it keeps busy."""

    name: str
    cpus: float = 1.0


@dataclass
class StepOutcome:
    """What one task returned: its step, where it ran, which attempt it was, and the step's result."""

    step: str
    node: str
    attempt: int
    result: dict[str, Any]


@dataclass
class Lost:
    """A step whose task never returned (its worker or node died on every attempt)."""

    step: str
    message: str


def _quiet(message: str) -> None:
    """Workers of a cluster log nothing per stage: the driver's live view shows the run."""


class Job(Generic[T]):
    command: ClassVar[str]
    #: a step that must have its node to itself (benchmarks)
    exclusive: ClassVar[bool] = False

    def local(self, manifests: list[Manifest], jobs: int) -> T:
        raise NotImplementedError

    def prepare(self, manifests: list[Manifest]) -> None:
        """Checks of the whole run's input, before any task starts (bad input exits 2 at once)."""

    def steps(self, manifest: Manifest) -> list[Step]:
        raise NotImplementedError

    def run_step(self, manifest: Manifest, index: int) -> dict[str, Any]:
        raise NotImplementedError

    def step_failed(self, result: dict[str, Any]) -> bool:
        return result.get("error") is not None

    def failed_step(self, manifest: Manifest, step: str, message: str) -> dict[str, Any]:
        """What `run_step` returns for a step that could not start (its node cannot see the outputs)."""
        return {"error": message, "exit_code": EXIT_FAILED}

    def collect(
        self, manifests: list[Manifest], outcomes: dict[str, tuple[list[StepOutcome], Lost | None]]
    ) -> T:
        raise NotImplementedError

    @property
    def out(self) -> Path:
        raise NotImplementedError


def _retried(outcome: StepOutcome) -> str:
    return f"attempt {outcome.attempt} on {outcome.node} (an earlier attempt's worker was lost)"


# -- convert ----------------------------------------------------------------------------------


@dataclass
class ConvertJob(Job["list[ModelResult]"]):
    command: ClassVar[str] = "convert"
    options: RunOptions

    @property
    def out(self) -> Path:
        return Path(self.options.out)

    def local(self, manifests: list[Manifest], jobs: int) -> list[ModelResult]:
        from zoo.pipeline import convert_many

        return convert_many(manifests, self.options, jobs=jobs)

    def prepare(self, manifests: list[Manifest]) -> None:
        from zoo.pipeline import precisions_for

        for manifest in manifests:
            precisions_for(manifest, self.options.precisions)
        if self.options.weights is not None and len(manifests) != 1:
            raise UsageError("--weights PATH applies to one model: select exactly one with --name.")

    def stages(self, manifest: Manifest) -> list[Any]:
        from zoo.pipeline import conversion_stages, precisions_for

        return conversion_stages(manifest, precisions_for(manifest, self.options.precisions))

    def steps(self, manifest: Manifest) -> list[Step]:
        return [Step(stage.name, stage.cpus) for stage in self.stages(manifest)]

    def run_step(self, manifest: Manifest, index: int) -> dict[str, Any]:
        from zoo.stages.engine import ModelRun, run_model

        run = ModelRun(manifest, self.options, _quiet)
        return asdict(run_model(run, self.stages(manifest)[: index + 1]))

    def failed_step(self, manifest: Manifest, step: str, message: str) -> dict[str, Any]:
        from zoo.stages.engine import ModelResult, StageResult

        stages = [StageResult(manifest.name, step, "failed", 0.0, message)]
        return asdict(ModelResult(manifest.name, stages, error=message, exit_code=EXIT_FAILED))

    def model_result(self, model: str, outcomes: list[StepOutcome], lost: Lost | None) -> ModelResult:
        from zoo.stages.engine import ModelResult, StageResult, worker_failure

        result = ModelResult(model)
        for outcome in outcomes:
            data = outcome.result
            stage = (
                StageResult(**data["stages"][-1])
                if data["stages"]
                else StageResult(model, outcome.step, "failed")
            )
            if outcome.attempt > 1:
                stage.detail = "; ".join(filter(None, [stage.detail, _retried(outcome)]))
            result.stages.append(stage)
            if data.get("error") is not None:
                result.error, result.exit_code = data["error"], data["exit_code"]
                return result
        if lost is not None:
            failed = worker_failure(model, RuntimeError(lost.message), lost.step)
            result.stages += failed.stages
            result.error, result.exit_code = failed.error, failed.exit_code
        return result

    def collect(
        self, manifests: list[Manifest], outcomes: dict[str, tuple[list[StepOutcome], Lost | None]]
    ) -> list[ModelResult]:
        return [self.model_result(m.name, *outcomes[m.name]) for m in manifests]


# -- verify -----------------------------------------------------------------------------------


@dataclass
class VerifyJob(Job["tuple[list[dict[str, Any]], list[str]]"]):
    command: ClassVar[str] = "verify"
    output: Path
    reference_weights: bool = False
    seed: int = 0
    audio: list[Path] = field(default_factory=list)
    threads: int | None = None

    @property
    def out(self) -> Path:
        return Path(self.output)

    def local(self, manifests: list[Manifest], jobs: int) -> tuple[list[dict[str, Any]], list[str]]:
        import sys

        from zoo.verify import verify_many

        def log(message: str) -> None:
            sys.stderr.write(f"zoo: {message}\n")

        return verify_many(
            manifests,
            self.output,
            reference_weights=self.reference_weights,
            seed=self.seed,
            audio=self.audio,
            threads=self.threads,
            log=log,
        )

    def prepare(self, manifests: list[Manifest]) -> None:
        from zoo.verify.stage import check_audio

        self.audio = check_audio(self.audio)

    def steps(self, manifest: Manifest) -> list[Step]:
        from zoo.verify import VerifyStage

        return [Step(VerifyStage.name, VerifyStage.cpus)]

    def run_step(self, manifest: Manifest, index: int) -> dict[str, Any]:
        from zoo.verify import verify_model

        try:
            report = verify_model(
                manifest,
                self.output,
                reference_weights=self.reference_weights,
                seed=self.seed,
                audio=self.audio,
                threads=self.threads,
            )
        except ZooError as exc:
            return {"error": exc.message, "exit_code": exc.exit_code}
        return {"report": report, "error": None}

    def collect(
        self, manifests: list[Manifest], outcomes: dict[str, tuple[list[StepOutcome], Lost | None]]
    ) -> tuple[list[dict[str, Any]], list[str]]:
        reports, errors = [], []
        for manifest in manifests:
            done, lost = outcomes[manifest.name]
            for outcome in done:
                data = outcome.result
                if data.get("error") is None:
                    reports.append(data["report"])
                elif data["exit_code"] == EXIT_USAGE:  # as verify_many: bad input stops the command
                    raise UsageError(data["error"])
                else:
                    errors.append(f"{manifest.name}: {data['error']}")
            if lost is not None:
                errors.append(f"{manifest.name}: worker failed: {lost.message}")
        return reports, errors


# -- quantize ---------------------------------------------------------------------------------


@dataclass
class QuantizeJob(Job["list[QuantizeResult]"]):
    command: ClassVar[str] = "quantize"
    options: QuantizeOptions
    #: per model, the IR precisions converted before INT8 (chosen once, by the driver)
    precisions: dict[str, list[str]] = field(default_factory=dict)

    @property
    def out(self) -> Path:
        return Path(self.options.out)

    def local(self, manifests: list[Manifest], jobs: int) -> list[QuantizeResult]:
        import sys

        from zoo.quantize import quantize_many

        def log(message: str) -> None:
            sys.stderr.write(f"zoo: {message}\n")

        return quantize_many(manifests, self.options, log)

    def prepare(self, manifests: list[Manifest]) -> None:
        from zoo.quantize.stage import check_quantize_inputs

        check_quantize_inputs(manifests, self.options)
        for manifest in manifests:
            self.precisions[manifest.name] = self.chosen_precisions(manifest)

    def chosen_precisions(self, manifest: Manifest) -> list[str]:
        """As `quantize_model` chooses: all the manifest's when nothing is converted yet, else FP32."""
        from zoo.layout import ModelLayout
        from zoo.vocab import IR_PRECISIONS

        fresh = not ModelLayout(Path(self.options.out).resolve(), manifest.name).ir_xml("FP32").is_file()
        wanted = manifest.convert.openvino.precisions if fresh else []
        return [p for p in IR_PRECISIONS if p == "FP32" or p in wanted]

    def conversion(self, manifest: Manifest) -> ConvertJob:
        """The conversion stages INT8 needs, with the precisions the driver chose."""
        from zoo.stages.engine import RunOptions

        options = self.options
        precisions = self.precisions.get(manifest.name) or self.chosen_precisions(manifest)
        run = RunOptions(
            out=Path(options.out),
            precisions=precisions,
            weights=options.weights,
            reference_weights=options.reference_weights,
            seed=options.seed,
            debug=options.debug,
        )
        return ConvertJob(run)

    def steps(self, manifest: Manifest) -> list[Step]:
        from zoo.quantize import STAGE, Int8Stage

        before = self.conversion(manifest).steps(manifest) if manifest.quantize.enabled else []
        return [*before, Step(STAGE, Int8Stage.cpus)]

    def failed_step(self, manifest: Manifest, step: str, message: str) -> dict[str, Any]:
        from zoo.quantize import STAGE

        if step != STAGE:
            return self.conversion(manifest).failed_step(manifest, step, message)
        return {"model": manifest.name, "status": "failed", "error": message, "exit_code": EXIT_FAILED}

    def run_step(self, manifest: Manifest, index: int) -> dict[str, Any]:
        from zoo.quantize import quantize_model

        steps = self.steps(manifest)
        if index < len(steps) - 1:
            return self.conversion(manifest).run_step(manifest, index)
        try:
            return asdict(quantize_model(manifest, self.options, _quiet))
        except ZooError as exc:
            return {
                "model": manifest.name,
                "status": "failed",
                "error": exc.message,
                "exit_code": exc.exit_code,
            }

    def collect(
        self, manifests: list[Manifest], outcomes: dict[str, tuple[list[StepOutcome], Lost | None]]
    ) -> list[QuantizeResult]:
        from zoo.quantize import STAGE, QuantizeResult

        results = []
        for manifest in manifests:
            done, lost = outcomes[manifest.name]
            result: QuantizeResult | None = None
            for outcome in done:
                data = outcome.result
                if outcome.step != STAGE and data.get("error") is not None:  # a conversion stage failed
                    message = f"{outcome.step} (before quantizing): {data['error']}"
                    result = QuantizeResult(
                        manifest.name, "failed", error=message, exit_code=data["exit_code"]
                    )
                elif outcome.step == STAGE:
                    result = QuantizeResult(**data)
                if result is not None and result.exit_code == EXIT_USAGE:  # as quantize_many
                    raise UsageError(result.error or "bad input")
                if result is not None and outcome.attempt > 1:
                    result.detail = "; ".join(filter(None, [result.detail, _retried(outcome)]))
            if lost is not None:
                message = f"worker failed: {lost.message}"
                result = QuantizeResult(manifest.name, "failed", error=message, exit_code=EXIT_FAILED)
            results.append(result or QuantizeResult(manifest.name, "failed", error="no result", exit_code=3))
        return results


# -- bench ------------------------------------------------------------------------------------


@dataclass
class BenchJob(Job["dict[str, Any]"]):
    """Benchmarks: one task per model with its node to itself, so no other task skews the timings."""

    command: ClassVar[str] = "bench"
    exclusive: ClassVar[bool] = True
    output: Path
    settings: dict[str, Any] = field(default_factory=dict)  # bench()'s keyword arguments

    @property
    def out(self) -> Path:
        return Path(self.output)

    def local(self, manifests: list[Manifest], jobs: int) -> dict[str, Any]:
        from zoo.bench import bench

        return bench(manifests, self.output, **self.settings)

    def steps(self, manifest: Manifest) -> list[Step]:
        return [Step("bench", 1.0)]

    def run_step(self, manifest: Manifest, index: int) -> dict[str, Any]:
        from zoo.bench import bench_model, machine

        kept = ("runtimes", "precisions", "batch", "threads", "seconds", "hint", "rounds", "profile")
        rows = bench_model(
            manifest,
            self.output,
            show_progress=False,
            **{k: v for k, v in self.settings.items() if k in kept},
        )
        return {"rows": [asdict(r) for r in rows], "machine": machine(), "error": None}

    def failed_step(self, manifest: Manifest, step: str, message: str) -> dict[str, Any]:
        return {"rows": [], "machine": {}, "error": message, "exit_code": EXIT_FAILED}

    def collect(
        self, manifests: list[Manifest], outcomes: dict[str, tuple[list[StepOutcome], Lost | None]]
    ) -> dict[str, Any]:
        from zoo.bench.command import bench_summary
        from zoo.bench.machine import load_average
        from zoo.bench.subjects import Row

        rows: list[Row] = []
        nodes: dict[str, Any] = {}
        for manifest in manifests:
            done, lost = outcomes[manifest.name]
            for outcome in done:
                rows += [Row(**row) for row in outcome.result["rows"]]
                if outcome.result.get("error") is not None:
                    rows.append(Row(manifest.name, "-", "-", "-", error=outcome.result["error"]))
                else:
                    nodes[outcome.node] = outcome.result["machine"]
            if lost is not None:
                rows.append(Row(manifest.name, "-", "-", "-", error=f"worker failed: {lost.message}"))
        settings = self.settings
        summary = bench_summary(
            rows,
            load_average(),
            batch=settings.get("batch", 1),
            threads=settings.get("threads"),
            seconds=settings.get("seconds", 3.0),
            hint=settings.get("hint", "f32"),
            rounds=settings.get("rounds", 3),
            peak=False,  # the driver's peak says nothing about the nodes that ran the rows
            profile=settings.get("profile", 0),
        )
        summary["nodes"] = nodes
        return summary
