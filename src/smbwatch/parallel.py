"""Several inputs at once: one worker process per input, events streamed back in input order.

Each worker runs the per-input function it is given (``pipeline.input_events``) on one file and
sends its events in batches through a small bounded queue, so memory is bounded by
``jobs x QUEUE_BATCHES x BATCH`` events whatever the inputs' sizes. The parent reads the inputs
in the order they were given (workers ahead of the one being read wait when their queue is
full), so the output does not depend on which worker finishes first. It knows nothing of
captures or logs: the pipeline stands on it, not the other way round.
"""

from __future__ import annotations

import multiprocessing
from collections import deque
from collections.abc import Callable, Iterator
from multiprocessing.process import BaseProcess
from multiprocessing.queues import Queue
from typing import Any

from smbwatch.diagnostics import Diagnostics, InputError
from smbwatch.events import SmbEvent
from smbwatch.options import Options

BATCH = 2000
QUEUE_BATCHES = 4
# The events of one input: path, diagnostics, input format, options (``pipeline.input_events``).
InputReader = Callable[[str, Diagnostics, str | None, Options], Iterator[SmbEvent]]


class InputRun:
    """One input as it is read: its events; once they are all read, what reading it cost
    (``diagnostics``) and, for an input that is no capture or log, why (``error``)."""

    def __init__(self, path: str, explicit: bool) -> None:
        self.path = path
        self.explicit = explicit  # named by the user, not found in a directory
        self.events: Iterator[SmbEvent] = iter(())
        self.diagnostics = Diagnostics()
        self.error: str | None = None


def _worker(
    read: InputReader, path: str, input_format: str | None, options: Options, queue: Queue
) -> None:
    diagnostics = Diagnostics()
    error = None
    batch: list[SmbEvent] = []
    try:
        for event in read(path, diagnostics, input_format, options):
            batch.append(event)
            if len(batch) >= BATCH:
                queue.put(("events", batch))
                batch = []
    except InputError as exc:
        error = str(exc)
    except Exception as exc:  # a bug must cost this input, not the whole run
        diagnostics.damaged(path, f"internal error: {exc!r}")
    queue.put(("events", batch))
    queue.put(("done", diagnostics, error))


def _context() -> Any:
    methods = multiprocessing.get_all_start_methods()
    return multiprocessing.get_context("fork" if "fork" in methods else "spawn")


def parallel_inputs(
    read: InputReader,
    files: list[tuple[str, bool]],
    input_format: str | None,
    jobs: int,
    options: Options,
) -> Iterator[InputRun]:
    """Every (path, named explicitly) input, each read by ``read`` in one of up to ``jobs``
    processes (``read`` raises InputError for an input it cannot use), in order."""
    context = _context()
    waiting = deque(files)
    running: deque[tuple[str, bool, BaseProcess, Queue]] = deque()
    try:
        while waiting or running:
            while waiting and len(running) < jobs:
                path, explicit = waiting.popleft()
                queue = context.Queue(QUEUE_BATCHES)
                arguments = (read, path, input_format, options, queue)
                process = context.Process(target=_worker, args=arguments)
                process.start()
                running.append((path, explicit, process, queue))
            path, explicit, process, queue = running.popleft()
            run = InputRun(path, explicit)
            run.events = _received(queue, run)
            yield run
            for _ in run.events:  # what the reader left unread: the worker must finish
                pass
            process.join()
    finally:
        for _, _, process, _ in running:
            process.kill()
            process.join()


def _received(queue: Queue, run: InputRun) -> Iterator[SmbEvent]:
    while True:
        message = queue.get()
        if message[0] == "events":
            yield from message[1]
            continue
        run.diagnostics.merge(message[1])
        run.error = message[2]
        return
