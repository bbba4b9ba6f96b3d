"""`--executor ray`: one Ray task per model and stage, on a local Ray instance or a cluster.

- Tasks of one model are chained in the engine's stage order (each takes the previous task's
  result, so Ray starts it only after that one finished); models run side by side. A task declares
  the cores its stage uses (`Stage.cpus`, capped at the largest node); a benchmark asks for every
  core of one node, so nothing else runs beside it.
- A task whose worker or node dies is retried by Ray up to `MAX_RETRIES` times; the engine's
  per-model lock and partial-file clean-up make a retry start clean. A stage that fails by itself
  (bad input, a conversion error) is not retried: it is reported like the local executor reports it.
- Outputs and stamps go to the ``-o`` folder, which every node must see at the same path (a shared
  file system). The driver writes a marker there; a task on a node that cannot read it fails with
  an error naming the folder. Each node keeps its own download cache.
- Each attempt leaves a start and an end mark under ``<out>/.zoo-run/<run id>/``: the live view
  reads them (what runs on which node), and the run report records the nodes and attempts.

Ray is imported only in here, and only when `--executor ray` is asked for.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from zoo.errors import UsageError
from zoo.executors.jobs import Job, Lost, Step, StepOutcome
from zoo.executors.view import LiveView

if TYPE_CHECKING:
    from zoo.manifest import Manifest

T = TypeVar("T")
#: attempts after the first for a task whose worker or node was lost
MAX_RETRIES = 2
#: object store of a local instance: tasks pass small results, never arrays
OBJECT_STORE_BYTES = 200 * 1024 * 1024
RUN_FOLDER = ".zoo-run"


def import_ray() -> Any:
    """The ray module, or exit 2 saying how to install it."""
    try:
        import ray
    except ImportError as exc:
        raise UsageError(
            "--executor ray: Ray is not installed in this environment. It is an optional extra of zoo: "
            "install it with pip install '.[ray]' in zoo's folder (on this machine and on every node of "
            "the cluster, at the same version), or run with --executor local."
        ) from exc
    return ray


def start_ray(ray: Any, address: str | None) -> None:
    """Join the cluster at *address* (or RAY_ADDRESS), else start a small local instance."""
    os.environ.setdefault("RAY_DISABLE_USAGE_STATS", "1")
    address = address or os.environ.get("RAY_ADDRESS") or None
    try:
        if address:
            ray.init(address=address, log_to_driver=False)
        else:
            ray.init(
                address="local",
                num_cpus=os.cpu_count() or 1,
                include_dashboard=False,
                object_store_memory=OBJECT_STORE_BYTES,
                log_to_driver=False,
            )
    except ConnectionError as exc:
        raise UsageError(
            f"--ray-address: cannot connect to a Ray cluster at {address!r} ({exc}); start one with "
            "`ray start --head` there, or leave --ray-address and RAY_ADDRESS unset for a local instance."
        ) from exc


def node_label() -> str:
    """This worker's node: its address and the start of its Ray node id (one host can run several)."""
    import ray

    context = ray.get_runtime_context()
    return f"{ray.util.get_node_ip_address()}/{context.get_node_id()[:6]}"


def shared_folder_error(run_dir: Path, run_id: str, out: Path, node: str) -> str | None:
    """Why this node cannot use the run's output folder (None when it sees the driver's marker)."""
    marker = run_dir / "driver"
    try:
        seen: str | None = marker.read_text(encoding="utf-8")
    except OSError:
        seen = None
    if seen == run_id:
        return None
    state = "missing" if seen is None else "another run's"
    return (
        f"node {node} cannot see the output folder {out}: the marker {marker} the driver wrote is {state} "
        "there. -o must be one folder every node shares (a network file system) at the same path."
    )


def _mark(run_dir: Path, model: str, step: str, node: str) -> tuple[Path, int]:
    """This attempt's start mark; the attempt number counts the marks an earlier attempt left."""
    from zoo.atomic import write_json

    tasks = run_dir / "tasks"
    attempt = len(list(tasks.glob(f"{model}.{step}.*.start"))) + 1
    mark = tasks / f"{model}.{step}.{attempt}.start"
    write_json(mark, {"model": model, "step": step, "node": node, "pid": os.getpid(), "attempt": attempt})
    return mark, attempt


def run_task(
    job: Job[Any],
    manifest: Manifest,
    index: int,
    steps: list[Step],
    run_dir: str,
    run_id: str,
    previous: list[StepOutcome] | None,
) -> list[StepOutcome]:
    """One step of one model in a Ray worker: the model's results so far plus this step's."""
    done = list(previous or [])
    if any(job.step_failed(outcome.result) for outcome in done):
        return done  # a failed requirement: the model's later stages do not run
    step, folder, node = steps[index], Path(run_dir), node_label()
    problem = shared_folder_error(folder, run_id, job.out.resolve(), node)
    if problem is not None:
        return [*done, StepOutcome(step.name, node, 1, job.failed_step(manifest, step.name, problem))]
    mark, attempt = _mark(folder, manifest.name, step.name, node)
    result = job.run_step(manifest, index)
    mark.with_suffix(".end").touch()
    return [*done, StepOutcome(step.name, node, attempt, result)]


