"""The timing core: warm a call up, call it back to back, keep each call's latency and the wall time.

Latency percentiles come from the individual calls; throughput counts items (calls x batch)
over the measured wall time.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from zoo.errors import UsageError


@dataclass
class Timing:
    """Latencies of individual calls (seconds) and the wall time they took together."""

    latencies: np.ndarray
    wall: float
    batch: int = 1
    #: the runtime's own latency of each call (OpenVINO's request timer), when it keeps one
    runtime: np.ndarray | None = None

    @property
    def calls(self) -> int:
        return int(self.latencies.shape[0])

    def percentile(self, q: float) -> float:
        return float(np.percentile(self.latencies, q))

    @property
    def p50(self) -> float:
        return self.percentile(50)

    @property
    def p90(self) -> float:
        return self.percentile(90)

    @property
    def mean(self) -> float:
        return float(self.latencies.mean())

    @property
    def throughput(self) -> float:
        """Items per second over the measured wall time."""
        return self.calls * self.batch / self.wall if self.wall > 0 else float("nan")


def time_calls(
    call: Callable[[], object],
    *,
    seconds: float = 3.0,
    warmup_seconds: float | None = None,
    min_calls: int = 5,
    max_calls: int | None = None,
    batch: int = 1,
    tick: Callable[[float], object] | None = None,
    inner: Callable[[], float] | None = None,
) -> Timing:
    """Warm *call* up, then call it back to back for *seconds* (at least *min_calls* times).

    Warm-up runs at least three calls and at least *warmup_seconds* (default: a fifth of the
    measured time, at most 2 s), so one-time costs (allocation, JIT, caches) stay out of the figures.
    *tick(fraction)* reports progress from 0 to 1. *inner()*, read after each call, is the runtime's
    own latency of that call in seconds (the way OpenVINO's benchmark_app times it, without Python).
    """
    if seconds <= 0:
        raise UsageError(f"--seconds must be positive, got {seconds}.")
    warmup_seconds = min(2.0, seconds / 5) if warmup_seconds is None else warmup_seconds
    started = time.perf_counter()
    done = 0
    while done < 3 or time.perf_counter() - started < warmup_seconds:
        call()
        done += 1
    latencies = []
    inside: list[float] = []
    clock = time.perf_counter
    begin = clock()
    last_tick = begin
    while True:
        t0 = clock()
        call()
        t1 = clock()
        latencies.append(t1 - t0)
        if inner is not None:
            inside.append(inner())
        if tick is not None and t1 - last_tick > 0.1:
            tick(min(1.0, (t1 - begin) / seconds))
            last_tick = t1
        if max_calls is not None and len(latencies) >= max_calls:
            break
        if t1 - begin >= seconds and len(latencies) >= min_calls:
            break
    wall = clock() - begin
    if tick is not None:
        tick(1.0)
    runtime = np.asarray(inside, dtype=np.float64) if inner is not None else None
    return Timing(np.asarray(latencies, dtype=np.float64), wall, batch, runtime)


#: how many standard errors two round medians may differ by before the difference is not chance
STEADY_SIGMAS = 4.0
#: how close `zoo bench`'s figures are held to OpenVINO's benchmark_app on the same IR
#: (bench/benchmark_app_check.py); also the largest difference between round medians a steady
#: run may show, since a run whose own rounds move more cannot stand behind its figures to it
FIGURE_PRECISION = 0.10


def round_medians(rounds: list[np.ndarray]) -> tuple[list[float], float, bool]:
    """(each round's median latency, their largest relative difference, whether the run was
    steady): tells a change of the machine's speed during the run from chance.

    Unsteady means the rounds differ by more than FIGURE_PRECISION and by more than sampling noise.
    The median of n calls has a standard error of about 1.2533 s / sqrt(n) for a spread s of the
    calls (exact for a normal distribution; s is taken robustly as the interquartile range of all
    calls / 1.349, so a few slow outliers do not widen it). Two independent medians then differ by
    sqrt(2) times that, and STEADY_SIGMAS of those (4: chance in about 1 pair in 15,000) is the
    noise allowed, which matters for subjects with few calls.
    """
    medians = [float(np.median(r)) for r in rounds if r.size]
    if len(medians) < 2:
        return medians, 0.0, True
    calls = np.concatenate(rounds)
    q75, q25 = np.percentile(calls, [75, 25])
    spread = (q75 - q25) / 1.349
    smallest = min(r.size for r in rounds if r.size)
    noise = STEADY_SIGMAS * np.sqrt(2.0) * 1.2533 * spread / np.sqrt(smallest)
    moved = max(medians) - min(medians)
    relative = moved / min(medians)
    return medians, relative, bool(moved <= noise or relative <= FIGURE_PRECISION)
