"""One live line for a whole cluster run: models done, failed and running, and what runs on each node.

On a terminal the line is redrawn in place; in logs and pipes a new line is written only when the
counts change, so a CI log shows the run's course without a line per poll. Always on stderr.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO


class LiveView:
    def __init__(self, total: int, stream: TextIO | None = None) -> None:
        self.total = total
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self.started = time.monotonic()
        self._last = ""

    def line(self, done: int, failed: int, running: dict[str, list[str]]) -> str:
        busy = sum(len(tasks) for tasks in running.values())
        nodes = "; ".join(
            f"{node}: {', '.join(sorted(tasks))}" for node, tasks in sorted(running.items()) if tasks
        )
        text = f"zoo: {done}/{self.total} models done, {failed} failed, {busy} stages running"
        return f"{text} ({nodes})" if nodes else text

    def update(self, done: int, failed: int, running: dict[str, list[str]]) -> None:
        text = self.line(done, failed, running)
        if text == self._last:
            return
        self._last = text
        elapsed = f" [{time.monotonic() - self.started:.0f} s]"
        if self.tty:
            self.stream.write(f"\r\x1b[2K{text}{elapsed}")
        else:
            self.stream.write(f"{text}{elapsed}\n")
        self.stream.flush()

    def close(self) -> None:
        if self.tty and self._last:
            self.stream.write("\n")
            self.stream.flush()
