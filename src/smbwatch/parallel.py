"""Several inputs at once: one worker process per input, events streamed back in input order.

Each worker runs ``pipeline.input_events`` on one file and sends its events in batches through a
small bounded queue, so memory is bounded by ``jobs x QUEUE_BATCHES x BATCH`` events whatever the
inputs' sizes. The parent yields the inputs' events in the order the inputs were given (workers
ahead of the one being read wait when their queue is full), so the output does not depend on
which worker finishes first.
"""

from __future__ import annotations

import multiprocessing
import queue as queues
from collections import deque
from collections.abc import Iterator
from multiprocessing.process import BaseProcess
from multiprocessing.queues import Queue
from typing import Any

from smbwatch.containers import InputFile
from smbwatch.diagnostics import Diagnostics
from smbwatch.events import SmbEvent
from smbwatch.interrupt import Interrupted, check
from smbwatch.options import Options

BATCH = 2000
QUEUE_BATCHES = 4
WAIT = 0.2  # seconds between looks at whether a stop was asked for, while a worker is silent


def _worker(source: InputFile, input_format: str | None, options: Options, queue: Queue) -> None:
    from smbwatch.pipeline import InputError, input_events

    diagnostics = Diagnostics()
    error = None
    batch: list[SmbEvent] = []
    try:
        for event in input_events(source, diagnostics, input_format, options):
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


def parallel_events(
    files: list[tuple[InputFile, bool]],
    diagnostics: Diagnostics,
    input_format: str | None,
    errors: list[str],
    jobs: int,
    options: Options,
) -> Iterator[SmbEvent]:
    """Events of every (input, named explicitly) input, read by up to ``jobs`` processes."""
    from smbwatch.pipeline import report_input_error

    context = _context()
    waiting = deque(files)
    running: deque[tuple[InputFile, bool, BaseProcess, Queue]] = deque()
    try:
        while waiting or running:
            while waiting and len(running) < jobs:
                source, explicit = waiting.popleft()
                queue = context.Queue(QUEUE_BATCHES)
                process = context.Process(
                    target=_worker, args=(source, input_format, options, queue), daemon=True
                )
                process.start()
                running.append((source, explicit, process, queue))
            source, explicit, process, queue = running[0]  # still killed if we stop here
            while True:
                message = _next_message(queue, process, source)
                if message[0] == "events":
                    yield from message[1]
                    continue
                diagnostics.merge(message[1])
                if message[2] is not None:
                    report_input_error(message[2], source, explicit, diagnostics, errors)
                break
            process.join()
            running.popleft()
    finally:
        for _, _, process, _ in running:
            process.kill()
            process.join()
