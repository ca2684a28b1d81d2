"""Several inputs at once: one worker process per input, events streamed back in input order.

Each worker runs the per-input function it is given (``pipeline.input_events``) on one file and
sends its events in batches through a small bounded queue, so memory is bounded by
``jobs x QUEUE_BATCHES x BATCH`` events whatever the inputs' sizes. The parent yields the inputs'
events in the order the inputs were given (workers ahead of the one being read wait when their
queue is full), so the output does not depend on which worker finishes first. It knows nothing
of captures or logs: the pipeline stands on it, not the other way round.
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


def parallel_events(
    read: InputReader,
    files: list[tuple[str, bool]],
    diagnostics: Diagnostics,
    input_format: str | None,
    errors: list[str],
    jobs: int,
    options: Options,
) -> Iterator[SmbEvent]:
    """Events of every (path, named explicitly) input, each read by ``read`` in one of up to
    ``jobs`` processes (``read`` raises InputError for an input it cannot use)."""
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
            while True:
                message = queue.get()
                if message[0] == "events":
                    yield from message[1]
                    continue
                diagnostics.merge(message[1])
                if message[2] is not None:
                    if explicit:
                        errors.append(message[2])
                    else:
                        diagnostics.warn("input_skipped", message[2])
                break
            process.join()
    finally:
        for _, _, process, _ in running:
            process.kill()
            process.join()
