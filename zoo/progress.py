"""Download progress: rich bars on a terminal, quiet lines otherwise, JSON lines on request.

Every reporter takes the same events, from any worker thread:
``start`` (a transfer begins), ``advance`` (bytes arrived), ``finish`` (file verified and in
place), ``retry`` (an attempt failed and another follows), ``note`` and ``fail``.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from typing import IO, TYPE_CHECKING

if TYPE_CHECKING:
    from rich.progress import TaskID


def human_bytes(count: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if abs(count) < 1000 or unit == "GB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1000
    return f"{count:.1f} GB"  # pragma: no cover


class Progress:
    """Silent reporter; the base of the others."""

    def set_total(self, total_bytes: int | None) -> None:
        pass

    def start(self, model: str, file: str, url: str, total: int | None, offset: int = 0) -> None:
        pass

    def advance(self, model: str, file: str, nbytes: int) -> None:
        pass

    def finish(
        self,
        model: str,
        file: str,
        size: int,
        how: str,
        seconds: float | None = None,
        sha256: str | None = None,
    ) -> None:
        pass

    def retry(self, model: str, file: str, url: str, attempt: int, wait: float, reason: str) -> None:
        pass

    def note(self, model: str, file: str | None, text: str) -> None:
        pass

    def fail(self, model: str, file: str | None, message: str) -> None:
        pass

    def close(self) -> None:
        pass

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class TextProgress(Progress):
    """One line per event that matters; no bars (logs, CI, pipes)."""

    def __init__(self, stream: IO[str] | None = None) -> None:
        self.stream = stream or sys.stdout
        self._lock = threading.Lock()

    def _line(self, text: str) -> None:
        with self._lock:
            self.stream.write(text + "\n")
            self.stream.flush()

    def start(self, model: str, file: str, url: str, total: int | None, offset: int = 0) -> None:
        size = f" ({human_bytes(total)})" if total else ""
        resume = f", resuming at {human_bytes(offset)}" if offset else ""
        self._line(f"{model}: {file}: downloading {url}{size}{resume}")

    def finish(
        self,
        model: str,
        file: str,
        size: int,
        how: str,
        seconds: float | None = None,
        sha256: str | None = None,
    ) -> None:
        speed = ""
        if how == "downloaded" and seconds:
            speed = f" in {seconds:.1f} s ({human_bytes(size / seconds)}/s)"
        self._line(f"{model}: {file}: {how}, {human_bytes(size)}{speed}, verified")

    def retry(self, model: str, file: str, url: str, attempt: int, wait: float, reason: str) -> None:
        self._line(
            f"{model}: {file}: attempt {attempt} from {url} failed ({reason}); retrying in {wait:.1f} s"
        )

    def note(self, model: str, file: str | None, text: str) -> None:
        self._line(f"{model}: {file + ': ' if file else ''}{text}")

    def fail(self, model: str, file: str | None, message: str) -> None:
        with self._lock:
            sys.stderr.write(f"{model}: {file + ': ' if file else ''}FAILED: {message}\n")
            sys.stderr.flush()


class JsonProgress(Progress):
    """JSON lines, one object per event, for programs that drive zoo."""

    INTERVAL = 0.25

    def __init__(self, stream: IO[str] | None = None) -> None:
        self.stream = stream or sys.stdout
        self._lock = threading.Lock()
        self._done: dict[tuple[str, str], int] = {}
        self._total: dict[tuple[str, str], int | None] = {}
        self._last: dict[tuple[str, str], float] = {}

    def _emit(self, event: str, **fields: object) -> None:
        record = {"event": event, "time": round(time.time(), 3), **fields}
        with self._lock:
            self.stream.write(json.dumps(record) + "\n")
            self.stream.flush()

    def set_total(self, total_bytes: int | None) -> None:
        if total_bytes:
            self._emit("total", bytes=total_bytes)

    def start(self, model: str, file: str, url: str, total: int | None, offset: int = 0) -> None:
        key = (model, file)
        self._done[key] = offset
        self._total[key] = total
        self._last[key] = 0.0
        self._emit("start", model=model, file=file, url=url, size=total, offset=offset)

    def advance(self, model: str, file: str, nbytes: int) -> None:
        key = (model, file)
        self._done[key] = self._done.get(key, 0) + nbytes
        now = time.monotonic()
        if now - self._last.get(key, 0.0) >= self.INTERVAL:
            self._last[key] = now
            self._emit("progress", model=model, file=file, bytes=self._done[key], size=self._total.get(key))

    def finish(
        self,
        model: str,
        file: str,
        size: int,
        how: str,
        seconds: float | None = None,
        sha256: str | None = None,
    ) -> None:
        self._emit("done", model=model, file=file, how=how, size=size, seconds=seconds, sha256=sha256)

    def retry(self, model: str, file: str, url: str, attempt: int, wait: float, reason: str) -> None:
        self._emit(
            "retry", model=model, file=file, url=url, attempt=attempt, wait=round(wait, 3), reason=reason
        )

    def note(self, model: str, file: str | None, text: str) -> None:
        self._emit("note", model=model, file=file, message=text)

    def fail(self, model: str, file: str | None, message: str) -> None:
        self._emit("error", model=model, file=file, message=message)


class RichProgress(Progress):
    """Bars per file and for the total, with speed and time left (interactive terminals)."""

    def __init__(self) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            TextColumn,
            TimeRemainingColumn,
            TransferSpeedColumn,
        )
        from rich.progress import Progress as Bars

        self.console = Console(stderr=True)
        self.bars = Bars(
            TextColumn("{task.description}", justify="left"),
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            TimeRemainingColumn(),
            console=self.console,
            transient=False,
        )
        self._tasks: dict[tuple[str, str], TaskID] = {}
        self._total_task: TaskID | None = None
        self.bars.start()

    def set_total(self, total_bytes: int | None) -> None:
        if total_bytes:
            self._total_task = self.bars.add_task("total", total=total_bytes)

    def start(self, model: str, file: str, url: str, total: int | None, offset: int = 0) -> None:
        key = (model, file)
        if key not in self._tasks:
            self._tasks[key] = self.bars.add_task(f"{model}: {file}", total=total, completed=offset)
            return
        task = self._tasks[key]
        before = self.bars.tasks[[t.id for t in self.bars.tasks].index(task)].completed
        self.bars.update(task, completed=offset, total=total)
        if self._total_task is not None and offset != before:  # a restart from zero un-counts the lost bytes
            self.bars.advance(self._total_task, offset - before)

    def advance(self, model: str, file: str, nbytes: int) -> None:
        task = self._tasks.get((model, file))
        if task is not None:
            self.bars.advance(task, nbytes)
        if self._total_task is not None:
            self.bars.advance(self._total_task, nbytes)

    def finish(
        self,
        model: str,
        file: str,
        size: int,
        how: str,
        seconds: float | None = None,
        sha256: str | None = None,
    ) -> None:
        task = self._tasks.get((model, file))
        if task is not None:
            self.bars.update(
                task, completed=size, total=size, description=f"{model}: {file} ({how}, verified)"
            )
        else:
            self.bars.console.print(f"{model}: {file}: {how}, {human_bytes(size)}, verified", highlight=False)

    def retry(self, model: str, file: str, url: str, attempt: int, wait: float, reason: str) -> None:
        self.bars.console.print(
            f"{model}: {file}: attempt {attempt} from {url} failed ({reason}); retrying in {wait:.1f} s",
            highlight=False,
        )

    def note(self, model: str, file: str | None, text: str) -> None:
        self.bars.console.print(f"{model}: {file + ': ' if file else ''}{text}", highlight=False)

    def fail(self, model: str, file: str | None, message: str) -> None:
        self.bars.console.print(
            f"[red]{model}: {file + ': ' if file else ''}FAILED[/]: {message}", highlight=False
        )

    def close(self) -> None:
        self.bars.stop()


def make_progress(kind: str | None) -> Progress:
    """'json', 'text', 'rich', or None: rich on a terminal, text otherwise."""
    if kind == "json":
        return JsonProgress()
    if kind == "text":
        return TextProgress()
    if kind in (None, "auto", "rich") and sys.stderr.isatty() and sys.stdout.isatty():
        return RichProgress()
    return TextProgress()
