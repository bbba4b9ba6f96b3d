"""Where a many-model command's stages run: this host (``--executor local``) or a Ray cluster (``ray``).

Commands build a `Job` (zoo.executors.jobs) and hand it to `make_executor(...).run(job, manifests)`;
nothing else in a command depends on the choice. The local executor is the commands' own loop
(``-j N`` worker processes for convert). The Ray executor (zoo.executors.ray) runs one task per
model and stage; Ray itself is an optional extra, imported only when asked for.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from zoo.errors import UsageError
from zoo.executors.converted import BenchJob, QuantizeJob
from zoo.executors.jobs import ConvertJob, Job, VerifyJob

if TYPE_CHECKING:
    from zoo.manifest import Manifest

T = TypeVar("T")
EXECUTORS = ("local", "ray")


class Executor(Protocol):
    name: str
    #: after a run: where each task ran and how many attempts it took (empty for local runs)
    tasks: list[dict[str, Any]]

    def run(self, job: Job[T], manifests: list[Manifest]) -> T: ...


class LocalExecutor:
    """This host: the command's own loop, in ``jobs`` worker processes where the command has them."""

    name = "local"

    def __init__(self, jobs: int = 1):
        self.jobs = jobs
        self.tasks: list[dict[str, Any]] = []

    def run(self, job: Job[T], manifests: list[Manifest]) -> T:
        return job.local(manifests, self.jobs)


def make_executor(kind: str, jobs: int = 1, address: str | None = None) -> Executor:
    """The executor `--executor` names (``address``: --ray-address / RAY_ADDRESS, a cluster to join)."""
    if kind == "local":
        return LocalExecutor(jobs)
    if kind == "ray":
        from zoo.executors.ray import RayExecutor

        return RayExecutor(address)
    raise UsageError(f"--executor: expected one of {', '.join(EXECUTORS)}, got {kind!r}.")


__all__ = [
    "EXECUTORS",
    "BenchJob",
    "ConvertJob",
    "Executor",
    "Job",
    "LocalExecutor",
    "QuantizeJob",
    "VerifyJob",
    "make_executor",
]
