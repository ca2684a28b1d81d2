"""Several inputs at once: one worker process per input, events streamed back in input order.

Each worker runs the per-input function it is given (``pipeline.input_events``) on one input and
sends its events in batches through a small bounded queue, so memory is bounded by
``jobs x QUEUE_BATCHES x BATCH`` events whatever the inputs' sizes. The parent reads the inputs
in the order they were given (workers ahead of the one being read wait when their queue is
full), so the output does not depend on which worker finishes first. It knows nothing of
captures or logs: the pipeline stands on it, not the other way round.
"""

from __future__ import annotations

import multiprocessing
import queue as queues
from collections import deque
from collections.abc import Callable, Iterator
from multiprocessing.process import BaseProcess
from multiprocessing.queues import Queue
from typing import Any

from smbwatch.containers import InputFile
from smbwatch.diagnostics import Diagnostics, InputError
from smbwatch.events import SmbEvent
from smbwatch.interrupt import Interrupted, check
from smbwatch.options import Options

BATCH = 2000
QUEUE_BATCHES = 4
WAIT = 0.2  # seconds between looks at whether a stop was asked for, while a worker is silent
# The events of one input: input, diagnostics, input format, options (``pipeline.input_events``).
InputReader = Callable[[InputFile, Diagnostics, str | None, Options], Iterator[SmbEvent]]


class InputRun:
    """One input as it is read: its events; once they are all read, what reading it cost
    (``diagnostics``) and, for an input that cannot be used, why (``error``)."""

    def __init__(self, source: InputFile, explicit: bool) -> None:
        self.source = source
        self.explicit = explicit  # named by the user, not found in a directory
        self.events: Iterator[SmbEvent] = iter(())
        self.diagnostics = Diagnostics()
        self.error: InputError | None = None

    @property
    def path(self) -> str:
        """What the input is called: its path, or ``archive.zip/member``."""
        return self.source.name


def _worker(
    read: InputReader, source: InputFile, input_format: str | None, options: Options, queue: Queue
) -> None:
    diagnostics = Diagnostics()
    error = None
    batch: list[SmbEvent] = []
    try:
        for event in read(source, diagnostics, input_format, options):
            batch.append(event)
            if len(batch) >= BATCH:
                queue.put(("events", batch))
                batch = []
    except InputError as exc:
        error = exc
    except Interrupted:
        return  # the parent stops too (it was signalled first, or with us), and ends us
    except Exception as exc:  # a bug must cost this input, not the whole run
        diagnostics.damaged(source.name, f"internal error: {exc!r}")
    queue.put(("events", batch))
    queue.put(("done", diagnostics, error))


def _next_message(queue: Queue, process: BaseProcess, source: InputFile) -> Any:
    """The worker's next message; a stop asked for meanwhile is honoured within ``WAIT``, and a
    worker that died without a word (killed, out of memory) costs its input, not a hang."""
    while True:
        check()
        try:
            return queue.get(timeout=WAIT)
        except queues.Empty:
            if process.is_alive() or not queue.empty():
                continue
        diagnostics = Diagnostics()
        diagnostics.damaged(source.name, f"its worker process ended early ({process.exitcode})")
        return ("done", diagnostics, None)


def _context() -> Any:
    methods = multiprocessing.get_all_start_methods()
    return multiprocessing.get_context("fork" if "fork" in methods else "spawn")


def parallel_inputs(
    read: InputReader,
    files: list[tuple[InputFile, bool]],
    input_format: str | None,
    jobs: int,
    options: Options,
) -> Iterator[InputRun]:
    """Every (input, named explicitly) input, each read by ``read`` in one of up to ``jobs``
    processes (``read`` raises InputError for an input it cannot use), in order."""
    context = _context()
    waiting = deque(files)
    running: deque[tuple[InputFile, bool, BaseProcess, Queue]] = deque()
    try:
        while waiting or running:
            while waiting and len(running) < jobs:
                source, explicit = waiting.popleft()
                queue = context.Queue(QUEUE_BATCHES)
                arguments = (read, source, input_format, options, queue)
                process = context.Process(target=_worker, args=arguments, daemon=True)
                process.start()
                running.append((source, explicit, process, queue))
            source, explicit, process, queue = running[0]  # still killed if we stop here
            run = InputRun(source, explicit)
            run.events = _received(queue, process, run)
            yield run
            for _ in run.events:  # what the reader left unread: the worker must finish
                pass
            process.join()
            running.popleft()
    finally:
        for _, _, process, _ in running:
            process.kill()
            process.join()


def _received(queue: Queue, process: BaseProcess, run: InputRun) -> Iterator[SmbEvent]:
    while True:
        message = _next_message(queue, process, run.source)
        if message[0] == "events":
            yield from message[1]
            continue
        run.diagnostics.merge(message[1])
        run.error = message[2]
        return
