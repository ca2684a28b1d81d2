"""Progress on a terminal: a bar on stderr while the inputs are read, a line of summary at the
end.

Shown only when stderr is a terminal and ``-q`` was not given: piped or redirected, smbwatch
writes nothing of it (stderr then carries only warnings and errors). The bar counts inputs and
their bytes (an input counts once it has been read whole), the events so far and, for
``detect``, the alerts the matches so far make; rich redraws it a few times a second on a
thread of its own, and the reading updates its counts only every ``EVERY`` events. rich is
loaded only when the bar is shown (a run that shows none starts faster).
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sized
from typing import TYPE_CHECKING, Any, TextIO, TypeVar

from smbwatch.containers import InputFile
from smbwatch.parallel import InputRun

if TYPE_CHECKING:
    from rich.progress import Progress, TaskID

EVERY = 4096  # events between updates of the counts
Item = TypeVar("Item")  # an event, or an event made into a line of text


class ReadingProgress:
    """The bar of one run (``enabled``: else it does nothing), told of the inputs as the
    pipeline reads them (``pipeline.iter_events``' ``progress``)."""

    def __init__(self, enabled: bool, stream: TextIO | None = None) -> None:
        self.enabled = enabled
        self.stream = stream or sys.stderr
        self.started = time.monotonic()
        self.inputs = self.done = self.size = self.read_bytes = self.events = 0
        self.alerts: Callable[[], int] | None = None
        self.bar: Progress | None = None
        self.task: TaskID | None = None

    def begin(self, sources: list[InputFile]) -> None:
        """The inputs to be read: the bar starts."""
        self.inputs = len(sources)
        self.size = sum(map(_size, sources))
        if not self.enabled:
            return
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
            TransferSpeedColumn,
        )

        console = Console(file=self.stream, stderr=self.stream is sys.stderr)
        self.bar = Progress(
            TextColumn("{task.fields[done]}/{task.fields[inputs]} inputs"),
            BarColumn(),
            DownloadColumn(),
            TextColumn("{task.fields[events]:,} events{task.fields[alerts]}"),
            TransferSpeedColumn(),
            TimeRemainingColumn(),
            console=console,
            transient=True,
        )
        self.task = self.bar.add_task("", total=self.size or None, **self._fields())
        self.bar.start()

    def finished(self, run: InputRun) -> None:
        """An input is read whole (the events its reader wrote itself count as events)."""
        self.done += 1
        self.events += run.written
        self.read_bytes += _size(run.source)
        self._update()

    def counted(
        self, events: Iterable[Item], alerts: Callable[[], int] | None = None
    ) -> Iterator[Item]:
        """``events``, counted (``alerts``: how many alerts so far, for ``detect``)."""
        self.alerts = alerts
        if not self.enabled:
            yield from events
            return
        for event in events:
            self.events += 1
            if not self.events % EVERY:
                self._update()
            yield event
        self._update()

    def counted_rows(self, batches: Iterable[Sized]) -> Iterator[Any]:
        """``batches`` of events (``parallel.Readers.batch``), their rows counted (as
        ``counted`` counts events: only when the bar is shown)."""
        if not self.enabled:
            yield from batches
            return
        for batch in batches:
            self.events += len(batch)
            self._update()
            yield batch

    def close(self, alerts_found: int | None = None) -> None:
        """The bar goes; the line of summary stays (``alerts_found``: the alerts written)."""
        if self.bar is None:
            return
        self.bar.stop()
        self.bar = None
        seconds = time.monotonic() - self.started
        if alerts_found is None and self.alerts is not None:
            alerts_found = self.alerts()
        alerts = "" if alerts_found is None else f", {alerts_found:,} alerts"
        rate = self.read_bytes / seconds / 1e6 if seconds > 0 else 0.0
        print(
            f"smbwatch: {self.done:,} inputs ({self.read_bytes / 1e6:,.1f} MB), "
            f"{self.events:,} events{alerts} in {seconds:.1f} s ({rate:,.1f} MB/s)",
            file=self.stream,
        )

    def _update(self) -> None:
        if self.bar is not None and self.task is not None:
            self.bar.update(self.task, completed=self.read_bytes, **self._fields())

    def _fields(self) -> dict[str, Any]:
        alerts = "" if self.alerts is None else f", {self.alerts():,} alerts"
        return {"done": self.done, "inputs": self.inputs, "events": self.events, "alerts": alerts}


def _size(source: InputFile) -> int:
    """The bytes of an input as stored (a zip member: its archive's share is not known: 0)."""
    if source.member is not None:
        return 0
    try:
        return os.path.getsize(source.path)
    except OSError:
        return 0


def shown(quiet: bool) -> bool:
    """Whether the bar is shown: stderr is a terminal and ``-q`` was not given."""
    return not quiet and sys.stderr.isatty()
