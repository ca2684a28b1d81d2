"""Several inputs at once: one worker process per input, events streamed back in input order.

Each worker runs the per-input function it is given (``pipeline.input_events``) on one input and
sends its events in batches through a pipe of its own (``workerpipe``: a worker that dies,
even halfway through a message, costs its input and never hangs the parent); a worker waits
while its pipe is full, so memory is bounded by about ``jobs x BATCH`` events whatever the
inputs' sizes. The parent reads the inputs in the order they were given (workers ahead of the
one being read wait), so the output does not depend on which worker finishes first. It knows
nothing of captures or logs: the pipeline stands on it, not the other way round. Workers are
forked (Linux, the platform smbwatch is made for); where a process cannot fork, inputs are read
one after the other in the calling process.
"""

from __future__ import annotations

import multiprocessing
import os
from collections import deque
from collections.abc import Callable, Iterator
from multiprocessing.process import BaseProcess
from typing import Any

from smbwatch import workerpipe
from smbwatch.containers import InputFile
from smbwatch.diagnostics import Diagnostics, InputError
from smbwatch.events import SmbEvent
from smbwatch.interrupt import Interrupted, check
from smbwatch.options import Options

BATCH = 2000
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


def can_fork() -> bool:
    """Whether inputs can be read by worker processes here (see the module)."""
    return "fork" in multiprocessing.get_all_start_methods()


def _worker(
    read: InputReader, source: InputFile, input_format: str | None, options: Options, fd: int
) -> None:
    diagnostics = Diagnostics()
    error = None
    batch: list[SmbEvent] = []
    try:
        for event in read(source, diagnostics, input_format, options):
            batch.append(event)
            if len(batch) >= BATCH:
                workerpipe.send(fd, ("events", batch))
                batch = []
        workerpipe.send(fd, ("events", batch))
    except InputError as exc:
        error = exc
    except Interrupted:
        return  # the parent stops too (it was signalled first, or with us), and ends us
    except BrokenPipeError:
        return  # the parent is gone
    except Exception as exc:  # a bug must cost this input, not the whole run
        diagnostics.damaged(source.name, f"internal error: {exc!r}")
    try:
        workerpipe.send(fd, ("done", diagnostics, error))
    except BrokenPipeError:
        return


def _next_message(receiver: workerpipe.Receiver, process: BaseProcess, source: InputFile) -> Any:
    """The worker's next message; a stop asked for meanwhile is honoured within ``WAIT``, and a
    worker that died without a word (killed, out of memory) costs its input, not a hang."""
    while True:
        check()
        try:
            message = receiver.receive(WAIT)
        except workerpipe.Closed:
            process.join()
            diagnostics = Diagnostics()
            diagnostics.damaged(source.name, f"its worker process ended early ({process.exitcode})")
            return ("done", diagnostics, None)
        if message is not None:
            return message


def parallel_inputs(
    read: InputReader,
    files: list[tuple[InputFile, bool]],
    input_format: str | None,
    jobs: int,
    options: Options,
) -> Iterator[InputRun]:
    """Every (input, named explicitly) input, each read by ``read`` in one of up to ``jobs``
    processes (``read`` raises InputError for an input it cannot use), in order."""
    context = multiprocessing.get_context("fork")
    waiting = deque(files)
    running: deque[tuple[InputFile, bool, BaseProcess, workerpipe.Receiver]] = deque()
    try:
        while waiting or running:
            while waiting and len(running) < jobs:
                source, explicit = waiting.popleft()
                reading, writing = workerpipe.pipe()
                arguments = (read, source, input_format, options, writing)
                process: BaseProcess = context.Process(target=_worker, args=arguments, daemon=True)
                try:
                    process.start()
                finally:
                    os.close(writing)  # the worker's alone now: its death ends the stream
                running.append((source, explicit, process, workerpipe.Receiver(reading)))
            source, explicit, process, receiver = running[0]  # still killed if we stop here
            run = InputRun(source, explicit)
            run.events = _received(receiver, process, run)
            yield run
            for _ in run.events:  # what the reader left unread: the worker must finish
                pass
            process.join()
            receiver.close()
            running.popleft()
    finally:
        for _, _, process, receiver in running:
            process.kill()
            process.join()
            receiver.close()


def _received(
    receiver: workerpipe.Receiver, process: BaseProcess, run: InputRun
) -> Iterator[SmbEvent]:
    while True:
        message = _next_message(receiver, process, run.source)
        if message[0] == "events":
            yield from message[1]
            continue
        run.diagnostics.merge(message[1])
        run.error = message[2]
        return
