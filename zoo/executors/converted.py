"""The jobs on converted models: `zoo quantize` (conversion stages, then INT8) and `zoo bench`."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from zoo.errors import EXIT_FAILED, EXIT_USAGE, UsageError, ZooError
from zoo.executors.jobs import ConvertJob, Job, Lost, Step, StepOutcome, quiet, resolved, retried

if TYPE_CHECKING:
    from zoo.manifest import Manifest
    from zoo.quantize.options import QuantizeOptions, QuantizeResult


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
        from zoo.quantize import quantize_many
        from zoo.stages.engine import log_stderr

        return quantize_many(manifests, self.options, log_stderr)

    def prepare(self, manifests: list[Manifest]) -> None:
        from zoo.quantize.stage import check_quantize_inputs

        check_quantize_inputs(manifests, self.options)
        self.options = resolved(self.options, "out", "weights", "calibration", "dataset")
        for manifest in manifests:
            self.precisions[manifest.name] = self.chosen_precisions(manifest)

    def chosen_precisions(self, manifest: Manifest) -> list[str]:
        """What `quantize_model` would convert before INT8 (chosen before any task converts)."""
        from zoo.layout import ModelLayout
        from zoo.quantize.stage import int8_precisions

        return int8_precisions(manifest, ModelLayout(Path(self.options.out).resolve(), manifest.name))

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
            return asdict(quantize_model(manifest, self.options, quiet))
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
                    result.detail = "; ".join(filter(None, [result.detail, retried(outcome)]))
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

    def prepare(self, manifests: list[Manifest]) -> None:
        self.output = Path(self.output).resolve()

    def steps(self, manifest: Manifest) -> list[Step]:
        return [Step("bench", 1.0)]

    def run_step(self, manifest: Manifest, index: int) -> dict[str, Any]:
        from zoo.bench import bench_model, machine
        from zoo.bench.command import thread_counts

        kept = ("runtimes", "precisions", "batch", "seconds", "hint", "rounds", "profile")
        rows = []
        for count in thread_counts(self.settings.get("threads")):
            rows += bench_model(
                manifest,
                self.output,
                show_progress=False,
                threads=count,
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
