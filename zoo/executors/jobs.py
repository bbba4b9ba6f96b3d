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
    from zoo.stages.engine import ModelResult, RunOptions

T = TypeVar("T")
Opts = TypeVar("Opts")


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


def quiet(message: str) -> None:
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


def resolved(options: Opts, *names: str) -> Opts:
    """A copy of *options* whose path fields are absolute: a worker's working folder is not the driver's."""
    import dataclasses

    def absolute(value: Any) -> Any:
        if isinstance(value, list):
            return [absolute(v) for v in value]
        return Path(value).resolve() if isinstance(value, (str, Path)) else value

    return dataclasses.replace(options, **{n: absolute(getattr(options, n)) for n in names})  # type: ignore[type-var]


def retried(outcome: StepOutcome) -> str:
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
        self.options = resolved(self.options, "out", "weights", "cache_dir", "allow_local")

    def stages(self, manifest: Manifest) -> list[Any]:
        from zoo.pipeline import conversion_stages, precisions_for

        return conversion_stages(manifest, precisions_for(manifest, self.options.precisions))

    def steps(self, manifest: Manifest) -> list[Step]:
        return [Step(stage.name, stage.cpus) for stage in self.stages(manifest)]

    def run_step(self, manifest: Manifest, index: int) -> dict[str, Any]:
        from zoo.stages.engine import ModelRun, run_model

        run = ModelRun(manifest, self.options, quiet)
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
                stage.detail = "; ".join(filter(None, [stage.detail, retried(outcome)]))
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
    audio: list[Path] = field(default_factory=list)
    threads: int | None = None

    @property
    def out(self) -> Path:
        return Path(self.output)

    def local(self, manifests: list[Manifest], jobs: int) -> tuple[list[dict[str, Any]], list[str]]:
        from zoo.stages.engine import log_stderr
        from zoo.verify import verify_many

        return verify_many(
            manifests,
            self.output,
            reference_weights=self.reference_weights,
            audio=self.audio,
            threads=self.threads,
            log=log_stderr,
        )

    def prepare(self, manifests: list[Manifest]) -> None:
        from zoo.verify.stage import check_audio

        self.audio = [Path(p).resolve() for p in check_audio(self.audio)]
        self.output = Path(self.output).resolve()

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
