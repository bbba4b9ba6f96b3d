"""Progress bars for long model stages (quantize, evaluate, bench), on stderr.

Bars only appear on an interactive terminal; in logs and pipes a stage prints
nothing while it works, so stdout stays clean for tables and --json.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rich.progress import Progress, TaskID


class Bar:
    """One task: `advance()` after each step, `describe()` to change its text."""

    def __init__(self, bars: Progress | None, task: TaskID | None) -> None:
        self._bars = bars
        self._task = task

    def advance(self, steps: float = 1) -> None:
        if self._bars is not None and self._task is not None:
            self._bars.advance(self._task, steps)

    def describe(self, text: str) -> None:
        if self._bars is not None and self._task is not None:
            self._bars.update(self._task, description=text)

    def set(self, completed: float) -> None:
        if self._bars is not None and self._task is not None:
            self._bars.update(self._task, completed=completed)


def interactive() -> bool:
    return sys.stderr.isatty()


@contextlib.contextmanager
def bar(description: str, total: float | None, enabled: bool = True) -> Iterator[Bar]:
    """A transient rich bar on stderr for one stage; a no-op when stderr is not a terminal."""
    if not (enabled and interactive()):
        yield Bar(None, None)
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    bars = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=Console(stderr=True),
        transient=True,
    )
    with bars:
        yield Bar(bars, bars.add_task(description, total=total))