def _describe(exc: BaseException) -> str:
    cause = getattr(exc, "cause", None)
    if isinstance(cause, BaseException):
        return f"{type(cause).__name__}: {cause}"
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[0] if lines else type(exc).__name__


def read_marks(run_dir: Path) -> list[dict[str, Any]]:
    """Every attempt's start mark, with whether it ended."""
    marks = []
    for path in sorted((run_dir / "tasks").glob("*.start")):
        with contextlib.suppress(OSError, ValueError):
            data = json.loads(path.read_text(encoding="utf-8"))
            data["ended"] = path.with_suffix(".end").exists()
            marks.append(data)
    return marks


def task_records(marks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per model and stage: the nodes of its attempts, in order (more than one: it was retried)."""
    grouped: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for mark in marks:
        grouped.setdefault((mark["model"], mark["step"]), []).append(mark)
    records = []
    for (model, step), attempts in sorted(grouped.items()):
        attempts.sort(key=lambda m: m["attempt"])
        nodes = [m["node"] for m in attempts]
        records.append({"model": model, "stage": step, "attempts": len(attempts), "nodes": nodes})
    return records


def _running(marks: list[dict[str, Any]], finished: set[str]) -> dict[str, list[str]]:
    latest: dict[tuple[str, str], dict[str, Any]] = {}
    for mark in marks:
        key = (mark["model"], mark["step"])
        if key not in latest or mark["attempt"] > latest[key]["attempt"]:
            latest[key] = mark
    running: dict[str, list[str]] = {}
    for (model, step), mark in latest.items():
        if not mark["ended"] and model not in finished:
            running.setdefault(mark["node"], []).append(f"{model} {step}")
    return running


class RayExecutor:
    """Ray: a local instance, or the cluster at --ray-address / RAY_ADDRESS."""

    name = "ray"

    def __init__(self, address: str | None = None):
        self.address = address
        self.tasks: list[dict[str, Any]] = []

    def run(self, job: Job[T], manifests: list[Manifest]) -> T:
        ray = import_ray()
        job.prepare(manifests)
        if not manifests:
            return job.collect(manifests, {})
        out = job.out.resolve()
        run_id = uuid.uuid4().hex
        run_dir = out / RUN_FOLDER / run_id
        (run_dir / "tasks").mkdir(parents=True)
        (run_dir / "driver").write_text(run_id, encoding="utf-8")
        try:
            start_ray(ray, self.address)
            try:
                outcomes = self._run(ray, job, manifests, run_dir, run_id)
            finally:
                ray.shutdown()
            self.tasks = task_records(read_marks(run_dir))
        finally:
            shutil.rmtree(run_dir, ignore_errors=True)
            with contextlib.suppress(OSError):
                (out / RUN_FOLDER).rmdir()
        return job.collect(manifests, outcomes)

    def _run(
        self, ray: Any, job: Job[T], manifests: list[Manifest], run_dir: Path, run_id: str
    ) -> dict[str, tuple[list[StepOutcome], Lost | None]]:
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        nodes = [n for n in ray.nodes() if n.get("Alive")]
        largest = max(float(n["Resources"].get("CPU", 1)) for n in nodes)
        remote = ray.remote(run_task)
        chains: dict[str, tuple[list[Step], list[Any]]] = {}
        for number, manifest in enumerate(manifests):
            steps, refs, previous = job.steps(manifest), [], None
            for index, step in enumerate(steps):
                options: dict[str, Any] = {
                    "num_cpus": min(step.cpus, largest),
                    "max_retries": MAX_RETRIES,
                    "name": f"zoo {job.command} {manifest.name} {step.name}",
                }
                if job.exclusive:  # every core of one node, taken in turn
                    node = nodes[number % len(nodes)]
                    options["num_cpus"] = float(node["Resources"].get("CPU", 1))
                    options["scheduling_strategy"] = NodeAffinitySchedulingStrategy(
                        node["NodeID"], soft=False
                    )
                previous = remote.options(**options).remote(
                    job, manifest, index, steps, str(run_dir), run_id, previous
                )
                refs.append(previous)
            chains[manifest.name] = (steps, refs)

        view = LiveView(len(manifests))
        pending = {refs[-1]: name for name, (_, refs) in chains.items()}
        finished: dict[str, bool] = {}  # model: failed
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=len(pending), timeout=1.0)
            for ref in ready:
                name = pending.pop(ref)
                try:
                    finished[name] = any(job.step_failed(o.result) for o in ray.get(ref))
                except Exception:
                    finished[name] = True
            failed = sum(finished.values())
            view.update(len(finished) - failed, failed, _running(read_marks(run_dir), set(finished)))
        view.close()

        outcomes: dict[str, tuple[list[StepOutcome], Lost | None]] = {}
        for name, (steps, refs) in chains.items():
            try:
                outcomes[name] = (ray.get(refs[-1]), None)
                continue
            except Exception:
                pass
            for index, ref in enumerate(refs):
                try:
                    ray.get(ref)
                except Exception as exc:
                    before = ray.get(refs[index - 1]) if index else []
                    outcomes[name] = (before, Lost(steps[index].name, _describe(exc)))
                    break
        return outcomes


__all__ = ["MAX_RETRIES", "RayExecutor", "import_ray", "shared_folder_error"]
